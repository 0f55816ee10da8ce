//! Deleting for real: a task, a finished run or a whole account, rows and result objects.
//!
//! The order is crash-safe. One write transaction deletes the rows (runs, and by cascade
//! their pages and logs) and, in the same transaction, writes each deleted run's id into
//! `result_object_deletions`. Only after the commit are the run's result objects removed
//! (by the caller, which holds the object store), and only then is the run's entry
//! removed. So:
//! - no row a user can request ever names a missing object: the rows go first, atomically;
//! - no object is left behind forever: until its objects are gone a deleted run's id stays
//!   in `result_object_deletions`, and every sweep (each deletion request, each worker's
//!   housekeeping) retries what is due.
//!
//! A run that was running (or finished only recently) may still have a worker writing one
//! last page object after the sweep: that worker finds its run row gone at its next lease
//! renewal or page commit and stops, but an object it was already uploading can land
//! later. Such runs get a second sweep [`LATE_WRITE_GRACE_MS`] later.
//!
//! The ledger is the accounting record: deleting a task or a run keeps its entries, and
//! deleting an account keeps them with the user id replaced by `deleted:<uuid v4>` (in the
//! idempotency keys too, which embed the user id for monthly grants).

use std::future::Future;

use crate::db::{RowExt, WritePool, now_ms, with_pool};
use crate::{RunState, Store, StoreError};

/// How long after a deletion a run that was active may still receive a late page object
/// from a worker that has not yet noticed; its objects are swept again after this. Leases
/// are 30 s by default and a worker stops at its next renewal (≤ 1 s): ten minutes leaves a
/// wide margin for an upload already in flight.
pub const LATE_WRITE_GRACE_MS: i64 = 10 * 60 * 1000;

/// What a deletion removed from the database. The result objects of `run_ids` are still
/// to be removed: pass the report's runs to a sweep ([`Store::sweep_result_objects`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletionReport {
    /// Tasks deleted.
    pub tasks: u64,
    /// Runs deleted (their pages and logs went with them).
    pub run_ids: Vec<String>,
    /// Ledger entries kept with their user id anonymised (account deletion only).
    pub ledger_entries_anonymised: u64,
    /// The value that replaced the user id in the kept ledger entries.
    pub anonymised_as: Option<String>,
    /// Runs whose result objects were removed by the sweep that followed.
    pub object_runs_removed: u64,
    /// Runs whose result objects could not be removed yet; a later sweep retries them.
    pub object_runs_pending: u64,
}

/// The outcome of deleting one run of the user's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunDeletion {
    /// No such run, or another user's.
    NotFound,
    /// The run is queued or running: cancel it first.
    Active(RunState),
    Deleted(DeletionReport),
}

/// What one sweep of `result_object_deletions` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSweepReport {
    /// Runs whose objects were removed (including those kept for a second, later sweep).
    pub removed: u64,
    /// Runs whose objects could not be removed, with the error; retried by the next sweep.
    pub failed: Vec<(String, String)>,
}

/// Due entries read per round of a sweep.
const SWEEP_BATCH: i64 = 200;

impl Store {
    /// Deletes the user's task with all its runs, their pages and logs, in one
    /// transaction, and queues the runs' result objects for removal. Queued runs simply
    /// vanish; a running run's worker loses its lease at its next renewal and stops.
    /// `None` when the user has no such task.
    pub async fn delete_task(
        &self,
        user_id: &str,
        task_id: &str,
    ) -> Result<Option<DeletionReport>, StoreError> {
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let found = sqlx::query("SELECT id FROM tasks WHERE id = $1 AND user_id = $2")
                .bind(task_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Ok(None);
            }
            let runs = sqlx::query(
                "DELETE FROM runs WHERE task_id = $1 AND user_id = $2 \
                 RETURNING id, state, finished_at",
            )
            .bind(task_id)
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            let run_ids = queue_object_deletions!(tx, &runs, now);
            sqlx::query("DELETE FROM tasks WHERE id = $1 AND user_id = $2")
                .bind(task_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(DeletionReport {
                tasks: 1,
                run_ids,
                ..DeletionReport::default()
            }))
        })
    }

    /// Deletes one finished run of the user's (its pages and logs go with it) and queues
    /// its result objects for removal. A queued or running run is refused
    /// ([`RunDeletion::Active`]): deleting it would race its worker, and the user can
    /// cancel it first.
    pub async fn delete_finished_run(
        &self,
        user_id: &str,
        run_id: &str,
    ) -> Result<RunDeletion, StoreError> {
        let now = now_ms();
        let lock_run = self.db.dialect().lock_run_for_cancel;
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let state = sqlx::query(lock_run)
                .bind(run_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.parsed::<RunState>("state"))
                .transpose()?;
            match state {
                None => return Ok(RunDeletion::NotFound),
                Some(state) if !state.is_terminal() => return Ok(RunDeletion::Active(state)),
                Some(_) => {}
            }
            let runs = sqlx::query(
                "DELETE FROM runs WHERE id = $1 AND user_id = $2 RETURNING id, state, finished_at",
            )
            .bind(run_id)
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            let run_ids = queue_object_deletions!(tx, &runs, now);
            tx.commit().await?;
            Ok(RunDeletion::Deleted(DeletionReport {
                run_ids,
                ..DeletionReport::default()
            }))
        })
    }

    /// Deletes the user and everything that is theirs, in one transaction: runs (with
    /// pages and logs), tasks, API keys, sessions, tokens, identities, subscriptions — the
    /// tables that cascade from `users`. The ledger entries stay, with the user id replaced
    /// by a fresh `deleted:<uuid v4>` that links them to each other and to nobody. The
    /// runs' result objects are queued for removal. `None` when there is no such user.
    pub async fn delete_user_and_data(
        &self,
        user_id: &str,
    ) -> Result<Option<DeletionReport>, StoreError> {
        let now = now_ms();
        let anonymised_as = format!("deleted:{}", uuid::Uuid::new_v4());
        let report = with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let found = sqlx::query("SELECT id FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Ok(None);
            }
            let runs =
                sqlx::query("DELETE FROM runs WHERE user_id = $1 RETURNING id, state, finished_at")
                    .bind(user_id)
                    .fetch_all(&mut *tx)
                    .await?;
            let run_ids = queue_object_deletions!(tx, &runs, now);
            let ledger = sqlx::query(
                "UPDATE ledger SET user_id = $1, idempotency_key = REPLACE(idempotency_key, $2, $1) \
                 WHERE user_id = $2",
            )
            .bind(&anonymised_as)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            let tasks = sqlx::query("DELETE FROM tasks WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(Some(DeletionReport {
                tasks: tasks.rows_affected(),
                run_ids,
                ledger_entries_anonymised: ledger.rows_affected(),
                anonymised_as: Some(anonymised_as),
                ..DeletionReport::default()
            }))
        })?;
        // Bumped like every other change that takes a credential away, so every API
        // process drops the user's cached keys at once.
        if report.is_some() {
            self.bump_credential_revision().await?;
        }
        Ok(report)
    }

    /// Removes the result objects of deleted runs whose removal is due at `now_ms`, through
    /// `delete_objects(run_id)` (the caller's object store), until none is due. An entry is
    /// dropped only after its objects are gone; one whose run may still get a late write
    /// comes due again after [`LATE_WRITE_GRACE_MS`]; one that failed stays due and is
    /// retried by the next sweep. Safe to run in many processes at once: removing objects
    /// that are already gone is not an error.
    pub async fn sweep_result_objects<F, Fut, E>(
        &self,
        now_ms: i64,
        mut delete_objects: F,
    ) -> Result<ObjectSweepReport, StoreError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut report = ObjectSweepReport::default();
        let mut after = String::new();
        loop {
            let due = self.due_object_deletions(now_ms, &after).await?;
            let Some(last) = due.last() else {
                return Ok(report);
            };
            after.clone_from(last);
            for run_id in due {
                match delete_objects(run_id.clone()).await {
                    Ok(()) => {
                        self.object_deletion_done(&run_id, now_ms).await?;
                        report.removed += 1;
                    }
                    Err(error) => report.failed.push((run_id, error.to_string())),
                }
            }
        }
    }

    /// Deleted runs whose objects are still (or again) to be removed, due at `now_ms`.
    pub async fn pending_object_deletions(&self, now_ms: i64) -> Result<u64, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("SELECT COUNT(*) AS n FROM result_object_deletions WHERE due_at <= $1")
                .bind(now_ms)
                .fetch_one(pool)
                .await?
                .uint("n")
        })
    }

    /// One batch of due entries after `after` (by run id), so a failing entry does not
    /// keep a sweep from reaching the rest.
    async fn due_object_deletions(
        &self,
        now_ms: i64,
        after: &str,
    ) -> Result<Vec<String>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "SELECT run_id FROM result_object_deletions WHERE due_at <= $1 AND run_id > $2 \
                 ORDER BY run_id LIMIT $3",
            )
            .bind(now_ms)
            .bind(after)
            .bind(SWEEP_BATCH)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| row.text("run_id"))
            .collect()
        })
    }

    /// The run's objects are gone: its entry comes due again at its `recheck_at` when that
    /// is still ahead, else it is removed.
    async fn object_deletion_done(&self, run_id: &str, now_ms: i64) -> Result<(), StoreError> {
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let rescheduled = sqlx::query(
                "UPDATE result_object_deletions SET due_at = recheck_at, recheck_at = NULL \
                 WHERE run_id = $1 AND recheck_at IS NOT NULL AND recheck_at > $2",
            )
            .bind(run_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            if rescheduled.rows_affected() == 0 {
                sqlx::query("DELETE FROM result_object_deletions WHERE run_id = $1")
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

/// The removal entry of each deleted run (`runs` are the rows a `DELETE … RETURNING id,
/// state, finished_at` gave back): its id and when to sweep it a second time. A run that
/// was active, or finished within the grace period, gets that second sweep after
/// [`LATE_WRITE_GRACE_MS`].
fn removal_entries(
    runs: &[impl RowExt],
    now: i64,
) -> Result<Vec<(String, Option<i64>)>, StoreError> {
    runs.iter()
        .map(|row| {
            let state = row.parsed::<RunState>("state")?;
            let finished_at = row.opt_int("finished_at")?;
            let may_get_late_write = !state.is_terminal()
                || finished_at.is_none_or(|finished| finished > now - LATE_WRITE_GRACE_MS);
            Ok((
                row.text("id")?,
                may_get_late_write.then_some(now + LATE_WRITE_GRACE_MS),
            ))
        })
        .collect()
}

/// Writes the removal entries of deleted runs inside the deleting transaction and
/// evaluates to their run ids. A macro because its body is compiled once per backend.
macro_rules! queue_object_deletions {
    ($tx:expr, $runs:expr, $now:expr) => {{
        let entries = removal_entries($runs, $now)?;
        let mut run_ids = Vec::with_capacity(entries.len());
        for (run_id, recheck_at) in entries {
            sqlx::query(
                "INSERT INTO result_object_deletions (run_id, due_at, recheck_at) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id) DO UPDATE SET due_at = $2, recheck_at = $3",
            )
            .bind(&run_id)
            .bind($now)
            .bind(recheck_at)
            .execute(&mut *$tx)
            .await?;
            run_ids.push(run_id);
        }
        run_ids
    }};
}
use queue_object_deletions;
