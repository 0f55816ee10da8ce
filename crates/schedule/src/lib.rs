//! Pure scheduling arithmetic: cron expressions in IANA time zones, their fire times across
//! daylight-saving changes, and the canonical text of a local time for storage.
//!
//! Architecture invariant: no IO, no async, no database, no clock. Every function takes the
//! time it reasons about as an argument, so the store, the scheduler loop and the API can all
//! ask the same question and get the same answer.
//!
//! A schedule is evaluated on the wall clock of its zone: fire times are enumerated as naive
//! local times and only then mapped onto instants. A wall-clock time that a spring-forward
//! change skips is reported as [`FireKind::Nonexistent`] (the caller records it and moves
//! on); one that a fall-back change repeats fires once, at its earlier instant.

mod cron;
mod local;

pub use chrono::{DateTime, NaiveDateTime, Utc};
pub use cron::{CronSchedule, Fire, FireKind, MAX_CRON_BYTES, ScheduleError};
pub use local::{format_local, parse_local};
