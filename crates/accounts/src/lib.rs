//! selextract-accounts: what identity needs that is not SQL — password hashing and rules,
//! e-mail normalisation, and the `[auth]` configuration (signup policy, hashing cost).
//!
//! - [`password`]: argon2id hashes as PHC strings, verification (constant-time, by the
//!   `argon2` crate), [`password::needs_rehash`] when the configured cost changed, a dummy
//!   verification so a login for an unknown e-mail costs what a known one costs, and the
//!   length rules of NIST SP 800-63B (at least 10 characters, at most 1,024 bytes).
//! - [`email`]: one normalised, validated [`Email`] type.
//! - [`tokens`]: session ids and refresh tokens (random, stored as SHA-256) and JWT access
//!   tokens (HS256).
//! - [`login`]: session and token lifetimes, lockout after failed logins.
//! - [`oidc`]: login through OpenID Connect providers (`[auth.oidc.<name>]`) — the one
//!   module that does IO (HTTP to the provider).
//! - [`AuthConfig`]: the `[auth]` section.
//!
//! No SQL, and no IO outside [`oidc`]: the store keeps the hashes, the server and the CLI
//! call these functions. Hashing is CPU-bound (tens of milliseconds by design), so async
//! callers run it on a blocking thread.

pub mod email;
pub mod login;
pub mod oidc;
pub mod password;
pub mod tokens;

use serde::{Deserialize, Serialize};

pub use email::{Email, EmailError};
pub use login::{LockoutConfig, SecureCookie, SessionConfig, TokenConfig};
pub use password::{PasswordConfig, PasswordError};

/// `[auth]`: how accounts come to exist and how their passwords are hashed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Who may create an account through the API (`open`, `invite_only`, `closed`).
    pub signup: SignupPolicy,
    /// Refuse logins of users whose e-mail address is not verified (false). Before the
    /// sub-tables, as TOML wants plain values first.
    pub require_verified_email: bool,
    /// `[auth.password]`: the argon2id cost.
    pub password: PasswordConfig,
    /// `[auth.session]`: dashboard session lifetimes and the cookies' `Secure` flag.
    pub session: SessionConfig,
    /// `[auth.tokens]`: JWT access and refresh token lifetimes.
    pub tokens: TokenConfig,
    /// `[auth.lockout]`: consecutive failed logins before an account locks, and for how long.
    pub lockout: LockoutConfig,
    /// `[auth.oidc.<name>]`: OpenID providers to log in with (none by default).
    pub oidc: std::collections::BTreeMap<String, oidc::OidcProviderConfig>,
    /// The installation secret that JWTs, CSRF tokens and signed cookies are keyed from.
    /// Unset (the default), the first process generates one and keeps it in the database,
    /// where every other process finds it; set it to rotate it or to keep it out of backups.
    /// Changing it logs everybody out of the dashboard and voids every access token.
    #[serde(with = "selextract_config::optional_secret")]
    pub secret: Option<selextract_config::SecretString>,
}

/// Who may sign up. Operators can always create users with `selextract user create`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignupPolicy {
    /// Anyone may sign up.
    Open,
    /// Only holders of an invitation from an administrator.
    InviteOnly,
    /// Nobody through the API (the self-hosting default: the operator creates users).
    #[default]
    Closed,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_empty_auth_section_is_closed_signup_with_owasp_costs() {
        let config: AuthConfig = toml::from_str("").unwrap();
        assert_eq!(config.signup, SignupPolicy::Closed);
        assert_eq!(config.password, PasswordConfig::default());
        assert_eq!(
            (
                config.password.memory_kib,
                config.password.iterations,
                config.password.parallelism
            ),
            (19_456, 2, 1)
        );
    }

    #[test]
    fn signup_policies_read_by_their_snake_case_names() {
        for (text, policy) in [
            ("open", SignupPolicy::Open),
            ("invite_only", SignupPolicy::InviteOnly),
            ("closed", SignupPolicy::Closed),
        ] {
            let config: AuthConfig = toml::from_str(&format!("signup = \"{text}\"")).unwrap();
            assert_eq!(config.signup, policy);
        }
        let error = toml::from_str::<AuthConfig>("signup = \"anyone\"").unwrap_err();
        assert!(error.to_string().contains("anyone"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<AuthConfig>("[password]\nmemory = 1").unwrap_err();
        assert!(error.to_string().contains("memory"), "{error}");
    }
}
