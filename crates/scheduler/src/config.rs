//! `[scheduler]`: how often every process looks for due schedules, and how late a fire may
//! be processed before it counts as missed.

use std::time::Duration;

use selextract_store::Plans;
use serde::{Deserialize, Serialize};

/// Settings of the scheduler loop. The settings section `[scheduler]` deserializes straight
/// into this type; the fields marked `skip` come from other sections, filled in by the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// How often each process looks for due schedules. Bounds how late an on-time tick is
    /// processed; the claim makes any number of processes safe.
    #[serde(rename = "poll_ms", with = "selextract_config::units::duration_ms")]
    pub poll_interval: Duration,
    /// A fire older than this when it is processed was missed (the installation was down).
    #[serde(
        rename = "misfire_grace_seconds",
        with = "selextract_config::units::duration_seconds"
    )]
    pub misfire_grace: Duration,
    /// Missed fires recorded one row each after an outage; the rest share one row.
    pub max_missed_rows: usize,
    /// `[billing]`: plans decide `insufficient_compute_units`.
    #[serde(skip)]
    pub plans: Plans,
    /// `worker.max_attempts`, written on each run a tick queues.
    #[serde(skip)]
    pub max_attempts: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            poll_interval: Duration::from_millis(250),
            misfire_grace: Duration::from_secs(60),
            max_missed_rows: 100,
            plans: Plans::default(),
            max_attempts: selextract_store::DEFAULT_MAX_ATTEMPTS,
        }
    }
}
