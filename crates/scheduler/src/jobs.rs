//! The installation's own jobs, scheduled on the same rows and ticks as tasks
//! (`system:<name>`). A job runs in the process that claimed its tick, after the tick's
//! transaction committed; a crash in the middle is redone by the next tick, so every job
//! here must be idempotent.

use selextract_store::{Store, StoreError};

use crate::SchedulerConfig;

/// One installation job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemJob {
    /// The schedule id is `system:<name>`.
    pub name: &'static str,
    /// Six-field cron (seconds first), in `timezone`.
    pub cron: &'static str,
    pub timezone: &'static str,
    pub kind: JobKind,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// [`crate::issue_monthly_grants`]: idempotent per user and month, so running it hourly
    /// is safe and a missed first of the month is caught up by the next tick.
    MonthlyGrants,
    // Retention jobs (old ticks, deliveries, runs past their retention) go here: a variant,
    // its entry in `system_jobs`, and its arm in `run_job`.
}

impl SystemJob {
    /// The job's schedule id.
    pub fn schedule_id(&self) -> String {
        format!("system:{}", self.name)
    }
}

/// Every installation job.
pub fn system_jobs() -> Vec<SystemJob> {
    vec![SystemJob {
        name: "monthly_grants",
        cron: "0 0 * * * *",
        timezone: "UTC",
        kind: JobKind::MonthlyGrants,
    }]
}

/// The job behind a schedule id, if it is one.
pub fn system_job(schedule_id: &str) -> Option<SystemJob> {
    let name = schedule_id.strip_prefix("system:")?;
    system_jobs().into_iter().find(|job| job.name == name)
}

/// Runs the job once; returns a line for the log.
pub async fn run_job(
    job: &SystemJob,
    store: &Store,
    config: &SchedulerConfig,
) -> Result<String, StoreError> {
    match job.kind {
        JobKind::MonthlyGrants => {
            let written = crate::issue_monthly_grants(store, &config.plans).await?;
            Ok(format!("{written} monthly compute-unit grants written"))
        }
    }
}
