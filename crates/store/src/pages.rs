//! Committed pages of a run: the crash-safe unit of progress. One page's row, its records'
//! location, its run counters and its compute-unit charge are written together or not at
//! all, and a page is committed (and charged) at most once however often it is re-executed.

use std::collections::HashSet;

use crate::db::{RowExt, WritePool, now_ms, to_sql_int, with_pool};
use crate::{
    CommitOutcome, OwnedRun, PageCommit, PageOutcome, RunLease, RunPage, RunState, Store,
    StoreError,
};

/// The columns of `run_pages` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! run_pages_columns {
    () => {
        "run_id, page_key, seq, url, status, outcome, records, bytes, object_key, first_record, created_at"
    };
}

impl Store {
    /// Commits one page in one transaction; see [`CommitOutcome`]. The ledger charge has
    /// the idempotency key `run:{run_id}:page:{page_key}`.
    pub async fn commit_page(&self, commit: PageCommit) -> Result<CommitOutcome, StoreError> {
        let lock_run = self.db.dialect().lock_run_for_commit;
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let Some(run) = sqlx::query(lock_run)
                .bind(&commit.run_id)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(CommitOutcome::LeaseLost);
            };
            let holds_lease = run.parsed::<RunState>("state")? == RunState::Running
                && run.opt_text("lease_owner")?.as_deref() == Some(commit.worker_id.as_str());
            if !holds_lease {
                return Ok(CommitOutcome::LeaseLost);
            }
            let owner = run.text("user_id")?;
            if owner != commit.user_id {
                return Err(StoreError::Conflict(format!(
                    "page commit names user {} but run {} belongs to another user",
                    commit.user_id, commit.run_id
                )));
            }

            let exists =
                sqlx::query("SELECT 1 AS one FROM run_pages WHERE run_id = $1 AND page_key = $2")
                    .bind(&commit.run_id)
                    .bind(&commit.page_key)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_some() {
                return Ok(CommitOutcome::AlreadyCommitted);
            }

            // The next page follows the last one: its records start where the last page's end.
            let last = sqlx::query(
                "SELECT seq, first_record + records AS next_record FROM run_pages \
                 WHERE run_id = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(&commit.run_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (seq, first_record) = match last {
                Some(row) => (row.uint::<u64>("seq")? + 1, row.uint::<u64>("next_record")?),
                None => (1, 0),
            };

            sqlx::query(
                "INSERT INTO run_pages (run_id, page_key, seq, url, status, outcome, records, bytes, \
                 object_key, first_record, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&commit.run_id)
            .bind(&commit.page_key)
            .bind(to_sql_int(seq))
            .bind(&commit.url)
            .bind(commit.status.map(i64::from))
            .bind(commit.outcome.as_str())
            .bind(to_sql_int(commit.records))
            .bind(to_sql_int(commit.bytes))
            .bind(&commit.object_key)
            .bind(to_sql_int(first_record))
            .bind(now)
            .execute(&mut *tx)
            .await?;

            let mut charged = 0;
            if commit.charge > 0 {
                let inserted = sqlx::query(
                    "INSERT INTO ledger (user_id, run_id, idempotency_key, kind, amount, mode, created_at) \
                     VALUES ($1, $2, $3, 'charge', $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING",
                )
                .bind(&owner)
                .bind(&commit.run_id)
                .bind(page_charge_key(&commit.run_id, &commit.page_key))
                .bind(to_sql_int(commit.charge))
                .bind(&commit.mode)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // A charge that already exists (its page row was pruned) is not counted twice.
                if inserted.rows_affected() == 1 {
                    charged = commit.charge;
                }
            }

            let (done, failed) = match commit.outcome {
                PageOutcome::Ok => (1, 0),
                PageOutcome::Failed => (0, 1),
            };
            sqlx::query(
                "UPDATE runs SET pages_done = pages_done + $1, pages_failed = pages_failed + $2, \
                 records = records + $3, bytes = bytes + $4, compute_units = compute_units + $5 \
                 WHERE id = $6",
            )
            .bind(done)
            .bind(failed)
            .bind(to_sql_int(commit.records))
            .bind(to_sql_int(commit.bytes))
            .bind(to_sql_int(charged))
            .bind(&commit.run_id)
            .execute(&mut *tx)
            .await?;

            tx.commit().await?;
            Ok(CommitOutcome::Committed { seq, first_record })
        })
    }

    /// Keys of the pages already committed for the run, so a re-executed run skips them.
    pub async fn committed_page_keys(&self, run_id: &str) -> Result<HashSet<String>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("SELECT page_key FROM run_pages WHERE run_id = $1")
                .bind(run_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| row.text("page_key"))
                .collect()
        })
    }

    /// The run's committed pages in commit order.
    pub async fn run_pages(&self, run: &OwnedRun) -> Result<Vec<RunPage>, StoreError> {
        self.run_pages_by_id(&run.id).await
    }

    /// The committed pages of the run the worker holds, in commit order: the worker's path
    /// to any user's run, checked against the lease instead of an owner.
    /// [`StoreError::Conflict`] when the worker does not hold the run's lease.
    pub async fn run_pages_for_lease(
        &self,
        lease: RunLease<'_>,
    ) -> Result<Vec<RunPage>, StoreError> {
        self.check_lease(lease).await?;
        self.run_pages_by_id(lease.run_id).await
    }

    /// Refuses a read through a lease the worker does not hold (any more).
    pub(crate) async fn check_lease(&self, lease: RunLease<'_>) -> Result<(), StoreError> {
        let held = with_pool!(&self.db, |pool| {
            sqlx::query(
                "SELECT 1 AS one FROM runs WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
            )
            .bind(lease.run_id)
            .bind(lease.worker_id)
            .fetch_optional(pool)
            .await?
            .is_some()
        });
        if held {
            return Ok(());
        }
        Err(StoreError::Conflict(format!(
            "worker {} does not hold the lease of run {}",
            lease.worker_id, lease.run_id
        )))
    }

    pub(crate) async fn run_pages_by_id(&self, run_id: &str) -> Result<Vec<RunPage>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                run_pages_columns!(),
                " FROM run_pages WHERE run_id = $1 ORDER BY seq"
            ))
            .bind(run_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(run_page_from_row)
            .collect()
        })
    }

    /// The pages (in commit order) holding any of the run's records `offset ..
    /// offset + limit`; pages without records never match.
    pub async fn pages_for_record_range(
        &self,
        run: &OwnedRun,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<RunPage>, StoreError> {
        let run_id = run.id.as_str();
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = to_sql_int(offset);
        let end = to_sql_int(offset.saturating_add(limit));
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                run_pages_columns!(),
                " FROM run_pages WHERE run_id = $1 AND records > 0 \
                 AND first_record < $2 AND first_record + records > $3 ORDER BY seq"
            ))
            .bind(run_id)
            .bind(end)
            .bind(start)
            .fetch_all(pool)
            .await?
            .iter()
            .map(run_page_from_row)
            .collect()
        })
    }
}

/// The ledger idempotency key of a page's charge.
pub fn page_charge_key(run_id: &str, page_key: &str) -> String {
    format!("run:{run_id}:page:{page_key}")
}

fn run_page_from_row(row: &impl RowExt) -> Result<RunPage, StoreError> {
    Ok(RunPage {
        run_id: row.text("run_id")?,
        page_key: row.text("page_key")?,
        seq: row.uint("seq")?,
        url: row.text("url")?,
        status: row.opt_uint("status")?,
        outcome: row.parsed("outcome")?,
        records: row.uint("records")?,
        bytes: row.uint("bytes")?,
        object_key: row.opt_text("object_key")?,
        first_record: row.uint("first_record")?,
        created_at_ms: row.int("created_at")?,
    })
}
