//! Processing one due schedule at an explicit `now`: read its policies, walk its fires,
//! claim the ticks (the store's one transaction), and run an installation job whose tick
//! started. Tests drive time through `now`.

use chrono::{DateTime, Utc};
use selextract_schedule::{CronSchedule, format_local, parse_local};
use selextract_spec::{CatchUp, Overlap, Schedule};
use selextract_store::{
    ClaimOutcome, OverlapGuard, ScheduleRecord, Store, StoreError, TickClaim, TickOutcome,
};

use crate::walk::{WalkRules, walk_fires};
use crate::{SchedulerConfig, jobs};

/// Due schedules handled per pass; the next pass takes the rest.
const DUE_PER_PASS: u32 = 200;

/// What processing one schedule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// This process recorded these ticks (outcome and run id, in order).
    Recorded(Vec<(TickOutcome, Option<String>)>),
    /// Another process had claimed the fires, or the schedule changed meanwhile.
    NotClaimed,
    /// The task is gone; its schedule was removed.
    TaskGone,
    /// The stored expression no longer parses (e.g. a zone left the database): the
    /// schedule was parked (no next fire) and the reason logged.
    Unparsable(String),
}

/// Processes every due schedule once at `now`; returns how many this process claimed.
pub async fn process_due_schedules(
    store: &Store,
    config: &SchedulerConfig,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let due = store
        .list_due_schedules(now.timestamp_millis(), DUE_PER_PASS)
        .await?;
    let mut claimed = 0;
    for schedule in &due {
        match process_schedule(store, config, schedule, now).await {
            Ok(Processed::Recorded(_)) => claimed += 1,
            Ok(_) => {}
            Err(error) if error.is_unavailable() => return Err(error),
            Err(error) => {
                tracing::warn!(schedule = %schedule.id, %error, "processing a schedule failed; retrying next pass");
            }
        }
    }
    Ok(claimed)
}

/// Walks `schedule`'s fires from the cursor it was read with up to `now` and claims them.
pub async fn process_schedule(
    store: &Store,
    config: &SchedulerConfig,
    schedule: &ScheduleRecord,
    now: DateTime<Utc>,
) -> Result<Processed, StoreError> {
    let cron = match CronSchedule::parse(&schedule.cron, &schedule.timezone) {
        Ok(cron) => cron,
        Err(error) => {
            return park_unparsable(store, config, schedule, now, error.to_string()).await;
        }
    };
    let (overlap, catch_up) = match &schedule.task_id {
        None => (OverlapGuard::SkipIfActive, CatchUp::Latest),
        Some(task_id) => match store.task_spec_any_user(task_id).await? {
            // Gone: the claim removes the schedule.
            None => (OverlapGuard::SkipIfActive, CatchUp::None),
            Some(spec) => policies_of(&spec),
        },
    };
    let cursor = parse_local(&schedule.cursor_local).unwrap_or_else(|| cron.local_of(now));
    let walk = walk_fires(
        &cron,
        cursor,
        now,
        WalkRules {
            misfire_grace: config.misfire_grace,
            max_missed_rows: config.max_missed_rows,
            catch_up,
        },
    );
    let claim = TickClaim {
        schedule_id: schedule.id.clone(),
        seen_cursor: schedule.cursor_local.clone(),
        ticks: walk.ticks,
        new_cursor: format_local(walk.new_cursor),
        next_fire_at_ms: walk.next_fire_at.map(|at| at.timestamp_millis()),
        overlap,
        max_attempts: config.max_attempts,
        now_ms: now.timestamp_millis(),
    };
    match store.claim_schedule_ticks(&claim, &config.plans).await? {
        ClaimOutcome::NotClaimed => Ok(Processed::NotClaimed),
        ClaimOutcome::TaskGone => Ok(Processed::TaskGone),
        ClaimOutcome::Claimed(recorded) => {
            if schedule.task_id.is_none()
                && recorded
                    .iter()
                    .any(|tick| tick.outcome == TickOutcome::Started)
            {
                run_system_job(store, config, &schedule.id).await;
            }
            Ok(Processed::Recorded(
                recorded
                    .into_iter()
                    .map(|tick| (tick.outcome, tick.run_id))
                    .collect(),
            ))
        }
    }
}

/// The task's overlap and catch-up policies from its stored spec (validated when written;
/// a spec that no longer reads as one falls back to the defaults).
fn policies_of(spec: &serde_json::Value) -> (OverlapGuard, CatchUp) {
    let schedule = spec
        .get("schedule")
        .cloned()
        .and_then(|value| serde_json::from_value::<Schedule>(value).ok());
    let Some(schedule) = schedule else {
        return (OverlapGuard::SkipIfActive, CatchUp::Latest);
    };
    let overlap = match schedule.overlap {
        Overlap::Skip => OverlapGuard::SkipIfActive,
        Overlap::Queue => OverlapGuard::SkipIfQueued,
        Overlap::CancelPrevious => OverlapGuard::CancelActive,
    };
    (overlap, schedule.catch_up)
}

/// Runs the installation job of a claimed `started` tick, after the claim committed. A
/// failure is logged; the job's next tick runs it again (jobs are idempotent).
async fn run_system_job(store: &Store, config: &SchedulerConfig, schedule_id: &str) {
    let Some(job) = jobs::system_job(schedule_id) else {
        tracing::warn!(schedule = %schedule_id, "no installation job of this name; tick recorded, nothing run");
        return;
    };
    match jobs::run_job(&job, store, config).await {
        Ok(summary) => tracing::info!(job = job.name, %summary, "installation job ran"),
        Err(error) => {
            tracing::warn!(job = job.name, %error, "installation job failed; its next tick runs it again")
        }
    }
}

/// Parks a schedule whose expression no longer parses: no ticks, no next fire.
async fn park_unparsable(
    store: &Store,
    config: &SchedulerConfig,
    schedule: &ScheduleRecord,
    now: DateTime<Utc>,
    reason: String,
) -> Result<Processed, StoreError> {
    tracing::warn!(schedule = %schedule.id, %reason, "schedule expression no longer parses; parked");
    let claim = TickClaim {
        schedule_id: schedule.id.clone(),
        seen_cursor: schedule.cursor_local.clone(),
        ticks: Vec::new(),
        new_cursor: schedule.cursor_local.clone(),
        next_fire_at_ms: None,
        overlap: OverlapGuard::SkipIfActive,
        max_attempts: config.max_attempts,
        now_ms: now.timestamp_millis(),
    };
    store.claim_schedule_ticks(&claim, &config.plans).await?;
    Ok(Processed::Unparsable(reason))
}
