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

use crate::db::{Db, RowExt, WritePool, now_ms, with_pool};
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

/// The outcome of deleting an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountDeletion {
    NoSuchUser,
    /// Refused: the user is the last enabled administrator.
    LastEnabledAdmin,
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
    /// by a fresh `deleted:<uuid v4>` that links them to each other and to nobody; the
    /// user's audit entries are anonymised the same way (see [`anonymise_audit`]). The
    /// runs' result objects are queued for removal. `None` when there is no such user.
    ///
    /// Not guarded: the API deletes accounts through [`Store::delete_account`], which
    /// refuses the last enabled administrator.
    pub async fn delete_user_and_data(
        &self,
        user_id: &str,
    ) -> Result<Option<DeletionReport>, StoreError> {
        Ok(match self.delete_account_guarded(user_id, false).await? {
            AccountDeletion::Deleted(report) => Some(report),
            AccountDeletion::NoSuchUser | AccountDeletion::LastEnabledAdmin => None,
        })
    }

    /// [`Store::delete_user_and_data`], refused for the last enabled administrator
    /// ([`AccountDeletion::LastEnabledAdmin`]) so that the installation keeps one. The check
    /// is in the deleting transaction: on SQLite the write transaction excludes every other
    /// writer; on PostgreSQL the enabled administrators' rows are locked (`FOR UPDATE`), so
    /// a demotion or disable that committed first is seen. Remaining window (PostgreSQL
    /// only): a demotion that *starts* while this transaction holds the locks counted its
    /// administrators before waiting and may still go through after this deletion commits —
    /// the same window the admin route's demote and disable guards have with each other.
    pub async fn delete_account(&self, user_id: &str) -> Result<AccountDeletion, StoreError> {
        self.delete_account_guarded(user_id, true).await
    }

    /// Whether the user is the last enabled administrator (a cheap pre-check, so that
    /// nothing irreversible — like cancelling the subscription — is done for a deletion
    /// that will be refused; [`Store::delete_account`] checks again atomically).
    pub async fn is_last_enabled_admin(&self, user_id: &str) -> Result<bool, StoreError> {
        with_pool!(&self.db, |pool| {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM users WHERE id = $1 AND is_admin = 1 AND disabled = 0) \
                 AS me, (SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0) AS n",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await?;
            Ok(row.int("me")? == 1 && row.int("n")? <= 1)
        })
    }

    async fn delete_account_guarded(
        &self,
        user_id: &str,
        keep_last_admin: bool,
    ) -> Result<AccountDeletion, StoreError> {
        let now = now_ms();
        let anonymised_as = format!("deleted:{}", uuid::Uuid::new_v4());
        let lock_admins = match &self.db {
            Db::Sqlite(_) => "SELECT id FROM users WHERE is_admin = 1 AND disabled = 0",
            Db::Postgres(_) => {
                "SELECT id FROM users WHERE is_admin = 1 AND disabled = 0 ORDER BY id FOR UPDATE"
            }
        };
        let outcome = with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let found = sqlx::query("SELECT id FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Ok(AccountDeletion::NoSuchUser);
            }
            if keep_last_admin {
                let admins: Vec<String> = sqlx::query(lock_admins)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|row| row.text("id"))
                    .collect::<Result<_, _>>()?;
                if admins.len() <= 1 && admins.iter().any(|id| id == user_id) {
                    return Ok(AccountDeletion::LastEnabledAdmin);
                }
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
            anonymise_audit!(tx, user_id, &anonymised_as);
            let tasks = sqlx::query("DELETE FROM tasks WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(AccountDeletion::Deleted(DeletionReport {
                tasks: tasks.rows_affected(),
                run_ids,
                ledger_entries_anonymised: ledger.rows_affected(),
                anonymised_as: Some(anonymised_as),
                ..DeletionReport::default()
            }))
        })?;
        // Bumped like every other change that takes a credential away, so every API
        // process drops the user's cached keys at once.
        if matches!(outcome, AccountDeletion::Deleted(_)) {
            self.bump_credential_revision().await?;
        }
        Ok(outcome)
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

/// Anonymises the deleted user's audit entries inside the deleting transaction, the one
/// exception to the audit log being append-only. Why: deletion is for real, yet the log must
/// keep what happened (the deletion itself among it). So, exactly as for the ledger,
/// `user_id` and `actor_id` equal to the user's id become the same `deleted:<uuid>` value,
/// `ip` is cleared and the top-level `"email"` key leaves `details`. Nothing else ever
/// changes an audit row. Details are rewritten in Rust (not with the backends' different
/// JSON functions) so both backends do exactly the same; a details text that is not a JSON
/// object is left as it is (the store never writes one).
macro_rules! anonymise_audit {
    ($tx:expr, $user_id:expr, $anonymised_as:expr) => {{
        let rows =
            sqlx::query("SELECT id, details FROM audit_log WHERE user_id = $1 OR actor_id = $1")
                .bind($user_id)
                .fetch_all(&mut *$tx)
                .await?;
        for row in &rows {
            let id = row.int("id")?;
            let details = row.text("details")?;
            let details = match serde_json::from_str::<serde_json::Value>(&details) {
                Ok(serde_json::Value::Object(mut map)) => {
                    map.remove("email");
                    serde_json::Value::Object(map).to_string()
                }
                _ => details,
            };
            sqlx::query(
                "UPDATE audit_log SET \
                 user_id = CASE WHEN user_id = $1 THEN $2 ELSE user_id END, \
                 actor_id = CASE WHEN actor_id = $1 THEN $2 ELSE actor_id END, \
                 ip = NULL, details = $3 WHERE id = $4",
            )
            .bind($user_id)
            .bind($anonymised_as)
            .bind(details)
            .bind(id)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
use anonymise_audit;
