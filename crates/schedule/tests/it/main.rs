//! Integration tests of the scheduling core, on real dates and real zone rules.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dst;
mod errors;
mod fires;

use selextract_schedule::{DateTime, NaiveDateTime, Utc};

/// A UTC instant from `"2026-03-29T00:30:00"`.
fn utc(text: &str) -> DateTime<Utc> {
    local(text).and_utc()
}

/// A naive local time from `"2026-03-29T02:30:00"`.
fn local(text: &str) -> NaiveDateTime {
    selextract_schedule::parse_local(text).unwrap_or_else(|| panic!("bad test time {text:?}"))
}
