//! Runs as their owner sees them: enqueueing, lookups, history and cancellation.

use crate::db::{RowExt, WritePool, new_id, now_ms, with_pool};
use crate::{CancelOutcome, OwnedRun, Page, Paged, Progress, Run, RunState, Store, StoreError};

/// The columns `run_from_row` reads, table-qualified. Statements name them instead of `*`:
/// a cached statement's column list must not change under a process when an expand
/// migration adds a column while it runs (sqlx's SQLite driver indexes the cached
/// metadata by position and panics on the longer row).
macro_rules! run_columns {
    () => {
        "runs.id, runs.task_id, runs.user_id, runs.state, runs.reason, runs.priority, runs.spec, runs.attempt, runs.max_attempts, runs.lease_owner, runs.lease_until, runs.cancel_requested, runs.queued_at, runs.started_at, runs.finished_at, runs.pages_done, runs.pages_failed, runs.pages_known, runs.records, runs.bytes, runs.compute_units, runs.error"
    };
}
pub(crate) use run_columns;

/// Queues a run of the user's (not deleted) task on `$executor` (a pool or an open
/// transaction) and evaluates to its row, or `None` when the task is missing, deleted or
/// another user's. The one INSERT of a queued run: [`Store::enqueue_run`] and the
/// scheduler's tick claim (`schedules.rs`, inside its transaction) both use it; the
/// per-user queue counters (migration 0002) follow through triggers either way.
macro_rules! insert_run {
    ($executor:expr, $id:expr, $user_id:expr, $task_id:expr, $spec:expr, $priority:expr,
     $max_attempts:expr, $now:expr) => {{
        let spec: &str = $spec;
        sqlx::query(concat!(
            "INSERT INTO runs (id, task_id, user_id, state, priority, spec, attempt, max_attempts, queued_at) \
             SELECT $1, t.id, t.user_id, 'queued', $2, $3, 0, $4, $5 FROM tasks t \
             WHERE t.id = $6 AND t.user_id = $7 AND t.deleted_at IS NULL \
             RETURNING ",
            $crate::runs::run_columns!()
        ))
        .bind($id)
        .bind(i64::from($priority))
        .bind(spec)
        .bind(i64::from($max_attempts))
        .bind($now)
        .bind($task_id)
        .bind($user_id)
        .fetch_optional($executor)
        .await?
    }};
}
pub(crate) use insert_run;

impl Store {
    /// Queues a run of the user's task with a snapshot of `spec`. A missing, deleted or
    /// foreign task is [`StoreError::NotFound`].
    pub async fn enqueue_run(
        &self,
        user_id: &str,
        task_id: &str,
        spec: &serde_json::Value,
        priority: u8,
        max_attempts: u32,
    ) -> Result<Run, StoreError> {
        let id = new_id();
        let spec = spec.to_string();
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let row = insert_run!(
                pool,
                &id,
                user_id,
                task_id,
                &spec,
                priority,
                max_attempts,
                now
            );
            match row {
                Some(row) => run_from_row(&row),
                None => Err(StoreError::NotFound(format!("task {task_id}"))),
            }
        })
    }

    /// The user's run; `None` for a missing run or another user's. The only way (with
    /// [`Store::latest_run`]) to an [`OwnedRun`], which the reads of a run's logs, pages,
    /// records and charges require.
    pub async fn find_run(
        &self,
        user_id: &str,
        run_id: &str,
    ) -> Result<Option<OwnedRun>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE id = $1 AND user_id = $2"
            ))
            .bind(run_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .map(|row| run_from_row(&row).map(OwnedRun::checked))
            .transpose()
        })
    }

    /// Any user's run. For workers and operators only: never reachable from a user request.
    pub async fn find_run_any_user(&self, run_id: &str) -> Result<Option<Run>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE id = $1"
            ))
            .bind(run_id)
            .fetch_optional(pool)
            .await?
            .map(|row| run_from_row(&row))
            .transpose()
        })
    }

    /// The runs of the user's task, newest first.
    pub async fn list_runs(
        &self,
        user_id: &str,
        task_id: &str,
        page: Page,
    ) -> Result<Paged<Run>, StoreError> {
        with_pool!(&self.db, |pool| {
            let total_count =
                sqlx::query("SELECT COUNT(*) AS n FROM runs WHERE task_id = $1 AND user_id = $2")
                    .bind(task_id)
                    .bind(user_id)
                    .fetch_one(pool)
                    .await?
                    .uint("n")?;
            let items = sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE task_id = $1 AND user_id = $2 \
                 ORDER BY queued_at DESC, id DESC LIMIT $3 OFFSET $4",
            ))
            .bind(task_id)
            .bind(user_id)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(pool)
            .await?
            .iter()
            .map(run_from_row)
            .collect::<Result<_, _>>()?;
            Ok(Paged { items, total_count })
        })
    }

    /// The most recently enqueued run of the user's task.
    pub async fn latest_run(
        &self,
        user_id: &str,
        task_id: &str,
    ) -> Result<Option<OwnedRun>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE task_id = $1 AND user_id = $2 \
                 ORDER BY queued_at DESC, id DESC LIMIT 1",
            ))
            .bind(task_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .map(|row| run_from_row(&row).map(OwnedRun::checked))
            .transpose()
        })
    }

    /// Cancels the user's run: a queued run becomes `cancelled` at once (reason
    /// `cancelled_by_user`); a running run gets `cancel_requested`, which its worker sees at
    /// the next lease renewal.
    pub async fn request_cancel(
        &self,
        user_id: &str,
        run_id: &str,
    ) -> Result<CancelOutcome, StoreError> {
        let now = now_ms();
        let lock_run = self.db.dialect().lock_run_for_cancel;
        with_pool!(&self.db, |pool| {
            // One write transaction (with the run row locked where the backend has row
            // locks), so the state read and the change agree even while a worker claims,
            // releases or finishes the run.
            let mut tx = pool.begin_write().await?;
            let state = sqlx::query(lock_run)
                .bind(run_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.parsed::<RunState>("state"))
                .transpose()?;
            let outcome = match state {
                None => CancelOutcome::NotFound,
                Some(RunState::Queued) => {
                    sqlx::query(
                        "UPDATE runs SET state = 'cancelled', reason = 'cancelled_by_user', finished_at = $1 \
                         WHERE id = $2",
                    )
                    .bind(now)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                    CancelOutcome::Cancelled
                }
                Some(RunState::Running) => {
                    sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1")
                        .bind(run_id)
                        .execute(&mut *tx)
                        .await?;
                    CancelOutcome::CancelRequested
                }
                Some(_) => CancelOutcome::AlreadyFinished,
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }
}

pub(crate) fn run_from_row(row: &impl RowExt) -> Result<Run, StoreError> {
    Ok(Run {
        id: row.text("id")?,
        task_id: row.text("task_id")?,
        user_id: row.text("user_id")?,
        state: row.parsed("state")?,
        reason: row.opt_text("reason")?,
        priority: row.uint("priority")?,
        spec: row.json("spec")?,
        attempt: row.uint("attempt")?,
        max_attempts: row.uint("max_attempts")?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_until_ms: row.opt_int("lease_until")?,
        cancel_requested: row.flag("cancel_requested")?,
        queued_at_ms: row.int("queued_at")?,
        started_at_ms: row.opt_int("started_at")?,
        finished_at_ms: row.opt_int("finished_at")?,
        progress: Progress {
            pages_done: row.uint("pages_done")?,
            pages_failed: row.uint("pages_failed")?,
            pages_known: row.uint("pages_known")?,
            records: row.uint("records")?,
            bytes: row.uint("bytes")?,
            compute_units: row.uint("compute_units")?,
        },
        error: row.opt_text("error")?,
    })
}
