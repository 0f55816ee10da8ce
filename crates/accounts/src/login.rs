//! How long logins last and how failed ones are slowed down: `[auth.session]`,
//! `[auth.tokens]` and `[auth.lockout]`.

use serde::{Deserialize, Serialize};

/// `[auth.session]`: dashboard sessions (cookies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session unused this long ends (12 h). Use is recorded at most once a minute.
    pub idle_timeout_seconds: u64,
    /// A session ends this long after login however much it is used (7 days).
    pub absolute_timeout_seconds: u64,
    /// Whether the cookies carry `Secure`: `auto` (when the request came over HTTPS, directly
    /// or as told by `X-Forwarded-Proto` from a trusted proxy), `always` or `never`.
    pub secure_cookie: SecureCookie,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout_seconds: 12 * 60 * 60,
            absolute_timeout_seconds: 7 * 24 * 60 * 60,
            secure_cookie: SecureCookie::Auto,
        }
    }
}

/// When session cookies are marked `Secure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecureCookie {
    #[default]
    Auto,
    Always,
    Never,
}

/// `[auth.tokens]`: `POST /auth/token` access and refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Lifetime of a JWT access token (15 min).
    pub access_ttl_seconds: u64,
    /// Lifetime of a refresh token (30 days); each rotation issues one with a fresh lifetime.
    pub refresh_ttl_seconds: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            access_ttl_seconds: 15 * 60,
            refresh_ttl_seconds: 30 * 24 * 60 * 60,
        }
    }
}

/// `[auth.lockout]`: after `max_failures` consecutive failed logins an account refuses every
/// login (even the right password) for `base_delay_seconds`, doubled at each further
/// failure up to `max_delay_seconds`. A successful login resets the count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    pub max_failures: u32,
    pub base_delay_seconds: u64,
    pub max_delay_seconds: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_failures: 5,
            base_delay_seconds: 30,
            max_delay_seconds: 15 * 60,
        }
    }
}

impl LockoutConfig {
    /// How long an account with `failures` consecutive failures stays locked (ms); `None`
    /// below the threshold. 0 `max_failures` turns lockout off.
    pub fn lock_for_ms(&self, failures: u64) -> Option<u64> {
        let threshold = u64::from(self.max_failures);
        if threshold == 0 || failures < threshold {
            return None;
        }
        let doublings = u32::try_from((failures - threshold).min(32)).unwrap_or(32);
        let delay = self
            .base_delay_seconds
            .saturating_mul(1u64 << doublings)
            .min(self.max_delay_seconds);
        Some(delay.saturating_mul(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_starts_at_the_threshold_and_doubles_up_to_the_cap() {
        let config = LockoutConfig::default();
        assert_eq!(config.lock_for_ms(0), None);
        assert_eq!(config.lock_for_ms(4), None);
        assert_eq!(config.lock_for_ms(5), Some(30_000));
        assert_eq!(config.lock_for_ms(6), Some(60_000));
        assert_eq!(config.lock_for_ms(7), Some(120_000));
        assert_eq!(config.lock_for_ms(10), Some(900_000));
        assert_eq!(config.lock_for_ms(u64::MAX), Some(900_000));
        let off = LockoutConfig {
            max_failures: 0,
            ..LockoutConfig::default()
        };
        assert_eq!(off.lock_for_ms(100), None);
    }
}
