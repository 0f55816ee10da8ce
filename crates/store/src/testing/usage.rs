//! Runs with chosen times and counts, for the usage-analytics suites: the numbers a test
//! hand-counts are exactly the ones in the rows, whatever a worker would have done.

use crate::db::{new_id, to_sql_int, with_pool};
use crate::{RunState, Store, StoreError};

/// A run to insert as if it had been queued at `queued_at_ms` and ended in `state`.
#[derive(Debug, Clone)]
pub struct UsageRun<'a> {
    pub user_id: &'a str,
    pub task_id: &'a str,
    pub state: RunState,
    pub queued_at_ms: i64,
    pub pages_done: u64,
    pub pages_failed: u64,
    pub records: u64,
    pub compute_units: u64,
}

/// Inserts the run (the task must be the user's); returns its id. Terminal runs get
/// `finished_at` one second after they were queued.
pub async fn insert_usage_run(store: &Store, run: &UsageRun<'_>) -> Result<String, StoreError> {
    let id = new_id();
    let finished_at = run
        .state
        .is_terminal()
        .then(|| run.queued_at_ms.saturating_add(1000));
    with_pool!(&store.db, |pool| {
        sqlx::query(
            "INSERT INTO runs (id, task_id, user_id, state, priority, spec, attempt, max_attempts, \
             queued_at, started_at, finished_at, pages_done, pages_failed, records, compute_units) \
             VALUES ($1, $2, $3, $4, 0, '{}', 1, 3, $5, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(run.task_id)
        .bind(run.user_id)
        .bind(run.state.as_str())
        .bind(run.queued_at_ms)
        .bind(finished_at)
        .bind(to_sql_int(run.pages_done))
        .bind(to_sql_int(run.pages_failed))
        .bind(to_sql_int(run.records))
        .bind(to_sql_int(run.compute_units))
        .execute(pool)
        .await?;
        Ok(id)
    })
}
