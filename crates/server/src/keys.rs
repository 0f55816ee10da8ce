//! API key format, generation and hashing (SPEC §6): `sk_{public_id}_{secret}`.
//!
//! The public id (12 base62 chars) is stored in clear and indexed, so a lookup is one indexed
//! query; the secret (32 base62 chars, ≈190 bits) is stored only as its SHA-256. Keys are
//! high-entropy random strings, so a slow password KDF would add latency to every request
//! without adding any protection against guessing.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

const PREFIX: &str = "sk_";
/// Length of the public id part.
pub const PUBLIC_ID_LEN: usize = 12;
/// Length of the secret part.
pub const SECRET_LEN: usize = 32;

/// Makes a new key. Returns `(full key, public id, secret hash)`: the full key is shown to the
/// user once; the public id and the hash are what the store keeps.
pub fn generate_api_key() -> (String, String, String) {
    let public_id = random_base62(PUBLIC_ID_LEN);
    let secret = random_base62(SECRET_LEN);
    let hash = hash_secret(&secret);
    (format!("{PREFIX}{public_id}_{secret}"), public_id, hash)
}

/// Splits a full key into `(public id, secret)`; `None` when it is not shaped like one of ours.
pub fn parse_api_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (public_id, secret) = rest.split_once('_')?;
    let well_formed = public_id.len() == PUBLIC_ID_LEN
        && secret.len() == SECRET_LEN
        && public_id.bytes().all(|b| b.is_ascii_alphanumeric())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then_some((public_id, secret))
}

/// The stored form of a secret: lowercase hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    to_hex(&Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored hash without leaking, through timing, how many
/// leading characters matched.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_secret(secret).as_bytes(), stored_hash.as_bytes())
}

/// Equality whose running time depends only on the lengths, not on where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// SHA-256 of the whole key, used as the in-memory cache key so the cache never holds a
/// usable secret.
pub(crate) fn fingerprint(full_key: &str) -> [u8; 32] {
    let digest = Sha256::digest(full_key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_slice());
    out
}

fn random_base62(len: usize) -> String {
    // ThreadRng is a CSPRNG seeded from the operating system.
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}
