//! The canonical text of a wall-clock time, as the store keeps "the last local time a
//! schedule considered".

use chrono::NaiveDateTime;

/// The one format local times are stored in: seconds precision, no zone (the zone belongs to
/// the schedule, not to the time).
const LOCAL_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Canonical text of a local time for storage: `"%Y-%m-%dT%H:%M:%S"` (no zone, sub-seconds
/// dropped), e.g. `"2026-03-29T02:30:00"`.
pub fn format_local(local: NaiveDateTime) -> String {
    local.format(LOCAL_FORMAT).to_string()
}

/// Parses text written by [`format_local`]; `None` for anything else.
pub fn parse_local(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, LOCAL_FORMAT).ok()
}
