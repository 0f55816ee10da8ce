//! Installation-wide flags (maintenance mode, "bootstrap done", …) as key → text.

use crate::db::{RowExt, with_pool};
use crate::{Store, StoreError};

impl Store {
    pub async fn get_flag(&self, key: &str) -> Result<Option<String>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("SELECT value FROM kv WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
                .map(|row| row.text("value"))
                .transpose()
        })
    }

    /// Sets the flag, or removes it when `value` is `None`.
    pub async fn set_flag(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        with_pool!(&self.db, |pool| {
            match value {
                Some(value) => {
                    sqlx::query(
                        "INSERT INTO kv (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(key)
                    .bind(value)
                    .execute(pool)
                    .await?
                }
                None => {
                    sqlx::query("DELETE FROM kv WHERE key = $1")
                        .bind(key)
                        .execute(pool)
                        .await?
                }
            };
            Ok(())
        })
    }
}
