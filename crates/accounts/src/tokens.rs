//! Session ids, refresh tokens and JWT access tokens: how they are made, stored and checked.
//!
//! Session ids and refresh tokens are opaque: 32 random bytes from the operating system,
//! base64url without padding (43 characters). The store keeps only their SHA-256 (hex), so
//! a copy of the database cannot be turned into a login; a high-entropy random value needs
//! no slow KDF, so the lookup is one hash and one indexed read.
//!
//! Access tokens are JWTs (HS256, `jsonwebtoken`) signed with a key derived from the
//! server's secret. They name the user (`sub`) and the refresh-token family (`fid`) they
//! were issued under, so that revoking the family (logout everywhere, a reused refresh
//! token) makes its access tokens stop working too, not only after they expire.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Random bytes in a session id or a refresh token.
pub const OPAQUE_TOKEN_BYTES: usize = 32;
/// The length of a session id or refresh token as text (base64url, no padding).
pub const OPAQUE_TOKEN_CHARS: usize = 43;
/// The `iss` and `aud` of our access tokens: a token made for something else is refused.
const ISSUER: &str = "selextract";
/// The most bytes an access token may have; a longer header is refused before decoding.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 2048;

/// A fresh opaque token (session id or refresh token): 32 random bytes, base64url.
pub fn new_opaque_token() -> String {
    let mut bytes = [0u8; OPAQUE_TOKEN_BYTES];
    // ThreadRng is a CSPRNG seeded from the operating system.
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `text` is shaped like one of our opaque tokens, so that anything else (a
/// megabyte of cookie, say) is refused before it is hashed or looked up.
pub fn is_opaque_token(text: &str) -> bool {
    text.len() == OPAQUE_TOKEN_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stored form of an opaque token: lowercase hex SHA-256.
pub fn hash_opaque_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The refresh-token family the token was issued under.
    pub fid: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Malformed, tampered with, signed with another key or algorithm, for another
    /// audience, or expired: the caller learns nothing more.
    #[error("the access token is invalid or expired")]
    Invalid,
    #[error("signing the access token failed: {0}")]
    Signing(String),
}

/// Signs an access token for `user_id` in `family_id`, valid from `now_s` for `ttl_s`.
pub fn issue_access_token(
    key: &[u8],
    user_id: &str,
    family_id: &str,
    now_s: i64,
    ttl_s: i64,
) -> Result<String, TokenError> {
    let claims = AccessClaims {
        sub: user_id.to_owned(),
        fid: family_id.to_owned(),
        iat: now_s,
        exp: now_s.saturating_add(ttl_s),
        iss: ISSUER.to_owned(),
        aud: ISSUER.to_owned(),
    };
    let key =
        EncodingKey::from_secret(key).map_err(|error| TokenError::Signing(error.to_string()))?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|error| TokenError::Signing(error.to_string()))
}

/// Checks an access token's signature (HS256 only: `none` and every other algorithm are
/// refused), issuer, audience and expiry (no leeway: the lifetime is already short).
pub fn verify_access_token(key: &[u8], token: &str) -> Result<AccessClaims, TokenError> {
    if token.len() > MAX_ACCESS_TOKEN_BYTES {
        return Err(TokenError::Invalid);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    let key = DecodingKey::from_secret(key).map_err(|_| TokenError::Invalid)?;
    jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|_| TokenError::Invalid)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn now() -> i64 {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap()
    }

    #[test]
    fn opaque_tokens_are_43_url_safe_characters_and_differ() {
        let a = new_opaque_token();
        let b = new_opaque_token();
        assert_ne!(a, b);
        assert!(is_opaque_token(&a), "{a}");
        assert_eq!(hash_opaque_token(&a).len(), 64);
        assert_ne!(hash_opaque_token(&a), hash_opaque_token(&b));
        assert!(!is_opaque_token(""));
        assert!(!is_opaque_token(&"a".repeat(44)));
        assert!(!is_opaque_token(&format!("{}=", &a[..42])));
        assert!(!is_opaque_token(&"é".repeat(21)));
    }

    #[test]
    fn an_access_token_round_trips_and_names_its_family() {
        let key = [7u8; 32];
        let token = issue_access_token(&key, "user-1", "family-1", now(), 900).unwrap();
        assert_eq!(token.split('.').count(), 3);
        let claims = verify_access_token(&key, &token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.fid.as_str()),
            ("user-1", "family-1")
        );
    }

    #[test]
    fn tampered_expired_or_foreign_tokens_are_refused() {
        let key = [7u8; 32];
        let token = issue_access_token(&key, "user-1", "family-1", now(), 900).unwrap();
        assert_eq!(
            verify_access_token(&[8u8; 32], &token),
            Err(TokenError::Invalid)
        );
        // Another user's id in the payload, the signature kept.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"sub": "admin", "fid": "family-1", "iat": now(), "exp": now() + 900, "iss": ISSUER, "aud": ISSUER})
                .to_string(),
        );
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(verify_access_token(&key, &forged), Err(TokenError::Invalid));
        // alg none.
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(
            verify_access_token(&key, &unsigned),
            Err(TokenError::Invalid)
        );
        let expired = issue_access_token(&key, "user-1", "family-1", now() - 1000, 900).unwrap();
        assert_eq!(
            verify_access_token(&key, &expired),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify_access_token(&key, &"a.".repeat(2000)),
            Err(TokenError::Invalid)
        );
    }
}
