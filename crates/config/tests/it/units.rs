//! Integer keys in a named unit, held as `Duration`s and bytes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Timings {
    #[serde(with = "selextract_config::units::duration_ms")]
    poll_ms: Duration,
    #[serde(with = "selextract_config::units::duration_seconds")]
    lease_seconds: Duration,
    #[serde(with = "selextract_config::units::duration_minutes")]
    recycle_after_minutes: Duration,
    #[serde(with = "selextract_config::units::mebibytes")]
    memory_cap_mb: u64,
}

#[test]
fn integers_become_durations_and_bytes_and_print_back_as_written() {
    let text =
        "poll_ms = 250\nlease_seconds = 30\nrecycle_after_minutes = 30\nmemory_cap_mb = 1024\n";
    let timings: Timings = toml::from_str(text).expect("parses");
    assert_eq!(
        timings,
        Timings {
            poll_ms: Duration::from_millis(250),
            lease_seconds: Duration::from_secs(30),
            recycle_after_minutes: Duration::from_secs(1800),
            memory_cap_mb: 1 << 30,
        }
    );
    assert_eq!(toml::to_string(&timings).expect("serializes"), text);
}

#[test]
fn values_that_overflow_or_are_negative_are_errors() {
    let base = "poll_ms = 1\nlease_seconds = 1\nrecycle_after_minutes = 1\nmemory_cap_mb = 1\n";
    for (key, value) in [
        ("recycle_after_minutes", i64::MAX.to_string()),
        ("memory_cap_mb", i64::MAX.to_string()),
        ("poll_ms", "-1".to_owned()),
        ("lease_seconds", "1.5".to_owned()),
    ] {
        let text = base.replace(&format!("{key} = 1"), &format!("{key} = {value}"));
        let error = toml::from_str::<Timings>(&text)
            .expect_err(&text)
            .to_string();
        assert!(error.contains(key), "{text}: {error}");
    }
}

#[test]
fn the_largest_millisecond_count_round_trips() {
    let timings = Timings {
        poll_ms: Duration::from_millis(i64::MAX as u64),
        lease_seconds: Duration::ZERO,
        recycle_after_minutes: Duration::ZERO,
        memory_cap_mb: 0,
    };
    let text = toml::to_string(&timings).expect("serializes");
    assert_eq!(toml::from_str::<Timings>(&text).expect("parses"), timings);
}
