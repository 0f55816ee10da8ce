//! Change summaries of monitor runs (`run_changes`, written by
//! [`Store::finish_run_with_outcome`]) and the Atom feed tokens that let a feed reader read
//! one task's changes (`feed_tokens`).
//!
//! A feed token is stored only as the SHA-256 of its secret; it grants
//! [`Store::find_feed_token`] for the feed route and nothing else, so it is deliberately not
//! an API key and no authentication path looks it up.

use serde::Serialize;
use sqlx::Row;

use crate::db::{RowExt, new_id, with_pool};
use crate::runs::run_columns;
use crate::{OwnedRun, Run, RunChanges, Store, StoreError};

/// The columns of `feed_tokens` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! feed_tokens_columns {
    () => {
        "id, user_id, task_id, created_at, revoked_at, last_used_at"
    };
}

/// The columns of `run_changes` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! run_changes_columns {
    () => {
        "run_id, task_id, user_id, previous_run_id, key_field, previous_records, records, added, removed, changed, unchanged, changed_fraction, passed_threshold, detail_items, detail_chunk_size, snapshot_chunks, created_at"
    };
}

/// A feed token as listed to its owner: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedToken {
    pub id: String,
    pub user_id: String,
    pub task_id: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
}

impl Store {
    /// The change summary of the user's run; `None` when the run has none (not a monitor's
    /// run, not completed, or change detection failed).
    pub async fn run_changes(&self, run: &OwnedRun) -> Result<Option<RunChanges>, StoreError> {
        self.run_changes_any_user(&run.id).await
    }

    /// The change summary of any user's run. For workers only (the run they hold and the
    /// run it is compared with): never reachable from a user request.
    pub async fn run_changes_any_user(
        &self,
        run_id: &str,
    ) -> Result<Option<RunChanges>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                run_changes_columns!(),
                " FROM run_changes WHERE run_id = $1"
            ))
            .bind(run_id)
            .fetch_optional(pool)
            .await?
            .map(|row| run_changes_from_row(&row))
            .transpose()
        })
    }

    /// The newest `limit` change summaries of the user's task, newest first; with
    /// `only_changed`, only those with at least one record added, removed or changed.
    pub async fn list_task_changes(
        &self,
        user_id: &str,
        task_id: &str,
        only_changed: bool,
        limit: u32,
    ) -> Result<Vec<RunChanges>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                run_changes_columns!(),
                " FROM run_changes WHERE task_id = $1 AND user_id = $2 \
                 AND ($4 = 0 OR added > 0 OR removed > 0 OR changed > 0) \
                 ORDER BY created_at DESC, run_id DESC LIMIT $3"
            ))
            .bind(task_id)
            .bind(user_id)
            .bind(i64::from(limit))
            .bind(i64::from(only_changed))
            .fetch_all(pool)
            .await?
            .iter()
            .map(run_changes_from_row)
            .collect()
        })
    }

    /// The run a monitor's run is compared with: the `completed` run of the same task, queued
    /// before `run`, that finished last. Runs queued after `run` never count, so a run
    /// compares with the same run when it is executed again after a crash (unless an older
    /// run completed meanwhile, which is then the better baseline).
    pub async fn previous_completed_run(&self, run: &Run) -> Result<Option<Run>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE task_id = $1 AND id <> $2 AND state = 'completed' \
                 AND finished_at IS NOT NULL \
                 AND (queued_at < $3 OR (queued_at = $3 AND id < $2)) \
                 ORDER BY finished_at DESC, id DESC LIMIT 1",
            ))
            .bind(&run.task_id)
            .bind(&run.id)
            .bind(run.queued_at_ms)
            .fetch_optional(pool)
            .await?
            .map(|row| crate::runs::run_from_row(&row))
            .transpose()
        })
    }

    /// Stores a new feed token of the user's task (only `token_hash`, the SHA-256 of the
    /// secret). [`StoreError::NotFound`] for a missing, deleted or foreign task.
    pub async fn create_feed_token(
        &self,
        user_id: &str,
        task_id: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<FeedToken, StoreError> {
        let id = new_id();
        with_pool!(&self.db, |pool| {
            let row = sqlx::query(concat!(
                "INSERT INTO feed_tokens (id, user_id, task_id, token_hash, created_at) \
                 SELECT $1, t.user_id, t.id, $2, $3 FROM tasks t \
                 WHERE t.id = $4 AND t.user_id = $5 AND t.deleted_at IS NULL \
                 RETURNING ",
                feed_tokens_columns!(),
                ""
            ))
            .bind(&id)
            .bind(token_hash)
            .bind(now_ms)
            .bind(task_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => feed_token_from_row(&row),
                None => Err(StoreError::NotFound(format!("task {task_id}"))),
            }
        })
    }

    /// The feed tokens of the user's task, newest first, revoked ones included.
    pub async fn list_feed_tokens(
        &self,
        user_id: &str,
        task_id: &str,
    ) -> Result<Vec<FeedToken>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                feed_tokens_columns!(),
                " FROM feed_tokens WHERE task_id = $1 AND user_id = $2 \
                 ORDER BY created_at DESC, id DESC"
            ))
            .bind(task_id)
            .bind(user_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(feed_token_from_row)
            .collect()
        })
    }

    /// Revokes the user's feed token of the task; false when there is no such live token.
    pub async fn revoke_feed_token(
        &self,
        user_id: &str,
        task_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "UPDATE feed_tokens SET revoked_at = $1 \
                 WHERE id = $2 AND task_id = $3 AND user_id = $4 AND revoked_at IS NULL",
            )
            .bind(now_ms)
            .bind(token_id)
            .bind(task_id)
            .bind(user_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The live (not revoked) feed token with this hash for this task, marking it used;
    /// `None` for an unknown, revoked or other task's token, or a deleted task.
    pub async fn use_feed_token(
        &self,
        task_id: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<FeedToken>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "UPDATE feed_tokens SET last_used_at = $1 \
                 WHERE token_hash = $2 AND task_id = $3 AND revoked_at IS NULL \
                 AND EXISTS (SELECT 1 FROM tasks t WHERE t.id = feed_tokens.task_id \
                             AND t.deleted_at IS NULL) \
                 RETURNING ",
                feed_tokens_columns!(),
                ""
            ))
            .bind(now_ms)
            .bind(token_hash)
            .bind(task_id)
            .fetch_optional(pool)
            .await?
            .map(|row| feed_token_from_row(&row))
            .transpose()
        })
    }
}

fn run_changes_from_row<R>(row: &R) -> Result<RunChanges, StoreError>
where
    R: RowExt + Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    f64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RunChanges {
        run_id: row.text("run_id")?,
        task_id: row.text("task_id")?,
        user_id: row.text("user_id")?,
        previous_run_id: row.opt_text("previous_run_id")?,
        key_field: row.opt_text("key_field")?,
        previous_records: row.uint("previous_records")?,
        records: row.uint("records")?,
        added: row.uint("added")?,
        removed: row.uint("removed")?,
        changed: row.uint("changed")?,
        unchanged: row.uint("unchanged")?,
        changed_fraction: row.try_get("changed_fraction")?,
        passed_threshold: row.flag("passed_threshold")?,
        detail_items: row.uint("detail_items")?,
        detail_chunk_size: row.uint("detail_chunk_size")?,
        snapshot_chunks: row.uint("snapshot_chunks")?,
        created_at_ms: row.int("created_at")?,
    })
}

fn feed_token_from_row(row: &impl RowExt) -> Result<FeedToken, StoreError> {
    Ok(FeedToken {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        task_id: row.text("task_id")?,
        created_at_ms: row.int("created_at")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
        last_used_at_ms: row.opt_int("last_used_at")?,
    })
}
