//! The durable queue (SPEC §4): claiming runs under a lease, renewing it, settling runs, and
//! recovering runs whose worker vanished.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::PgPool;

use crate::db::{Db, RowExt, WritePool, duration_ms, to_sql_int, with_pool};
use crate::dialect::{POSTGRES_ANY_CLAIMABLE, POSTGRES_CLAIM_NEXT_RUN, SQLITE_CLAIM_NEXT_RUN};
use crate::runs::run_from_row;
use crate::{LeaseStatus, Progress, RequeueReport, Run, RunState, Store, StoreError};

/// Raises each progress counter to the bound value, never lowers it (`commit_page` has
/// already added committed pages). `CASE` rather than MAX()/GREATEST() keeps it portable.
/// Binds `$1`…`$6`: pages_done, pages_failed, pages_known, records, bytes, compute_units.
macro_rules! raise_progress_sql {
    () => {
        "pages_done = CASE WHEN pages_done > $1 THEN pages_done ELSE $1 END, \
         pages_failed = CASE WHEN pages_failed > $2 THEN pages_failed ELSE $2 END, \
         pages_known = CASE WHEN pages_known > $3 THEN pages_known ELSE $3 END, \
         records = CASE WHEN records > $4 THEN records ELSE $4 END, \
         bytes = CASE WHEN bytes > $5 THEN bytes ELSE $5 END, \
         compute_units = CASE WHEN compute_units > $6 THEN compute_units ELSE $6 END"
    };
}
pub(crate) use raise_progress_sql;

impl Store {
    /// Claims the next run for `worker_id` (SPEC §4): among queued runs of enabled users
    /// below their `max_concurrent_runs`, the user with the fewest running runs goes first,
    /// then higher priority, then the oldest run. The run becomes `running` with a lease
    /// until `now_ms + lease` and its attempt counter goes up by one. Atomic across
    /// processes: a run is claimed by exactly one caller.
    pub async fn claim_next_run(
        &self,
        worker_id: &str,
        lease: Duration,
        now_ms: i64,
    ) -> Result<Option<Run>, StoreError> {
        let lease_until = now_ms.saturating_add(duration_ms(lease));
        match &self.db {
            Db::Sqlite(pool) => sqlx::query(SQLITE_CLAIM_NEXT_RUN)
                .bind(worker_id)
                .bind(lease_until)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
                .map(|row| run_from_row(&row))
                .transpose(),
            Db::Postgres(pool) => {
                claim_next_run_postgres(pool, worker_id, lease_until, now_ms).await
            }
        }
    }

    /// Extends the worker's lease on the run and records its progress. `Lost` when the run
    /// is no longer running under this worker (requeued, reclaimed, finished).
    pub async fn renew_lease(
        &self,
        run_id: &str,
        worker_id: &str,
        lease: Duration,
        progress: &Progress,
        now_ms: i64,
    ) -> Result<LeaseStatus, StoreError> {
        with_pool!(&self.db, |pool| {
            let row = bind_progress(
                sqlx::query(concat!(
                    "UPDATE runs SET ",
                    raise_progress_sql!(),
                    ", lease_until = $7 WHERE id = $8 AND lease_owner = $9 AND state = 'running' \
                     RETURNING cancel_requested"
                )),
                progress,
            )
            .bind(now_ms.saturating_add(duration_ms(lease)))
            .bind(run_id)
            .bind(worker_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Ok(LeaseStatus::Held {
                    cancel_requested: row.flag("cancel_requested")?,
                }),
                None => Ok(LeaseStatus::Lost),
            }
        })
    }

    /// Settles runs whose lease ran out before `now_ms` (their worker died or hung): back
    /// to `queued` while attempts remain, else `failed` with reason
    /// `worker_lost_max_attempts`; a run whose user asked to cancel becomes `cancelled`.
    pub async fn requeue_expired_runs(&self, now_ms: i64) -> Result<RequeueReport, StoreError> {
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let cancelled = ids_of(&sqlx::query(
                "UPDATE runs SET state = 'cancelled', reason = 'cancelled_by_user', finished_at = $1, \
                 lease_until = NULL \
                 WHERE state = 'running' AND lease_until < $1 AND cancel_requested = 1 RETURNING id",
            )
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?)?;
            let failed = ids_of(&sqlx::query(
                "UPDATE runs SET state = 'failed', reason = 'worker_lost_max_attempts', finished_at = $1, \
                 lease_until = NULL, error = 'the worker running this run stopped renewing its lease' \
                 WHERE state = 'running' AND lease_until < $1 AND attempt >= max_attempts RETURNING id",
            )
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?)?;
            let requeued = ids_of(
                &sqlx::query(
                    "UPDATE runs SET state = 'queued', lease_owner = NULL, lease_until = NULL \
                 WHERE state = 'running' AND lease_until < $1 RETURNING id",
                )
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?,
            )?;
            tx.commit().await?;
            Ok(RequeueReport {
                requeued,
                failed,
                cancelled,
            })
        })
    }

    /// Hands a running run back to the queue on graceful shutdown, undoing the attempt the
    /// claim counted so that a restart does not use up attempts. A run whose cancellation
    /// was requested becomes `cancelled` instead. False when the worker does not hold it.
    pub async fn release_run(&self, run_id: &str, worker_id: &str) -> Result<bool, StoreError> {
        let now = crate::db::now_ms();
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "UPDATE runs SET \
                   state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END, \
                   reason = CASE WHEN cancel_requested = 1 THEN 'cancelled_by_user' ELSE reason END, \
                   finished_at = CASE WHEN cancel_requested = 1 THEN $1 ELSE finished_at END, \
                   attempt = CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END, \
                   lease_owner = NULL, lease_until = NULL \
                 WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
            )
            .bind(now)
            .bind(run_id)
            .bind(worker_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Ends a run in a terminal `state` with its reason, error and final progress, only if
    /// `worker_id` still holds its lease; false otherwise (the run went to another worker or
    /// was settled already). A non-terminal `state` is [`StoreError::InvalidArgument`].
    /// The run ends with no change summary and no notifications; the worker finishes runs
    /// with [`Store::finish_run_with_outcome`].
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_run(
        &self,
        run_id: &str,
        worker_id: &str,
        state: RunState,
        reason: &str,
        error: Option<&str>,
        progress: &Progress,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.finish_run_with_outcome(
            run_id,
            worker_id,
            state,
            reason,
            error,
            progress,
            now_ms,
            None,
            &[],
        )
        .await
    }

    /// Number of runs in each state; every state is present, with 0 when empty.
    pub async fn queue_depth(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut depth: BTreeMap<String, u64> = RunState::ALL
            .iter()
            .map(|state| (state.as_str().to_owned(), 0))
            .collect();
        with_pool!(&self.db, |pool| {
            let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM runs GROUP BY state")
                .fetch_all(pool)
                .await?;
            for row in &rows {
                depth.insert(row.text("state")?, row.uint("n")?);
            }
            Ok(depth)
        })
    }

    /// How long the oldest queued run has waited; `None` when nothing is queued.
    pub async fn oldest_queued_age_ms(&self, now_ms: i64) -> Result<Option<i64>, StoreError> {
        with_pool!(&self.db, |pool| {
            let oldest =
                sqlx::query("SELECT MIN(queued_at) AS oldest FROM runs WHERE state = 'queued'")
                    .fetch_one(pool)
                    .await?
                    .opt_int("oldest")?;
            Ok(oldest.map(|queued_at| now_ms.saturating_sub(queued_at).max(0)))
        })
    }
}

/// How many times a PostgreSQL claim tries before reporting "nothing to claim": the user
/// it picked can have had their runs claimed or cancelled since the statement's snapshot.
const POSTGRES_CLAIM_ATTEMPTS: usize = 4;

/// The PostgreSQL claim: one statement ([`POSTGRES_CLAIM_NEXT_RUN`]), retried when it came
/// back empty although a user is still claimable.
async fn claim_next_run_postgres(
    pool: &PgPool,
    worker_id: &str,
    lease_until: i64,
    now_ms: i64,
) -> Result<Option<Run>, StoreError> {
    for _ in 0..POSTGRES_CLAIM_ATTEMPTS {
        let claimed = sqlx::query(POSTGRES_CLAIM_NEXT_RUN)
            .bind(worker_id)
            .bind(lease_until)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?;
        if let Some(row) = claimed {
            return run_from_row(&row).map(Some);
        }
        let claimable = sqlx::query(POSTGRES_ANY_CLAIMABLE)
            .fetch_one(pool)
            .await?
            .flag("claimable")?;
        if !claimable {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Binds `$1`…`$6` of [`raise_progress_sql!`].
pub(crate) fn bind_progress<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments>,
    progress: &Progress,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: sqlx::Database,
    i64: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
{
    query
        .bind(to_sql_int(progress.pages_done))
        .bind(to_sql_int(progress.pages_failed))
        .bind(to_sql_int(progress.pages_known))
        .bind(to_sql_int(progress.records))
        .bind(to_sql_int(progress.bytes))
        .bind(to_sql_int(progress.compute_units))
}

fn ids_of(rows: &[impl RowExt]) -> Result<Vec<String>, StoreError> {
    rows.iter().map(|row| row.text("id")).collect()
}
