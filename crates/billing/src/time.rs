//! The provider's timestamps (ISO 8601, `2021-08-11T13:47:27.000000Z`) as unix milliseconds.

/// `None` for a value that is not an RFC 3339 date-time.
pub(crate) fn parse_timestamp_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_millis())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn provider_timestamps_parse_with_microseconds() {
        assert_eq!(
            parse_timestamp_ms("2021-08-11T13:47:27.000000Z"),
            Some(1_628_689_647_000)
        );
        assert_eq!(parse_timestamp_ms("yesterday"), None);
    }
}
