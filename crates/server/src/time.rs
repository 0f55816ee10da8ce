//! Time at the API boundary: unix milliseconds inside, RFC 3339 strings in JSON.

use chrono::{DateTime, SecondsFormat, Utc};

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2024-05-01T12:00:00.000Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn rfc3339_opt(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

/// Parses an RFC 3339 timestamp (any offset) into unix milliseconds.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}
