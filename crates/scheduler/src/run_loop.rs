//! The loop every `serve` and `worker` process runs: register the installation jobs, then
//! every `poll_interval` process the due schedules. Any number of processes may run it at
//! once: the claim records each tick exactly once.

use chrono::Utc;
use selextract_schedule::CronSchedule;
use selextract_store::{ScheduleTiming, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::walk::fresh_cursor;
use crate::{SchedulerConfig, jobs, process_due_schedules};

/// Runs the scheduler until `shutdown`.
pub async fn run_scheduler(store: Store, config: SchedulerConfig, shutdown: CancellationToken) {
    loop {
        match register_system_jobs(&store).await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(%error, "registering the installation's jobs failed; retrying")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(config.poll_interval.max(std::time::Duration::from_secs(1))) => {}
        }
    }
    loop {
        if let Err(error) = process_due_schedules(&store, &config, Utc::now()).await {
            tracing::warn!(%error, "processing due schedules failed; retrying next pass");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(config.poll_interval) => {}
        }
    }
}

/// Writes each installation job's schedule row. A new row starts an hour back, so the
/// latest fire of that hour is caught up at once (a new installation runs each job at its
/// first start); an existing row with the same expression keeps its cursor.
pub async fn register_system_jobs(store: &Store) -> Result<(), StoreError> {
    let now = Utc::now();
    for job in jobs::system_jobs() {
        let cron = match CronSchedule::parse(job.cron, job.timezone) {
            Ok(cron) => cron,
            Err(error) => {
                // The registry is code; a test parses every entry, so this is unreachable
                // in a tested build. Skip the job rather than stop every schedule.
                tracing::error!(job = job.name, %error, "installation job has a bad expression");
                continue;
            }
        };
        let fresh = fresh_cursor(&cron, now - chrono::TimeDelta::hours(1));
        let timing = ScheduleTiming {
            cron: job.cron.to_owned(),
            timezone: job.timezone.to_owned(),
            enabled: true,
        };
        store
            .upsert_system_schedule(&job.schedule_id(), &timing, &fresh)
            .await?;
    }
    Ok(())
}
