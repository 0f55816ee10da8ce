//! What a user reads and asks of their notifications: the delivery log (filtered, paged
//! newest first), one delivery with its attempts, redelivery, the health of a task's
//! targets and re-enabling them, and the version of the user's webhook signing secret.
//! Every read and write takes the user id, so a user never reaches another user's rows.

use serde::Serialize;
use sqlx::AssertSqlSafe;

use crate::db::{RowExt, with_pool};
use crate::deliveries::{DELIVERY_COLUMNS, attempt_from_row, delivery_from_row};
use crate::{Delivery, DeliveryAttempt, DeliveryState, Store, StoreError};

/// The columns of `delivery_attempts` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! delivery_attempts_columns {
    () => {
        "delivery_id, attempt, started_at, outcome, status_code, latency_ms, error"
    };
}

/// The columns of `notify_targets` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! notify_targets_columns {
    () => {
        "task_id, channel, target, consecutive_failures, disabled_at, disabled_reason"
    };
}

/// Which deliveries to list: one user's, newest first, optionally one task's or one state's,
/// older than the cursor `(created_at_ms, id)` of the previous page's last item.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub task_id: Option<String>,
    pub state: Option<DeliveryState>,
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// The health of one notification target of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifyTarget {
    pub task_id: String,
    pub channel: String,
    pub target: String,
    pub consecutive_failures: u32,
    pub disabled_at_ms: Option<i64>,
    pub disabled_reason: Option<String>,
}

impl Store {
    /// One page of `user_id`'s deliveries; `has_more` says whether older ones exist.
    pub async fn list_deliveries(
        &self,
        user_id: &str,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<Delivery>, bool), StoreError> {
        let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.user_id = $1");
        let mut next = 2;
        if filter.task_id.is_some() {
            sql.push_str(&format!(" AND d.task_id = ${next}"));
            next += 1;
        }
        if filter.state.is_some() {
            sql.push_str(&format!(" AND d.state = ${next}"));
            next += 1;
        }
        if filter.before.is_some() {
            sql.push_str(&format!(
                " AND (d.created_at < ${0} OR (d.created_at = ${0} AND d.id < ${1}))",
                next,
                next + 1
            ));
            next += 2;
        }
        sql.push_str(&format!(
            " ORDER BY d.created_at DESC, d.id DESC LIMIT ${next}"
        ));
        let limit = filter.limit.clamp(1, 1000);
        with_pool!(&self.db, |pool| {
            let mut query = sqlx::query(AssertSqlSafe(sql.clone())).bind(user_id);
            if let Some(task_id) = &filter.task_id {
                query = query.bind(task_id);
            }
            if let Some(state) = filter.state {
                query = query.bind(state.as_str());
            }
            if let Some((created_at, id)) = &filter.before {
                query = query.bind(*created_at).bind(id);
            }
            let rows = query.bind(i64::from(limit) + 1).fetch_all(pool).await?;
            let mut items = rows
                .iter()
                .map(delivery_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            let has_more = items.len() > limit as usize;
            items.truncate(limit as usize);
            Ok((items, has_more))
        })
    }

    /// One of `user_id`'s deliveries with its recorded attempts (oldest first), or `None`
    /// (also when it is another user's).
    pub async fn get_delivery(
        &self,
        user_id: &str,
        delivery_id: &str,
    ) -> Result<Option<(Delivery, Vec<DeliveryAttempt>)>, StoreError> {
        with_pool!(&self.db, |pool| {
            let Some(row) = sqlx::query(AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = $1 AND d.user_id = $2"
            )))
            .bind(delivery_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let delivery = delivery_from_row(&row)?;
            let attempts = sqlx::query(concat!(
                "SELECT ",
                delivery_attempts_columns!(),
                " FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt"
            ))
            .bind(delivery_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(attempt_from_row)
            .collect::<Result<Vec<_>, _>>()?;
            Ok(Some((delivery, attempts)))
        })
    }

    /// Sends one of `user_id`'s deliveries again: it becomes `pending`, due at `now_ms`,
    /// with a fresh retry window until `give_up_at_ms` (attempts keep counting). A delivery
    /// being attempted right now keeps its lease. `None` when there is no such delivery of
    /// this user.
    pub async fn redeliver_delivery(
        &self,
        user_id: &str,
        delivery_id: &str,
        now_ms: i64,
        give_up_at_ms: i64,
    ) -> Result<Option<Delivery>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, \
                 give_up_at = $2, delivered_at = NULL \
                 WHERE id = $3 AND user_id = $4",
            )
            .bind(now_ms)
            .bind(give_up_at_ms)
            .bind(delivery_id)
            .bind(user_id)
            .execute(pool)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = $1 AND d.user_id = $2"
            )))
            .bind(delivery_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(delivery_from_row)
            .transpose()
        })
    }

    /// The health rows of one of `user_id`'s tasks (targets that never failed have none).
    /// `None` when the task is not this user's.
    pub async fn notify_targets(
        &self,
        user_id: &str,
        task_id: &str,
    ) -> Result<Option<Vec<NotifyTarget>>, StoreError> {
        with_pool!(&self.db, |pool| {
            let owned: Option<String> =
                sqlx::query_scalar("SELECT id FROM tasks WHERE id = $1 AND user_id = $2")
                    .bind(task_id)
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await?;
            if owned.is_none() {
                return Ok(None);
            }
            let rows = sqlx::query(concat!(
                "SELECT ",
                notify_targets_columns!(),
                " FROM notify_targets WHERE task_id = $1 ORDER BY channel, target"
            ))
            .bind(task_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(NotifyTarget {
                        task_id: row.text("task_id")?,
                        channel: row.text("channel")?,
                        target: row.text("target")?,
                        consecutive_failures: row.uint("consecutive_failures")?,
                        disabled_at_ms: row.opt_int("disabled_at")?,
                        disabled_reason: row.opt_text("disabled_reason")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
                .map(Some)
        })
    }

    /// Re-enables the disabled targets of one of `user_id`'s tasks (all of them, or the one
    /// `channel`/`target` names) and resets their failure counts. `None` when the task is
    /// not this user's; else how many targets were disabled.
    pub async fn enable_notify_targets(
        &self,
        user_id: &str,
        task_id: &str,
        channel_and_target: Option<(&str, &str)>,
    ) -> Result<Option<u64>, StoreError> {
        with_pool!(&self.db, |pool| {
            let owned: Option<String> =
                sqlx::query_scalar("SELECT id FROM tasks WHERE id = $1 AND user_id = $2")
                    .bind(task_id)
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await?;
            if owned.is_none() {
                return Ok(None);
            }
            let (channel, target) = channel_and_target.unwrap_or(("", ""));
            let enabled = sqlx::query(
                "UPDATE notify_targets SET disabled_at = NULL, disabled_reason = NULL, \
                 consecutive_failures = 0 \
                 WHERE task_id = $1 AND disabled_at IS NOT NULL \
                 AND ($2 = '' OR (channel = $2 AND target = $3))",
            )
            .bind(task_id)
            .bind(channel)
            .bind(target)
            .execute(pool)
            .await?;
            sqlx::query(
                "UPDATE notify_targets SET consecutive_failures = 0 \
                 WHERE task_id = $1 AND ($2 = '' OR (channel = $2 AND target = $3))",
            )
            .bind(task_id)
            .bind(channel)
            .bind(target)
            .execute(pool)
            .await?;
            Ok(Some(enabled.rows_affected()))
        })
    }

    /// The version of the user's webhook signing secret (the secret itself is derived from
    /// it and the installation's key, never stored), or `None` for no such user.
    pub async fn webhook_secret_version(&self, user_id: &str) -> Result<Option<u32>, StoreError> {
        with_pool!(&self.db, |pool| {
            let version: Option<i64> =
                sqlx::query_scalar("SELECT webhook_secret_version FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await?;
            version
                .map(|v| {
                    u32::try_from(v).map_err(|_| {
                        StoreError::Corrupt(format!("webhook_secret_version {v} out of range"))
                    })
                })
                .transpose()
        })
    }

    /// Rotates the user's webhook signing secret: bumps its version and returns the new
    /// one (`None` for no such user). Deliveries signed from now on use the new secret.
    pub async fn bump_webhook_secret_version(
        &self,
        user_id: &str,
    ) -> Result<Option<u32>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "UPDATE users SET webhook_secret_version = webhook_secret_version + 1 \
                 WHERE id = $1",
            )
            .bind(user_id)
            .execute(pool)
            .await?;
        });
        self.webhook_secret_version(user_id).await
    }
}
