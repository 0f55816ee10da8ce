//! Passwords: argon2id hashing to PHC strings, verification, rehash detection, the dummy
//! verification that makes unknown accounts cost the same, and the length rules.
//!
//! The rules follow NIST SP 800-63B: at least [`MIN_PASSWORD_CHARS`] characters and no
//! composition rules. The upper bound, [`MAX_PASSWORD_BYTES`], is not a rule about good
//! passwords but about cost: argon2 reads the whole input, so a megabyte-long "password"
//! would be a cheap way to make the server work. A longer input is refused with an error,
//! never truncated (truncation would make two different passwords equal).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

/// The fewest characters (Unicode scalar values) a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The most bytes (UTF-8) a password may have; longer input is refused before hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// `[auth.password]`: the argon2id cost. The defaults are OWASP's recommendation for
/// argon2id (19 MiB of memory, 2 passes, 1 lane). Raising them makes new hashes (and
/// [`needs_rehash`] answers true for the old ones at the next login); old hashes still
/// verify with the parameters written in them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Memory per hash, in KiB (argon2 `m`).
    pub memory_kib: u32,
    /// Passes over the memory (argon2 `t`).
    pub iterations: u32,
    /// Lanes (argon2 `p`).
    pub parallelism: u32,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordConfig {
    /// Checks that argon2 accepts these parameters (for example, at least 8 KiB of memory
    /// per lane), so a bad setting fails at start and not at the first login.
    pub fn check(&self) -> Result<(), PasswordError> {
        self.hasher().map(|_| ())
    }

    fn params(&self) -> Result<Params, PasswordError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|error| PasswordError::InvalidConfig(error.to_string()))
    }

    fn hasher(&self) -> Result<Argon2<'static>, PasswordError> {
        Ok(Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.params()?,
        ))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password is too short: at least {MIN_PASSWORD_CHARS} characters are needed")]
    TooShort,
    #[error("the password is too long: at most {MAX_PASSWORD_BYTES} bytes are allowed")]
    TooLong,
    #[error("invalid password hashing parameters: {0}")]
    InvalidConfig(String),
    #[error("the stored password hash is not an argon2 PHC string: {0}")]
    MalformedHash(String),
    #[error("hashing the password failed: {0}")]
    Hashing(String),
}

/// Checks a new password against the rules: at least [`MIN_PASSWORD_CHARS`] characters, at
/// most [`MAX_PASSWORD_BYTES`] bytes. The byte bound is checked first, so a huge input is
/// refused without being walked.
pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// Checks a new password against the rules and hashes it with argon2id and a fresh random
/// salt; returns the PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
pub fn hash_password(config: &PasswordConfig, password: &str) -> Result<String, PasswordError> {
    check_new_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    let hash = config
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|error| PasswordError::Hashing(error.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string. The parameters are those written in
/// the hash, so hashes made under an older configuration still verify; the comparison is
/// constant-time (the `argon2` crate's). A password over [`MAX_PASSWORD_BYTES`] is
/// [`PasswordError::TooLong`] at once: no stored password can be that long.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    let parsed = parse_hash(phc)?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(error) => Err(PasswordError::MalformedHash(error.to_string())),
    }
}

/// Whether a stored hash was made with other than the configured algorithm, version or
/// parameters, so that the caller should store a fresh hash after a successful login.
pub fn needs_rehash(config: &PasswordConfig, phc: &str) -> Result<bool, PasswordError> {
    let parsed = parse_hash(phc)?;
    let params = Params::try_from(&parsed)
        .map_err(|error| PasswordError::MalformedHash(error.to_string()))?;
    let same = parsed.algorithm == Algorithm::Argon2id.ident()
        && parsed.version == Some(Version::V0x13.into())
        && params.m_cost() == config.memory_kib
        && params.t_cost() == config.iterations
        && params.p_cost() == config.parallelism;
    Ok(!same)
}

/// Does the work of one verification with the configured parameters and throws the
/// answer away. Call it when a login names an unknown e-mail (or an account without a
/// password), so that such a login costs what a real one costs and its timing does not tell
/// which e-mails are registered.
pub fn verify_dummy_password(config: &PasswordConfig, password: &str) {
    // A fixed salt: the output is never compared, only its cost matters.
    const DUMMY_SALT: &[u8] = b"selextract-no-such-account";
    let input = password
        .as_bytes()
        .get(..MAX_PASSWORD_BYTES)
        .unwrap_or(password.as_bytes());
    let mut output = [0u8; 32];
    // Invalid parameters were refused when the configuration was loaded; if they slip
    // through, the real path fails the same way, so there is nothing to report here.
    if let Ok(hasher) = config.hasher() {
        let _ = hasher.hash_password_into(input, DUMMY_SALT, &mut output);
    }
}

fn parse_hash(phc: &str) -> Result<PasswordHash<'_>, PasswordError> {
    PasswordHash::new(phc).map_err(|error| PasswordError::MalformedHash(error.to_string()))
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
