//! The tick claim: the one write transaction that records a schedule's ticks and moves its
//! cursor, so that exactly one process records each tick however many run the scheduler.
//!
//! The caller (the `scheduler` crate) has walked the fires from the cursor it saw to now
//! and says what each is ([`PlannedKind`]); the claim
//! 1. moves the cursor with a compare-and-set (`UPDATE … WHERE cursor_local = <seen>`, on an
//!    active schedule). Zero rows means another process claimed these fires (or the
//!    schedule was paused, disabled, changed or removed meanwhile): nothing is written.
//!    SQLite's `BEGIN IMMEDIATE` makes the transaction the only writer; on PostgreSQL the
//!    UPDATE takes the row lock and a second claimer re-checks the condition on the
//!    committed row once the first commits, so it finds zero rows;
//! 2. decides each due fire against the current state, read in the same transaction: the
//!    task still exists (else the schedule is removed), the owner is enabled and has
//!    compute units, and the task's overlap policy;
//! 3. inserts the tick rows (UNIQUE (schedule_id, scheduled_local) is a second guard: a
//!    tick that already exists is neither recorded nor started again) and queues the run
//!    of each `started` tick with the same statement as `POST /tasks/{id}/runs`.

use crate::db::{RowExt, WritePool, new_id, with_pool};
use crate::runs::insert_run;
use crate::{Plans, Store, StoreError, TickOutcome};

/// Cancels the task's unfinished runs inside the claim's transaction, the way
/// [`Store::request_cancel`] does one run: a queued run is `cancelled` at once (reason
/// `cancelled_by_user`: the owner's overlap policy asked for it), a running run gets
/// `cancel_requested`, which its worker sees at the next lease renewal.
macro_rules! cancel_active_runs {
    ($executor:expr, $task_id:expr, $now:expr) => {{
        sqlx::query(
            "UPDATE runs SET state = 'cancelled', reason = 'cancelled_by_user', finished_at = $1 \
             WHERE task_id = $2 AND state = 'queued'",
        )
        .bind($now)
        .bind($task_id)
        .execute($executor)
        .await?;
        sqlx::query(
            "UPDATE runs SET cancel_requested = 1 WHERE task_id = $1 AND state = 'running'",
        )
        .bind($task_id)
        .execute($executor)
        .await?;
    }};
}

/// How the task's overlap policy (spec `schedule.overlap`) treats a fire while the task
/// has runs that have not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapGuard {
    /// `skip`: no new run while one is queued or running.
    SkipIfActive,
    /// `queue`: at most one run queued behind the running one.
    SkipIfQueued,
    /// `cancel_previous`: cancel the queued and running runs, then start.
    CancelActive,
}

/// What the walk found a fire to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedKind {
    /// Recorded `skipped_nonexistent_time`.
    Nonexistent,
    /// Recorded `missed` (`missed_count` fires in one row).
    Missed { missed_count: u64 },
    /// Processed now (on time, or the catch-up fire): started or held back by the claim.
    Due,
}

/// One fire of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTick {
    pub scheduled_local: String,
    pub scheduled_at_ms: Option<i64>,
    pub kind: PlannedKind,
    pub detail: Option<String>,
}

/// Everything a claim needs.
#[derive(Debug, Clone)]
pub struct TickClaim {
    pub schedule_id: String,
    /// The cursor the caller walked from (the compare-and-set's expected value).
    pub seen_cursor: String,
    /// The fires in order.
    pub ticks: Vec<PlannedTick>,
    /// The cursor after the last fire walked.
    pub new_cursor: String,
    pub next_fire_at_ms: Option<i64>,
    /// The task's overlap policy (ignored for installation jobs).
    pub overlap: OverlapGuard,
    /// Attempts written on a queued run (`worker.max_attempts`).
    pub max_attempts: u32,
    pub now_ms: i64,
}

/// A tick the claim recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedTick {
    pub scheduled_local: String,
    pub outcome: TickOutcome,
    pub run_id: Option<String>,
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This process recorded these ticks and moved the cursor.
    Claimed(Vec<RecordedTick>),
    /// The cursor had moved (another process claimed these fires) or the schedule is no
    /// longer active or no longer exists: nothing was written.
    NotClaimed,
    /// The schedule's task no longer exists: the schedule was removed.
    TaskGone,
}

/// The task's state the claim decides due fires on.
struct TaskState {
    user_id: String,
    spec: String,
    priority: u8,
}

impl Store {
    /// Records the ticks of `claim` and moves the schedule's cursor, exactly once across
    /// all processes (see the module documentation).
    pub async fn claim_schedule_ticks(
        &self,
        claim: &TickClaim,
        plans: &Plans,
    ) -> Result<ClaimOutcome, StoreError> {
        let now = claim.now_ms;
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            // 1. The compare-and-set.
            let moved = sqlx::query(
                "UPDATE schedules SET cursor_local = $1, next_fire_at = $2, updated_at = $3 \
                 WHERE id = $4 AND cursor_local = $5 AND enabled = 1 AND paused_at IS NULL \
                 RETURNING task_id, user_id",
            )
            .bind(&claim.new_cursor)
            .bind(claim.next_fire_at_ms)
            .bind(now)
            .bind(&claim.schedule_id)
            .bind(&claim.seen_cursor)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(moved) = moved else {
                return Ok(ClaimOutcome::NotClaimed);
            };
            let task_id = moved.opt_text("task_id")?;
            let owner = moved.opt_text("user_id")?;

            // 2. The task, for task schedules.
            let task = match &task_id {
                None => None,
                Some(task_id) => {
                    let row = sqlx::query(
                        "SELECT user_id, spec, priority FROM tasks \
                         WHERE id = $1 AND deleted_at IS NULL",
                    )
                    .bind(task_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match row {
                        Some(row) => Some(TaskState {
                            user_id: row.text("user_id")?,
                            spec: row.text("spec")?,
                            priority: row.uint("priority")?,
                        }),
                        None => {
                            sqlx::query("DELETE FROM schedules WHERE id = $1")
                                .bind(&claim.schedule_id)
                                .execute(&mut *tx)
                                .await?;
                            tx.commit().await?;
                            return Ok(ClaimOutcome::TaskGone);
                        }
                    }
                }
            };

            // The owner's standing, once per claim: disabled, or out of compute units.
            let mut standing = None;
            if let Some(task) = &task {
                let user = sqlx::query("SELECT plan, disabled FROM users WHERE id = $1")
                    .bind(&task.user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                standing = Some(match user {
                    None => Some(TickOutcome::UserDisabled),
                    Some(user) if user.flag("disabled")? => Some(TickOutcome::UserDisabled),
                    Some(user) => {
                        let (_, plan) = plans.plan_for(&user.text("plan")?);
                        if plan.monthly_compute_units.is_some() {
                            // The same sum as Store::compute_unit_balance, read in this
                            // transaction.
                            let balance = sqlx::query(
                                "SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'grant' THEN amount \
                                 ELSE -amount END), 0) AS BIGINT) AS balance \
                                 FROM ledger WHERE user_id = $1",
                            )
                            .bind(&task.user_id)
                            .fetch_one(&mut *tx)
                            .await?
                            .int("balance")?;
                            let overage =
                                i64::try_from(plan.overage_compute_units).unwrap_or(i64::MAX);
                            (balance.saturating_add(overage) <= 0)
                                .then_some(TickOutcome::InsufficientComputeUnits)
                        } else {
                            None
                        }
                    }
                });
            }

            // 3. The ticks, in order.
            let mut recorded = Vec::with_capacity(claim.ticks.len());
            for planned in &claim.ticks {
                let (outcome, missed_count) = match planned.kind {
                    PlannedKind::Nonexistent => (TickOutcome::SkippedNonexistentTime, 1),
                    PlannedKind::Missed { missed_count } => {
                        (TickOutcome::Missed, missed_count.max(1))
                    }
                    PlannedKind::Due => match (&task, standing.flatten()) {
                        // An installation job: the caller runs it after this commits.
                        (None, _) => (TickOutcome::Started, 1),
                        (Some(_), Some(refused)) => (refused, 1),
                        (Some(_), None) => {
                            let task_id = task_id.as_deref().unwrap_or_default();
                            let (queued, running) = sqlx::query(
                                "SELECT COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0) AS queued, \
                                 COALESCE(SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END), 0) AS running \
                                 FROM runs WHERE task_id = $1 AND state IN ('queued', 'running')",
                            )
                            .bind(task_id)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(StoreError::from)
                            .and_then(|row| Ok((row.int("queued")?, row.int("running")?)))?;
                            let blocked = match claim.overlap {
                                OverlapGuard::SkipIfActive => queued + running > 0,
                                OverlapGuard::SkipIfQueued => queued > 0,
                                OverlapGuard::CancelActive => false,
                            };
                            if blocked {
                                (TickOutcome::SkippedOverlap, 1)
                            } else {
                                if claim.overlap == OverlapGuard::CancelActive {
                                    cancel_active_runs!(&mut *tx, task_id, now);
                                }
                                (TickOutcome::Started, 1)
                            }
                        }
                    },
                };
                let run_id = (outcome == TickOutcome::Started && task.is_some()).then(new_id);
                let inserted = sqlx::query(
                    "INSERT INTO schedule_ticks (schedule_id, task_id, user_id, scheduled_local, \
                     scheduled_at, outcome, run_id, detail, missed_count, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (schedule_id, scheduled_local) DO NOTHING RETURNING id",
                )
                .bind(&claim.schedule_id)
                .bind(&task_id)
                .bind(&owner)
                .bind(&planned.scheduled_local)
                .bind(planned.scheduled_at_ms)
                .bind(outcome.as_str())
                .bind(&run_id)
                .bind(&planned.detail)
                .bind(i64::try_from(missed_count).unwrap_or(i64::MAX))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if inserted.is_none() {
                    // Recorded before (the second guard): neither recorded nor started again.
                    continue;
                }
                if let (Some(run_id), Some(task), Some(task_id)) = (&run_id, &task, &task_id) {
                    let run = insert_run!(
                        &mut *tx,
                        run_id,
                        &task.user_id,
                        task_id,
                        &task.spec,
                        task.priority,
                        claim.max_attempts,
                        now
                    );
                    if run.is_none() {
                        return Err(StoreError::Corrupt(format!(
                            "task {task_id} vanished inside the tick claim's transaction"
                        )));
                    }
                }
                recorded.push(RecordedTick {
                    scheduled_local: planned.scheduled_local.clone(),
                    outcome,
                    run_id,
                });
            }
            tx.commit().await?;
            Ok(ClaimOutcome::Claimed(recorded))
        })
    }
}
