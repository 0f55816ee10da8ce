//! `[notifications]`: how deliveries are retried, bounded and addressed.

use std::net::SocketAddr;
use std::time::Duration;

use selextract_config::units::{duration_ms, duration_seconds};
use serde::{Deserialize, Serialize};

/// The settings section `[notifications]`. The CLI lends it `public_url` (from
/// `server.public_url`) and `allow_private_networks` (from `fetch.allow_private_networks`
/// or `--allow-private-networks`), so webhooks pass the same guard as fetching.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// How long after the event a failing delivery is retried before it is `failed` (24 h).
    #[serde(rename = "retry_for_seconds", with = "duration_seconds")]
    pub retry_for: Duration,
    /// The wait before the second attempt (30 s); doubled for each further attempt.
    #[serde(rename = "initial_backoff_ms", with = "duration_ms")]
    pub initial_backoff: Duration,
    /// The longest wait between two attempts (1 h).
    #[serde(rename = "max_backoff_seconds", with = "duration_seconds")]
    pub max_backoff: Duration,
    /// How long one attempt (connect, send, the receiver's answer; or one e-mail) may take
    /// (10 s).
    #[serde(rename = "attempt_timeout_ms", with = "duration_ms")]
    pub attempt_timeout: Duration,
    /// Consecutive permanent failures (or deliveries that gave up) after which a target is
    /// disabled (5).
    pub disable_after: u32,
    /// Attempts one process makes at once (16).
    pub concurrency: usize,
    /// How often an idle loop looks for due deliveries (1 s).
    #[serde(rename = "poll_interval_ms", with = "duration_ms")]
    pub poll_interval: Duration,
    /// How often the loop looks for finished runs whose events were not recorded (a lost
    /// worker's last attempt) (10 s).
    #[serde(rename = "sweep_interval_ms", with = "duration_ms")]
    pub sweep_interval: Duration,
    /// The public base URL links in events point to (lent by `server.public_url`).
    #[serde(skip)]
    pub public_url: Option<String>,
    /// Lifts the URL guard for webhooks (lent by `fetch.allow_private_networks`).
    #[serde(skip)]
    pub allow_private_networks: bool,
    /// Exact `ip:port` receivers allowed although the guard would refuse them (tests).
    #[serde(skip)]
    pub allowed_private_addrs: Vec<SocketAddr>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            retry_for: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            attempt_timeout: Duration::from_secs(10),
            disable_after: 5,
            concurrency: 16,
            poll_interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(10),
            public_url: None,
            allow_private_networks: false,
            allowed_private_addrs: Vec::new(),
        }
    }
}

impl NotifyConfig {
    /// The wait before attempt `attempt + 1` (attempt 1 is the first): `initial_backoff`
    /// doubled per attempt, at most `max_backoff`, then a random part of it taken off
    /// (between none and half) so that deliveries failing together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        let jitter = rand::random_range(0.0..0.5);
        full.mul_f64(1.0 - jitter)
    }

    /// How long a claim is held: one attempt's bound plus a margin, so a live sender never
    /// loses its lease while a dead one's expires soon.
    pub fn lease(&self) -> Duration {
        self.attempt_timeout + self.attempt_timeout.max(Duration::from_secs(30))
    }

    /// `public_url` without a trailing slash, when set.
    pub(crate) fn base_url(&self) -> Option<&str> {
        self.public_url
            .as_deref()
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_bounds_and_jitters_at_most_by_half() {
        let config = NotifyConfig::default();
        for attempt in 1..40 {
            let full = Duration::from_secs(30)
                .saturating_mul(1 << (attempt - 1).min(30))
                .min(Duration::from_secs(3600));
            let wait = config.backoff(attempt);
            assert!(wait <= full && wait >= full / 2, "{attempt}: {wait:?}");
        }
    }
}
