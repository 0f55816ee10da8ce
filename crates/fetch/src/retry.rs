//! When to retry and how long to wait: exponential backoff with full jitter, and
//! `Retry-After`.

use std::time::{Duration, SystemTime};

use rand::Rng as _;

/// Backoff never waits longer than this between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A `Retry-After` up to this long is waited for; a longer one ends retrying.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// The upper bound of the wait before retry number `attempt + 1`: `base * 2^attempt`, capped.
pub fn backoff_ceiling(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(31));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The wait before the next attempt: uniformly random up to the ceiling ("full jitter"), so
/// that many clients failing together do not retry together.
pub fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    let ceiling = backoff_ceiling(base, attempt);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// Whether a response status is worth another attempt.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Parses `Retry-After`: delay seconds or an HTTP-date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}
