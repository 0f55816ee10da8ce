//! The compute-unit ledger: append-only grants and charges with idempotency keys, and the
//! balances derived from it.

use crate::db::{RowExt, now_ms, to_sql_int, with_pool};
use crate::{LedgerEntry, LedgerKind, OwnedRun, Plans, RunLease, Store, StoreError};

/// The columns of `ledger` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! ledger_columns {
    () => {
        "id, user_id, run_id, idempotency_key, kind, amount, mode, created_at"
    };
}

/// The ledger idempotency key of `user_id`'s monthly compute-unit grant for `month`
/// (`yyyy-mm`, UTC). Every grant of a month's allowance (the worker's job, a new account, a
/// plan change, a billing upgrade's top-up) uses it, so a user gets each month's units once.
/// Existing ledgers hold these keys: the format must never change.
pub fn monthly_grant_key(user_id: &str, month: &str) -> String {
    format!("grant:{user_id}:{month}")
}

impl Store {
    /// Grants `user_id` the monthly compute units of plan `plan_name` for `month`
    /// (`yyyy-mm`, UTC) once, under [`monthly_grant_key`]; false when the plan has no monthly
    /// allowance or the month's grant was made already.
    pub async fn grant_monthly_compute_units(
        &self,
        plans: &Plans,
        user_id: &str,
        plan_name: &str,
        month: &str,
    ) -> Result<bool, StoreError> {
        let (_, plan) = plans.plan_for(plan_name);
        let Some(amount) = plan.monthly_compute_units else {
            return Ok(false);
        };
        self.grant_compute_units(user_id, amount, &monthly_grant_key(user_id, month))
            .await
    }

    /// Grants compute units once per `idempotency_key` (monthly grants use
    /// [`monthly_grant_key`]); false when that key was used already.
    pub async fn grant_compute_units(
        &self,
        user_id: &str,
        amount: u64,
        idempotency_key: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "INSERT INTO ledger (user_id, run_id, idempotency_key, kind, amount, mode, created_at) \
                 VALUES ($1, NULL, $2, 'grant', $3, NULL, $4) ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(user_id)
            .bind(idempotency_key)
            .bind(to_sql_int(amount))
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Grants minus charges, over the user's whole history; negative when overdrawn.
    pub async fn compute_unit_balance(&self, user_id: &str) -> Result<i64, StoreError> {
        with_pool!(&self.db, |pool| {
            // CAST keeps the sum a 64-bit integer on PostgreSQL, where SUM(bigint) is numeric.
            sqlx::query(
                "SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'grant' THEN amount ELSE -amount END), 0) AS BIGINT) \
                 AS balance FROM ledger WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await?
            .int("balance")
        })
    }

    /// Compute units charged to the user at or after `since_ms`.
    pub async fn compute_units_used(
        &self,
        user_id: &str,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        self.ledger_total_since(user_id, LedgerKind::Charge, since_ms)
            .await
    }

    /// Compute units granted to the user at or after `since_ms`.
    pub async fn compute_units_granted_since(
        &self,
        user_id: &str,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        self.ledger_total_since(user_id, LedgerKind::Grant, since_ms)
            .await
    }

    /// The sum of the user's `kind` entries made at or after `since_ms`.
    async fn ledger_total_since(
        &self,
        user_id: &str,
        kind: LedgerKind,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS total FROM ledger \
                 WHERE user_id = $1 AND kind = $2 AND created_at >= $3",
            )
            .bind(user_id)
            .bind(kind.as_str())
            .bind(since_ms)
            .fetch_one(pool)
            .await?
            .uint("total")
        })
    }

    /// The ledger entries of one of the user's runs, in the order they were written.
    pub async fn ledger_entries_for_run(
        &self,
        run: &OwnedRun,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.ledger_entries_by_run_id(&run.id).await
    }

    /// The ledger entries of the run the worker holds (see
    /// [`Store::run_pages_for_lease`]).
    pub async fn ledger_entries_for_lease(
        &self,
        lease: RunLease<'_>,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.check_lease(lease).await?;
        self.ledger_entries_by_run_id(lease.run_id).await
    }

    /// By run id alone: for the store's own use and the test support, which read the
    /// entries of runs that no longer exist.
    pub(crate) async fn ledger_entries_by_run_id(
        &self,
        run_id: &str,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                ledger_columns!(),
                " FROM ledger WHERE run_id = $1 ORDER BY id"
            ))
            .bind(run_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(ledger_entry_from_row)
            .collect()
        })
    }
}

fn ledger_entry_from_row(row: &impl RowExt) -> Result<LedgerEntry, StoreError> {
    let kind = match row.text("kind")?.as_str() {
        "grant" => LedgerKind::Grant,
        "charge" => LedgerKind::Charge,
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown ledger kind {other:?}"
            )));
        }
    };
    Ok(LedgerEntry {
        id: row.int("id")?,
        user_id: row.text("user_id")?,
        run_id: row.opt_text("run_id")?,
        idempotency_key: row.text("idempotency_key")?,
        kind,
        amount: row.uint("amount")?,
        mode: row.opt_text("mode")?,
        created_at_ms: row.int("created_at")?,
    })
}
