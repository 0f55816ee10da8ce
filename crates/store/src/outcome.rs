//! A run's outcome, written with the run's end (SPEC §5): the change summary of a monitor's
//! run and the notifications it causes go into the database in the same transaction that
//! settles the run, so a worker killed at any moment leaves either a running run (which
//! another worker finishes, computing the outcome again) or a finished run with its
//! summary and its outbox rows — never a finished run whose notifications were lost.
//! Runs settled elsewhere (a lost worker's last attempt) get theirs from
//! [`Store::record_outcome`], called by the workers' sweep for runs whose
//! `outcome_recorded_at` is still empty.

use serde::{Deserialize, Serialize};

use crate::db::{WritePool, to_sql_int, with_pool};
use crate::queue::{bind_progress, raise_progress_sql};
use crate::runs::run_columns;
use crate::{Progress, RunState, Store, StoreError};

/// The change summary of one run of a monitor against the previous completed run of the
/// same task (`run_changes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunChanges {
    pub run_id: String,
    pub task_id: String,
    pub user_id: String,
    /// The run compared with; `None` for a monitor's first run (every record is `added`).
    pub previous_run_id: Option<String>,
    /// The field that identified records across runs; `None`: a hash of the whole record.
    pub key_field: Option<String>,
    pub previous_records: u64,
    pub records: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// `(added + removed + changed) / max(previous_records, records, 1)`.
    pub changed_fraction: f64,
    /// Whether the change passed the task's `change_threshold` (a `changes.detected` event
    /// is sent only then).
    pub passed_threshold: bool,
    /// Entries of the per-record detail, stored in chunks of `detail_chunk_size`.
    pub detail_items: u64,
    pub detail_chunk_size: u32,
    /// Objects of this run's key-sorted snapshot (what the next run is compared with).
    pub snapshot_chunks: u32,
    pub created_at_ms: i64,
}

/// One notification to deliver (`deliveries`): an event for one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDelivery {
    pub id: String,
    pub user_id: String,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    /// `run.completed`, `run.failed`, `run.partial`, `changes.detected`, …
    pub event: String,
    /// `webhook`, `slack` or `email`.
    pub channel: String,
    /// The URL or e-mail address.
    pub target: String,
    /// The event document (a webhook's JSON body).
    pub payload: serde_json::Value,
    pub next_attempt_at_ms: i64,
    pub give_up_at_ms: i64,
    pub created_at_ms: i64,
}

/// Inserts one `run_changes` row (replacing one an earlier attempt may have left).
macro_rules! insert_changes {
    ($executor:expr, $changes:expr) => {{
        let changes: &RunChanges = $changes;
        sqlx::query(
            "INSERT INTO run_changes (run_id, task_id, user_id, previous_run_id, key_field, \
             previous_records, records, added, removed, changed, unchanged, changed_fraction, \
             passed_threshold, detail_items, detail_chunk_size, snapshot_chunks, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (run_id) DO NOTHING",
        )
        .bind(&changes.run_id)
        .bind(&changes.task_id)
        .bind(&changes.user_id)
        .bind(&changes.previous_run_id)
        .bind(&changes.key_field)
        .bind(to_sql_int(changes.previous_records))
        .bind(to_sql_int(changes.records))
        .bind(to_sql_int(changes.added))
        .bind(to_sql_int(changes.removed))
        .bind(to_sql_int(changes.changed))
        .bind(to_sql_int(changes.unchanged))
        .bind(changes.changed_fraction)
        .bind(i64::from(changes.passed_threshold))
        .bind(to_sql_int(changes.detail_items))
        .bind(i64::from(changes.detail_chunk_size))
        .bind(i64::from(changes.snapshot_chunks))
        .bind(changes.created_at_ms)
        .execute($executor)
        .await?;
    }};
}

/// Inserts one pending delivery; a second one for the same (run, event, channel, target)
/// is ignored, so recording an outcome twice never sends twice.
macro_rules! insert_delivery {
    ($executor:expr, $delivery:expr) => {{
        let delivery: &NewDelivery = $delivery;
        sqlx::query(
            "INSERT INTO deliveries (id, user_id, task_id, run_id, event, channel, target, \
             payload, state, attempts, next_attempt_at, give_up_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10, $11) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&delivery.id)
        .bind(&delivery.user_id)
        .bind(&delivery.task_id)
        .bind(&delivery.run_id)
        .bind(&delivery.event)
        .bind(&delivery.channel)
        .bind(&delivery.target)
        .bind(delivery.payload.to_string())
        .bind(delivery.next_attempt_at_ms)
        .bind(delivery.give_up_at_ms)
        .bind(delivery.created_at_ms)
        .execute($executor)
        .await?;
    }};
}

impl Store {
    /// [`Store::finish_run`] with the run's outcome: ends the run in a terminal `state` (only
    /// if `worker_id` still holds its lease) and, in the same transaction, stores the change
    /// summary and queues the deliveries, and marks the outcome recorded. False (and nothing
    /// written) when the worker no longer holds the run.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_run_with_outcome(
        &self,
        run_id: &str,
        worker_id: &str,
        state: RunState,
        reason: &str,
        error: Option<&str>,
        progress: &Progress,
        now_ms: i64,
        changes: Option<&RunChanges>,
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        if !state.is_terminal() {
            return Err(StoreError::InvalidArgument(format!(
                "a run cannot finish as `{state}`"
            )));
        }
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = bind_progress(
                sqlx::query(concat!(
                    "UPDATE runs SET ",
                    raise_progress_sql!(),
                    ", state = $7, reason = $8, error = $9, finished_at = $10, lease_until = NULL, \
                     outcome_recorded_at = $10 \
                     WHERE id = $11 AND lease_owner = $12 AND state = 'running'"
                )),
                progress,
            )
            .bind(state.as_str())
            .bind(reason)
            .bind(error)
            .bind(now_ms)
            .bind(run_id)
            .bind(worker_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            if let Some(changes) = changes {
                insert_changes!(&mut *tx, changes);
            }
            for delivery in deliveries {
                insert_delivery!(&mut *tx, delivery);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Records the outcome of a run settled without [`Store::finish_run_with_outcome`]
    /// (failed after a lost worker's last attempt, cancelled in the queue): queues
    /// `deliveries` and marks the outcome recorded, once — false when it was recorded
    /// already or the run is not finished.
    pub async fn record_outcome(
        &self,
        run_id: &str,
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE runs SET outcome_recorded_at = $1 \
                 WHERE id = $2 AND outcome_recorded_at IS NULL AND finished_at IS NOT NULL",
            )
            .bind(now_ms)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            for delivery in deliveries {
                insert_delivery!(&mut *tx, delivery);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Finished runs whose outcome was not recorded yet (settled by a lost worker's
    /// requeue or in the queue), oldest first, at most `limit`.
    pub async fn runs_without_outcome(&self, limit: u32) -> Result<Vec<crate::Run>, StoreError> {
        with_pool!(&self.db, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE outcome_recorded_at IS NULL AND finished_at IS NOT NULL \
                 ORDER BY finished_at LIMIT $1",
            ))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter().map(crate::runs::run_from_row).collect()
        })
    }
}
