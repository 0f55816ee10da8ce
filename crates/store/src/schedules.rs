//! Schedules (SPEC §4 scheduler): one row per task schedule (id = task id) or installation
//! job (id = `system:<job>`), and the recorded ticks. The cron arithmetic lives in the
//! `schedule` crate and the walk from the cursor to now in the `scheduler` crate; this
//! module only stores what they decide. The claim that records ticks is in
//! `schedule_claim.rs`.
//!
//! Reads and writes of a task's schedule take the user id, so a user never reaches another
//! user's schedule or ticks.

use std::fmt;
use std::str::FromStr;

use crate::db::{RowExt, now_ms, with_pool};
use crate::{Store, StoreError};

/// The columns of `schedule_ticks` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! schedule_ticks_columns {
    () => {
        "id, schedule_id, task_id, user_id, scheduled_local, scheduled_at, outcome, run_id, detail, missed_count, recorded_at"
    };
}

/// The columns of `schedules` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! schedules_columns {
    () => {
        "id, task_id, user_id, cron, timezone, enabled, paused_at, cursor_local, next_fire_at, created_at, updated_at"
    };
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    /// The task id, or `system:<job>` for an installation job.
    pub id: String,
    pub task_id: Option<String>,
    pub user_id: Option<String>,
    pub cron: String,
    pub timezone: String,
    pub enabled: bool,
    pub paused_at_ms: Option<i64>,
    /// The last wall-clock fire processed, `%Y-%m-%dT%H:%M:%S` in the schedule's zone.
    pub cursor_local: String,
    /// When the next fire is due; `None` when the expression never fires again.
    pub next_fire_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl ScheduleRecord {
    /// Whether the scheduler processes it: enabled and not paused.
    pub fn is_active(&self) -> bool {
        self.enabled && self.paused_at_ms.is_none()
    }
}

/// What a task's spec says about its schedule, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTiming {
    pub cron: String,
    pub timezone: String,
    pub enabled: bool,
}

/// A cursor to start from: "now" in the schedule's zone and the next fire after it, both
/// computed by the caller (the store does no cron arithmetic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshCursor {
    pub cursor_local: String,
    pub next_fire_at_ms: Option<i64>,
}

/// What a recorded tick came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TickOutcome {
    /// A run was queued (task schedules) or the job ran (installation jobs).
    Started,
    /// The task's overlap policy held the run back (a run was still queued or running).
    SkippedOverlap,
    /// The installation was down at the time (older than the misfire grace).
    Missed,
    /// The owner's plan has a monthly allowance and no compute units are left.
    InsufficientComputeUnits,
    /// The owner's account is disabled.
    UserDisabled,
    /// The wall-clock time does not exist that day (a DST gap).
    SkippedNonexistentTime,
}

impl TickOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TickOutcome::Started => "started",
            TickOutcome::SkippedOverlap => "skipped_overlap",
            TickOutcome::Missed => "missed",
            TickOutcome::InsufficientComputeUnits => "insufficient_compute_units",
            TickOutcome::UserDisabled => "user_disabled",
            TickOutcome::SkippedNonexistentTime => "skipped_nonexistent_time",
        }
    }
}

impl fmt::Display for TickOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TickOutcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "started" => TickOutcome::Started,
            "skipped_overlap" => TickOutcome::SkippedOverlap,
            "missed" => TickOutcome::Missed,
            "insufficient_compute_units" => TickOutcome::InsufficientComputeUnits,
            "user_disabled" => TickOutcome::UserDisabled,
            "skipped_nonexistent_time" => TickOutcome::SkippedNonexistentTime,
            other => return Err(format!("unknown tick outcome {other:?}")),
        })
    }
}

/// A recorded tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTick {
    pub id: i64,
    pub schedule_id: String,
    pub task_id: Option<String>,
    pub user_id: Option<String>,
    pub scheduled_local: String,
    /// `None` for a wall-clock time that did not exist.
    pub scheduled_at_ms: Option<i64>,
    pub outcome: TickOutcome,
    pub run_id: Option<String>,
    pub detail: Option<String>,
    /// More than 1 when the row stands for a run of missed ticks.
    pub missed_count: u64,
    pub recorded_at_ms: i64,
}

/// A task's next fire for listings: `None` when unscheduled, disabled or paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNextRun {
    pub task_id: String,
    pub next_run_at_ms: Option<i64>,
}

impl Store {
    /// Writes the schedule of the user's task from its spec. A new row starts from `fresh`;
    /// an existing row keeps its cursor and pause unless the cron text, the zone or
    /// `enabled` changed, in which case it starts from `fresh` again (fires while a
    /// schedule was disabled are not recorded). False when the user has no such task.
    pub async fn upsert_task_schedule(
        &self,
        user_id: &str,
        task_id: &str,
        timing: &ScheduleTiming,
        fresh: &FreshCursor,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "INSERT INTO schedules (id, task_id, user_id, cron, timezone, enabled, paused_at, \
                 cursor_local, next_fire_at, created_at, updated_at) \
                 SELECT t.id, t.id, t.user_id, $1, $2, $3, NULL, $4, $5, $6, $6 FROM tasks t \
                 WHERE t.id = $7 AND t.user_id = $8 AND t.deleted_at IS NULL \
                 ON CONFLICT (id) DO UPDATE SET \
                 cursor_local = CASE WHEN schedules.cron = excluded.cron \
                     AND schedules.timezone = excluded.timezone \
                     AND schedules.enabled = excluded.enabled \
                     THEN schedules.cursor_local ELSE excluded.cursor_local END, \
                 next_fire_at = CASE WHEN schedules.cron = excluded.cron \
                     AND schedules.timezone = excluded.timezone \
                     AND schedules.enabled = excluded.enabled \
                     THEN schedules.next_fire_at ELSE excluded.next_fire_at END, \
                 cron = excluded.cron, timezone = excluded.timezone, \
                 enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(&timing.cron)
            .bind(&timing.timezone)
            .bind(i64::from(timing.enabled))
            .bind(&fresh.cursor_local)
            .bind(fresh.next_fire_at_ms)
            .bind(now)
            .bind(task_id)
            .bind(user_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Writes an installation job's schedule (`system:<job>`), UTC or any zone. Like
    /// [`Store::upsert_task_schedule`], an unchanged expression keeps its cursor, so every
    /// process may call this at start.
    pub async fn upsert_system_schedule(
        &self,
        id: &str,
        timing: &ScheduleTiming,
        fresh: &FreshCursor,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO schedules (id, task_id, user_id, cron, timezone, enabled, paused_at, \
                 cursor_local, next_fire_at, created_at, updated_at) \
                 VALUES ($1, NULL, NULL, $2, $3, $4, NULL, $5, $6, $7, $7) \
                 ON CONFLICT (id) DO UPDATE SET \
                 cursor_local = CASE WHEN schedules.cron = excluded.cron \
                     AND schedules.timezone = excluded.timezone \
                     AND schedules.enabled = excluded.enabled \
                     THEN schedules.cursor_local ELSE excluded.cursor_local END, \
                 next_fire_at = CASE WHEN schedules.cron = excluded.cron \
                     AND schedules.timezone = excluded.timezone \
                     AND schedules.enabled = excluded.enabled \
                     THEN schedules.next_fire_at ELSE excluded.next_fire_at END, \
                 cron = excluded.cron, timezone = excluded.timezone, \
                 enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(id)
            .bind(&timing.cron)
            .bind(&timing.timezone)
            .bind(i64::from(timing.enabled))
            .bind(&fresh.cursor_local)
            .bind(fresh.next_fire_at_ms)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Removes the schedule of the user's task (its ticks go with it); false when there
    /// was none.
    pub async fn delete_task_schedule(
        &self,
        user_id: &str,
        task_id: &str,
    ) -> Result<bool, StoreError> {
        with_pool!(&self.db, |pool| {
            let done = sqlx::query("DELETE FROM schedules WHERE id = $1 AND user_id = $2")
                .bind(task_id)
                .bind(user_id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The schedule of the user's task; `None` when the task has none or is another user's.
    pub async fn find_task_schedule(
        &self,
        user_id: &str,
        task_id: &str,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                schedules_columns!(),
                " FROM schedules WHERE id = $1 AND user_id = $2"
            ))
            .bind(task_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .map(|row| schedule_from_row(&row))
            .transpose()
        })
    }

    /// Any schedule by id (task or installation job). For the scheduler and operators only.
    pub async fn find_schedule_any_user(
        &self,
        schedule_id: &str,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                schedules_columns!(),
                " FROM schedules WHERE id = $1"
            ))
            .bind(schedule_id)
            .fetch_optional(pool)
            .await?
            .map(|row| schedule_from_row(&row))
            .transpose()
        })
    }

    /// Up to `limit` active schedules whose next fire is due at `now_ms`, most overdue
    /// first. Only a hint: the claim re-checks everything in its transaction.
    pub async fn list_due_schedules(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                schedules_columns!(),
                " FROM schedules WHERE next_fire_at <= $1 AND enabled = 1 \
                 AND paused_at IS NULL ORDER BY next_fire_at, id LIMIT $2"
            ))
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .iter()
            .map(schedule_from_row)
            .collect()
        })
    }

    /// Pauses the schedule of the user's task (no ticks are recorded while paused); `None`
    /// when the task has no schedule or is another user's. Pausing twice keeps the first
    /// pause's time.
    pub async fn pause_task_schedule(
        &self,
        user_id: &str,
        task_id: &str,
        now_ms: i64,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "UPDATE schedules SET paused_at = COALESCE(paused_at, $1), updated_at = $1 \
                 WHERE id = $2 AND user_id = $3 RETURNING ",
                schedules_columns!(),
                ""
            ))
            .bind(now_ms)
            .bind(task_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .map(|row| schedule_from_row(&row))
            .transpose()
        })
    }

    /// Resumes the schedule of the user's task from `fresh` (the fires while it was paused
    /// are not recorded); a schedule that was not paused keeps its cursor. `None` when the
    /// task has no schedule or is another user's.
    pub async fn resume_task_schedule(
        &self,
        user_id: &str,
        task_id: &str,
        fresh: &FreshCursor,
        now_ms: i64,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "UPDATE schedules SET \
                 cursor_local = CASE WHEN paused_at IS NULL THEN cursor_local ELSE $1 END, \
                 next_fire_at = CASE WHEN paused_at IS NULL THEN next_fire_at ELSE $2 END, \
                 paused_at = NULL, updated_at = $3 \
                 WHERE id = $4 AND user_id = $5 RETURNING ",
                schedules_columns!(),
                ""
            ))
            .bind(&fresh.cursor_local)
            .bind(fresh.next_fire_at_ms)
            .bind(now_ms)
            .bind(task_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .map(|row| schedule_from_row(&row))
            .transpose()
        })
    }

    /// The latest `limit` ticks of the user's task schedule, newest first, older than the
    /// tick `before` when given.
    pub async fn list_task_schedule_ticks(
        &self,
        user_id: &str,
        task_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ScheduleTick>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                schedule_ticks_columns!(),
                " FROM schedule_ticks WHERE schedule_id = $1 AND user_id = $2 \
                 AND id < $3 ORDER BY id DESC LIMIT $4"
            ))
            .bind(task_id)
            .bind(user_id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .iter()
            .map(tick_from_row)
            .collect()
        })
    }

    /// Every tick of any schedule, oldest first. For the scheduler's tests and operators.
    pub async fn list_schedule_ticks_any_user(
        &self,
        schedule_id: &str,
    ) -> Result<Vec<ScheduleTick>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                schedule_ticks_columns!(),
                " FROM schedule_ticks WHERE schedule_id = $1 ORDER BY id"
            ))
            .bind(schedule_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(tick_from_row)
            .collect()
        })
    }

    /// The spec of a schedule's task, any user's (the scheduler reads its policies from
    /// it); `None` when the task is gone.
    pub async fn task_spec_any_user(
        &self,
        task_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("SELECT spec FROM tasks WHERE id = $1 AND deleted_at IS NULL")
                .bind(task_id)
                .fetch_optional(pool)
                .await?
                .map(|row| row.json("spec"))
                .transpose()
        })
    }

    /// The next fire of each of the user's tasks that has an active schedule (tasks
    /// without one, paused or disabled, are left out).
    pub async fn next_runs_of_tasks(
        &self,
        user_id: &str,
        task_ids: &[String],
    ) -> Result<Vec<TaskNextRun>, StoreError> {
        if task_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for the page: `$2, $3, …` are bound, never spliced in.
        let placeholders: Vec<String> = (2..task_ids.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT id, next_fire_at FROM schedules WHERE user_id = $1 AND id IN ({}) \
             AND enabled = 1 AND paused_at IS NULL",
            placeholders.join(", ")
        );
        with_pool!(&self.db, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id);
            for task_id in task_ids {
                query = query.bind(task_id.as_str());
            }
            query
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(TaskNextRun {
                        task_id: row.text("id")?,
                        next_run_at_ms: row.opt_int("next_fire_at")?,
                    })
                })
                .collect()
        })
    }
}

pub(crate) fn schedule_from_row(row: &impl RowExt) -> Result<ScheduleRecord, StoreError> {
    Ok(ScheduleRecord {
        id: row.text("id")?,
        task_id: row.opt_text("task_id")?,
        user_id: row.opt_text("user_id")?,
        cron: row.text("cron")?,
        timezone: row.text("timezone")?,
        enabled: row.flag("enabled")?,
        paused_at_ms: row.opt_int("paused_at")?,
        cursor_local: row.text("cursor_local")?,
        next_fire_at_ms: row.opt_int("next_fire_at")?,
        created_at_ms: row.int("created_at")?,
        updated_at_ms: row.int("updated_at")?,
    })
}

pub(crate) fn tick_from_row(row: &impl RowExt) -> Result<ScheduleTick, StoreError> {
    Ok(ScheduleTick {
        id: row.int("id")?,
        schedule_id: row.text("schedule_id")?,
        task_id: row.opt_text("task_id")?,
        user_id: row.opt_text("user_id")?,
        scheduled_local: row.text("scheduled_local")?,
        scheduled_at_ms: row.opt_int("scheduled_at")?,
        outcome: row.parsed("outcome")?,
        run_id: row.opt_text("run_id")?,
        detail: row.opt_text("detail")?,
        missed_count: row.uint("missed_count")?,
        recorded_at_ms: row.int("recorded_at")?,
    })
}
