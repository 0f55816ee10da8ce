//! Worker liveness: each worker process upserts a heartbeat row; status and health read
//! the recent ones.

use std::time::Duration;

use crate::db::{RowExt, duration_ms, to_sql_int, with_pool};
use crate::{Store, StoreError, WorkerHeartbeat};

/// The columns of `workers` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! workers_columns {
    () => {
        "id, host, pid, started_at, heartbeat_at, active_runs, processed"
    };
}

impl Store {
    /// Creates or replaces the worker's heartbeat row.
    pub async fn upsert_worker_heartbeat(
        &self,
        worker: &WorkerHeartbeat,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO workers (id, host, pid, started_at, heartbeat_at, active_runs, processed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
                 started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, \
                 active_runs = excluded.active_runs, processed = excluded.processed",
            )
            .bind(&worker.id)
            .bind(&worker.host)
            .bind(i64::from(worker.pid))
            .bind(worker.started_at_ms)
            .bind(worker.heartbeat_at_ms)
            .bind(i64::from(worker.active_runs))
            .bind(to_sql_int(worker.processed))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Removes the worker's row (on clean shutdown).
    pub async fn remove_worker(&self, worker_id: &str) -> Result<(), StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("DELETE FROM workers WHERE id = $1")
                .bind(worker_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Workers whose last heartbeat is at most `max_age` old, by id.
    pub async fn list_live_workers(
        &self,
        max_age: Duration,
        now_ms: i64,
    ) -> Result<Vec<WorkerHeartbeat>, StoreError> {
        let oldest = now_ms.saturating_sub(duration_ms(max_age));
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                workers_columns!(),
                " FROM workers WHERE heartbeat_at >= $1 ORDER BY id"
            ))
            .bind(oldest)
            .fetch_all(pool)
            .await?
            .iter()
            .map(worker_from_row)
            .collect()
        })
    }
}

fn worker_from_row(row: &impl RowExt) -> Result<WorkerHeartbeat, StoreError> {
    Ok(WorkerHeartbeat {
        id: row.text("id")?,
        host: row.text("host")?,
        pid: row.uint("pid")?,
        started_at_ms: row.int("started_at")?,
        heartbeat_at_ms: row.int("heartbeat_at")?,
        active_runs: row.uint("active_runs")?,
        processed: row.uint("processed")?,
    })
}
