//! API keys: stored as hashes, found by their indexed public id, revoked by their owner.

use crate::db::{RowExt, new_id, now_ms, with_pool};
use crate::error::conflict_on_unique;
use crate::{ApiKey, ApiKeyStanding, NewApiKey, Store, StoreError};

/// The columns of `api_keys` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! api_keys_columns {
    () => {
        "id, user_id, public_id, secret_hash, name, scopes, expires_at, last_used_at, revoked_at, created_at"
    };
}

impl Store {
    /// Stores a new key. A public id that already exists is [`StoreError::Conflict`].
    pub async fn insert_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        let id = new_id();
        let scopes = serde_json::Value::from(new.scopes.clone()).to_string();
        let created_at = now_ms();
        with_pool!(&self.db, |pool| {
            let row = sqlx::query(concat!("INSERT INTO api_keys (id, user_id, public_id, secret_hash, name, scopes, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ", api_keys_columns!(), ""))
            .bind(&id)
            .bind(&new.user_id)
            .bind(&new.public_id)
            .bind(&new.secret_hash)
            .bind(&new.name)
            .bind(&scopes)
            .bind(new.expires_at_ms)
            .bind(created_at)
            .fetch_one(pool)
            .await
            .map_err(|error| conflict_on_unique(error, "api key public id already exists"))?;
            api_key_from_row(&row)
        })
    }

    /// Finds a key by its public id, including revoked and expired keys: the caller decides
    /// (and can tell the user why a key stopped working).
    pub async fn find_api_key_by_public_id(
        &self,
        public_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                api_keys_columns!(),
                " FROM api_keys WHERE public_id = $1"
            ))
            .bind(public_id)
            .fetch_optional(pool)
            .await?
            .map(|row| api_key_from_row(&row))
            .transpose()
        })
    }

    /// All keys of a user, revoked ones included, oldest first.
    pub async fn list_api_keys(&self, user_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                api_keys_columns!(),
                " FROM api_keys WHERE user_id = $1 ORDER BY created_at, id"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(api_key_from_row)
            .collect()
        })
    }

    /// Revokes one of the user's keys (keeping the first revocation time if it was revoked
    /// already); false when the user has no key with that id.
    pub async fn revoke_api_key(&self, user_id: &str, key_id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let revoked = with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3",
            )
            .bind(now)
            .bind(key_id)
            .bind(user_id)
            .execute(pool)
            .await?;
            Ok::<_, StoreError>(done.rows_affected() == 1)
        })?;
        if revoked {
            self.bump_credential_revision().await?;
        }
        Ok(revoked)
    }

    /// The standing of key `key_id` and whether its owner's task `task_id` still exists, in
    /// one read: `None` when there is no such key. Cheap enough to ask every second for each
    /// open event stream.
    pub async fn api_key_standing(
        &self,
        key_id: &str,
        task_id: &str,
    ) -> Result<Option<ApiKeyStanding>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "SELECT k.revoked_at, k.expires_at, u.disabled, \
                 CAST((SELECT COUNT(*) FROM tasks t WHERE t.id = $2 AND t.user_id = k.user_id \
                       AND t.deleted_at IS NULL) AS BIGINT) AS live_tasks \
                 FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1",
            )
            .bind(key_id)
            .bind(task_id)
            .fetch_optional(pool)
            .await?
            .map(|row| {
                Ok(ApiKeyStanding {
                    revoked_at_ms: row.opt_int("revoked_at")?,
                    expires_at_ms: row.opt_int("expires_at")?,
                    user_disabled: row.flag("disabled")?,
                    task_exists: row.int("live_tasks")? > 0,
                })
            })
            .transpose()
        })
    }

    /// Records that a key was just used.
    pub async fn touch_api_key(&self, key_id: &str, now_ms: i64) -> Result<(), StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(key_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}

fn api_key_from_row(row: &impl RowExt) -> Result<ApiKey, StoreError> {
    let scopes_text = row.text("scopes")?;
    let scopes: Vec<String> = serde_json::from_str(&scopes_text).map_err(|error| {
        StoreError::Corrupt(format!(
            "api_keys.scopes is not a JSON string array: {error}"
        ))
    })?;
    Ok(ApiKey {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        public_id: row.text("public_id")?,
        secret_hash: row.text("secret_hash")?,
        name: row.text("name")?,
        scopes,
        expires_at_ms: row.opt_int("expires_at")?,
        last_used_at_ms: row.opt_int("last_used_at")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
        created_at_ms: row.int("created_at")?,
    })
}
