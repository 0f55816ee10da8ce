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

    /// The value under `key`, set to `value` first when there is none. Concurrent callers
    /// (other processes too) all get the value of the one insert that won.
    pub async fn get_or_init_flag(&self, key: &str, value: &str) -> Result<String, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(pool)
                .await?;
            sqlx::query("SELECT value FROM kv WHERE key = $1")
                .bind(key)
                .fetch_one(pool)
                .await?
                .text("value")
        })
    }

    /// The installation's credential revision: a counter bumped whenever a credential or an
    /// account stops being what it was (a key revoked; a user disabled, demoted or moved to
    /// another plan). API processes cache verified keys; each compares this number at most
    /// once per `server.credential_check_interval_ms` and drops its cache when it moved, so a
    /// change made through any process (or the CLI) reaches every process within that
    /// interval. 0 before the first bump.
    pub async fn credential_revision(&self) -> Result<i64, StoreError> {
        Ok(self
            .get_flag(CREDENTIAL_REVISION)
            .await?
            .and_then(|value| value.parse().ok())
            .unwrap_or(0))
    }

    /// Bumps the credential revision (one atomic statement, whichever process runs it).
    pub(crate) async fn bump_credential_revision(&self) -> Result<(), StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO kv (key, value) VALUES ($1, '1') ON CONFLICT (key) DO UPDATE \
                 SET value = CAST(CAST(kv.value AS BIGINT) + 1 AS TEXT)",
            )
            .bind(CREDENTIAL_REVISION)
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}

/// The `kv` key of [`Store::credential_revision`].
const CREDENTIAL_REVISION: &str = "credential_revision";
