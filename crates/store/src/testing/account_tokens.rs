//! Test support for e-mailed account tokens: expiring them without waiting an hour.

use crate::db::with_pool;
use crate::{Store, StoreError};

/// Moves the expiry of every token sent to `email` (normalised) into the past; returns how
/// many tokens changed.
pub async fn expire_account_tokens_for(store: &Store, email: &str) -> Result<u64, StoreError> {
    let email = email.trim().to_lowercase();
    with_pool!(&store.db, |pool| {
        let done = sqlx::query("UPDATE account_tokens SET expires_at = 1 WHERE email = $1")
            .bind(&email)
            .execute(pool)
            .await?;
        Ok(done.rows_affected())
    })
}
