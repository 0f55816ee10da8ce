//! Charges outside a run's pages (previews) and the user list the monthly grant job walks.

use crate::db::{RowExt, now_ms, to_sql_int, with_pool};
use crate::{Store, StoreError};

impl Store {
    /// Charges compute units once per `idempotency_key` (previews use `preview:{uuid}`);
    /// false when that key was charged already.
    pub async fn charge_compute_units(
        &self,
        user_id: &str,
        amount: u64,
        idempotency_key: &str,
        mode: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "INSERT INTO ledger (user_id, run_id, idempotency_key, kind, amount, mode, created_at) \
                 VALUES ($1, NULL, $2, 'charge', $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(user_id)
            .bind(idempotency_key)
            .bind(to_sql_int(amount))
            .bind(mode)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// `(user id, plan)` of every enabled user, for the monthly grant job.
    pub async fn list_user_plans(&self) -> Result<Vec<(String, String)>, StoreError> {
        with_pool!(&self.db, |pool| {
            let rows =
                sqlx::query("SELECT id, plan FROM users WHERE disabled = 0 ORDER BY created_at")
                    .fetch_all(pool)
                    .await?;
            rows.iter()
                .map(|row| Ok((row.text("id")?, row.text("plan")?)))
                .collect()
        })
    }
}
