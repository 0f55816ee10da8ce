//! Usage analytics: one user's runs per UTC day (runs, pages, records, compute units,
//! outcomes) for the usage and dashboard routes, and the installation-wide count of active
//! users for `selextract_active_users`.

use crate::db::{RowExt, with_pool};
use crate::{Store, StoreError};

impl Store {
    /// Enabled users active at or after `since_ms`: an API key used, a live session (not
    /// revoked, not expired at `now_ms`) seen, or a refresh token issued (a login or a
    /// rotation) and still valid. One row per user, whatever the number of credentials.
    pub async fn count_active_users(&self, since_ms: i64, now_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "\
SELECT COUNT(*) AS n FROM users u WHERE u.disabled = 0 AND ( \
    EXISTS (SELECT 1 FROM api_keys k WHERE k.user_id = u.id AND k.last_used_at >= $1) \
    OR EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL \
               AND s.expires_at > $2 AND s.last_seen_at >= $1) \
    OR EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.user_id = u.id AND r.revoked_at IS NULL \
               AND r.expires_at > $2 AND r.created_at >= $1))";
        with_pool!(&self.db, |pool| {
            sqlx::query(SQL)
                .bind(since_ms)
                .bind(now_ms)
                .fetch_one(pool)
                .await?
                .uint("n")
        })
    }
}
