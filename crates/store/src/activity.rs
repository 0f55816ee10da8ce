//! Installation-wide activity for `selextract status` and the admin routes: runs finished
//! in a period by terminal state, and compute units charged in a period, over all users.

use std::collections::BTreeMap;

use crate::db::{RowExt, with_pool};
use crate::{Store, StoreError};

impl Store {
    /// Runs that reached a terminal state at or after `since_ms`, counted by state.
    pub async fn count_runs_finished_since(
        &self,
        since_ms: i64,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        with_pool!(&self.db, |pool| {
            let rows = sqlx::query(
                "SELECT state, COUNT(*) AS n FROM runs \
                 WHERE finished_at IS NOT NULL AND finished_at >= $1 GROUP BY state",
            )
            .bind(since_ms)
            .fetch_all(pool)
            .await?;
            let mut counts = BTreeMap::new();
            for row in &rows {
                counts.insert(row.text("state")?, row.uint("n")?);
            }
            Ok(counts)
        })
    }

    /// Compute units charged to anyone at or after `since_ms`.
    pub async fn compute_units_charged_since(&self, since_ms: i64) -> Result<u64, StoreError> {
        with_pool!(&self.db, |pool| {
            // CAST keeps the sum a 64-bit integer on PostgreSQL, where SUM(bigint) is numeric.
            sqlx::query(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS charged FROM ledger \
                 WHERE kind = 'charge' AND created_at >= $1",
            )
            .bind(since_ms)
            .fetch_one(pool)
            .await?
            .uint("charged")
        })
    }
}
