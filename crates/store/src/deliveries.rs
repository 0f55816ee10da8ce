//! The notification outbox as the delivery loop sees it (SPEC §5): claiming due
//! deliveries under a lease, recording each attempt and settling the delivery with it, and
//! the health of each target (consecutive permanent failures, disabling). Rows are written
//! by `outcome.rs` in the transaction that settles a run; what a user reads of them (the
//! delivery log, redelivery, target health, the webhook secret's version) is in
//! `delivery_log.rs`.
//!
//! Exactly one process sends each attempt: a claim moves `lease_owner`/`lease_until` with a
//! conditional UPDATE, and an attempt is recorded only while its claimer still holds the
//! lease. A process killed mid-send leaves a lease that expires, and the delivery is
//! claimed again (at-least-once: receivers deduplicate by the delivery id).

use serde::Serialize;
use sqlx::AssertSqlSafe;

use crate::db::{RowExt, WritePool, with_pool};
use crate::{Store, StoreError};

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt (or being attempted under a lease).
    Pending,
    Delivered,
    /// Gave up: a permanent refusal, or retries ran out at `give_up_at`.
    Failed,
    /// Its target was disabled before it was delivered.
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
        DeliveryState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        DeliveryState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or(())
    }
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: String,
    pub user_id: String,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    pub event: String,
    pub channel: String,
    pub target: String,
    pub payload: serde_json::Value,
    pub state: DeliveryState,
    /// Attempts claimed so far (an attempt whose sender died counts, though it left no
    /// `delivery_attempts` row).
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub give_up_at_ms: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// Latency of the last recorded attempt.
    pub last_latency_ms: Option<i64>,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

/// One recorded attempt (`delivery_attempts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryAttempt {
    pub attempt: u32,
    pub started_at_ms: i64,
    /// `delivered`, `retry` or `failed` (permanent, the URL guard's refusal included, or
    /// the last retry); `error` says which.
    pub outcome: String,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// What an attempt decided for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// 2xx: done; the target's failure count goes back to 0.
    Delivered,
    /// A transient failure: try again at `next_attempt_at_ms`.
    Retry { next_attempt_at_ms: i64 },
    /// A permanent failure (or retries ran out): the delivery is `failed` and the target's
    /// consecutive failures go up by one; at `disable_after` the target is disabled.
    Failed { disable_after: u32 },
}

/// What recording an attempt did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptRecorded {
    /// False when the claimer no longer held the lease (another process took over): nothing
    /// was written.
    pub recorded: bool,
    /// The attempt disabled its target (this call, not an earlier one).
    pub target_disabled: bool,
    /// Pending deliveries of the disabled target that were cancelled with it.
    pub cancelled: u64,
}

/// The columns of a [`Delivery`], with the last attempt's latency.
pub(crate) const DELIVERY_COLUMNS: &str = "d.id, d.user_id, d.task_id, d.run_id, d.event, \
    d.channel, d.target, d.payload, d.state, d.attempts, d.next_attempt_at, d.give_up_at, \
    d.last_status, d.last_error, d.created_at, d.delivered_at, \
    (SELECT a.latency_ms FROM delivery_attempts a WHERE a.delivery_id = d.id \
     ORDER BY a.attempt DESC LIMIT 1) AS last_latency_ms";

pub(crate) fn delivery_from_row(row: &impl RowExt) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        task_id: row.opt_text("task_id")?,
        run_id: row.opt_text("run_id")?,
        event: row.text("event")?,
        channel: row.text("channel")?,
        target: row.text("target")?,
        payload: row.json("payload")?,
        state: row.parsed("state")?,
        attempts: row.uint("attempts")?,
        next_attempt_at_ms: row.int("next_attempt_at")?,
        give_up_at_ms: row.int("give_up_at")?,
        last_status: row.opt_uint("last_status")?,
        last_error: row.opt_text("last_error")?,
        last_latency_ms: row.opt_int("last_latency_ms")?,
        created_at_ms: row.int("created_at")?,
        delivered_at_ms: row.opt_int("delivered_at")?,
    })
}

pub(crate) fn attempt_from_row(row: &impl RowExt) -> Result<DeliveryAttempt, StoreError> {
    Ok(DeliveryAttempt {
        attempt: row.uint("attempt")?,
        started_at_ms: row.int("started_at")?,
        outcome: row.text("outcome")?,
        status_code: row.opt_uint("status_code")?,
        latency_ms: row.int("latency_ms")?,
        error: row.opt_text("error")?,
    })
}

/// Errors are stored at most this long (a receiver's body can be anything).
const MAX_ERROR_CHARS: usize = 500;

fn clip(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}

impl Store {
    /// Claims up to `limit` pending deliveries that are due at `now_ms` and not leased by a
    /// live claimer, for `owner` until `now_ms + lease_ms`, counting the attempt. The
    /// conditions are checked again by the UPDATE itself, so two processes claiming at once
    /// never both get the same delivery (PostgreSQL re-evaluates them on the locked row;
    /// SQLite has one writer).
    pub async fn claim_due_deliveries(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        const DUE: &str = "state = 'pending' AND next_attempt_at <= $3 \
            AND (lease_until IS NULL OR lease_until <= $3)";
        let claim = format!(
            "UPDATE deliveries SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE {DUE} AND id IN (SELECT id FROM deliveries WHERE {DUE} \
             ORDER BY next_attempt_at LIMIT $4) RETURNING id"
        );
        let select = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = $1");
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(claim.clone()))
                .bind(owner)
                .bind(now_ms.saturating_add(lease_ms))
                .bind(now_ms)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            let mut claimed = Vec::with_capacity(ids.len());
            for id in &ids {
                let row = sqlx::query(AssertSqlSafe(select.clone()))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                claimed.push(delivery_from_row(&row)?);
            }
            tx.commit().await?;
            claimed.sort_by_key(|d| d.next_attempt_at_ms);
            Ok(claimed)
        })
    }

    /// Records one attempt of a delivery `owner` claimed and settles the delivery by
    /// `verdict`, in one transaction, only while `owner` still holds the lease: the attempt
    /// row, the delivery's state, and the target's health (reset on delivery; one more
    /// consecutive failure on `Failed`, disabling the target and cancelling its other
    /// pending deliveries when the count reaches `disable_after`).
    pub async fn record_delivery_attempt(
        &self,
        delivery: &Delivery,
        owner: &str,
        attempt: &DeliveryAttempt,
        verdict: AttemptVerdict,
        now_ms: i64,
    ) -> Result<AttemptRecorded, StoreError> {
        let error = attempt.error.as_deref().map(clip);
        let (state, next_attempt_at, delivered_at) = match verdict {
            AttemptVerdict::Delivered => (DeliveryState::Delivered, None, Some(now_ms)),
            AttemptVerdict::Retry { next_attempt_at_ms } => {
                (DeliveryState::Pending, Some(next_attempt_at_ms), None)
            }
            AttemptVerdict::Failed { .. } => (DeliveryState::Failed, None, None),
        };
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            let settled = sqlx::query(
                "UPDATE deliveries SET state = $1, \
                 next_attempt_at = COALESCE($2, next_attempt_at), delivered_at = $3, \
                 last_status = $4, last_error = $5, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $6 AND lease_owner = $7 AND state = 'pending'",
            )
            .bind(state.as_str())
            .bind(next_attempt_at)
            .bind(delivered_at)
            .bind(attempt.status_code.map(i64::from))
            .bind(&error)
            .bind(&delivery.id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if settled.rows_affected() != 1 {
                return Ok(AttemptRecorded::default());
            }
            sqlx::query(
                "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, outcome, \
                 status_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&delivery.id)
            .bind(i64::from(attempt.attempt))
            .bind(attempt.started_at_ms)
            .bind(&attempt.outcome)
            .bind(attempt.status_code.map(i64::from))
            .bind(attempt.latency_ms)
            .bind(&error)
            .execute(&mut *tx)
            .await?;
            let mut recorded = AttemptRecorded {
                recorded: true,
                ..AttemptRecorded::default()
            };
            if let Some(task_id) = &delivery.task_id {
                match verdict {
                    AttemptVerdict::Delivered => {
                        sqlx::query(
                            "UPDATE notify_targets SET consecutive_failures = 0 \
                             WHERE task_id = $1 AND channel = $2 AND target = $3",
                        )
                        .bind(task_id)
                        .bind(&delivery.channel)
                        .bind(&delivery.target)
                        .execute(&mut *tx)
                        .await?;
                    }
                    AttemptVerdict::Retry { .. } => {}
                    AttemptVerdict::Failed { disable_after } => {
                        // Only for a task that still exists (the row's foreign key).
                        let failures: Option<i64> = sqlx::query_scalar(
                            "INSERT INTO notify_targets (task_id, channel, target, \
                             consecutive_failures) \
                             SELECT $1, $2, $3, 1 WHERE EXISTS (SELECT 1 FROM tasks WHERE id = $1) \
                             ON CONFLICT (task_id, channel, target) DO UPDATE SET \
                             consecutive_failures = notify_targets.consecutive_failures + 1 \
                             RETURNING consecutive_failures",
                        )
                        .bind(task_id)
                        .bind(&delivery.channel)
                        .bind(&delivery.target)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if failures.is_some_and(|n| n >= i64::from(disable_after.max(1))) {
                            let reason = format!(
                                "{} consecutive failed deliveries; the last: {}",
                                failures.unwrap_or_default(),
                                error.as_deref().unwrap_or("failed")
                            );
                            let disabled = sqlx::query(
                                "UPDATE notify_targets SET disabled_at = $1, disabled_reason = $2 \
                                 WHERE task_id = $3 AND channel = $4 AND target = $5 \
                                 AND disabled_at IS NULL",
                            )
                            .bind(now_ms)
                            .bind(clip(&reason))
                            .bind(task_id)
                            .bind(&delivery.channel)
                            .bind(&delivery.target)
                            .execute(&mut *tx)
                            .await?;
                            recorded.target_disabled = disabled.rows_affected() == 1;
                            recorded.cancelled = sqlx::query(
                                "UPDATE deliveries SET state = 'cancelled', \
                                 last_error = 'target disabled', lease_owner = NULL, \
                                 lease_until = NULL \
                                 WHERE task_id = $1 AND channel = $2 AND target = $3 \
                                 AND state = 'pending'",
                            )
                            .bind(task_id)
                            .bind(&delivery.channel)
                            .bind(&delivery.target)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        }
                    }
                }
            }
            tx.commit().await?;
            Ok(recorded)
        })
    }

    /// Cancels a claimed delivery whose target is disabled (without an attempt). False when
    /// `owner` no longer holds it.
    pub async fn cancel_claimed_delivery(
        &self,
        delivery_id: &str,
        owner: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        with_pool!(&self.db, |pool| {
            let done = sqlx::query(
                "UPDATE deliveries SET state = 'cancelled', last_error = $1, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE id = $2 AND lease_owner = $3 AND state = 'pending'",
            )
            .bind(clip(reason))
            .bind(delivery_id)
            .bind(owner)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Whether a task's notification target is disabled now.
    pub async fn is_notify_target_disabled(
        &self,
        task_id: &str,
        channel: &str,
        target: &str,
    ) -> Result<bool, StoreError> {
        with_pool!(&self.db, |pool| {
            let disabled: Option<Option<i64>> = sqlx::query_scalar(
                "SELECT disabled_at FROM notify_targets \
                 WHERE task_id = $1 AND channel = $2 AND target = $3",
            )
            .bind(task_id)
            .bind(channel)
            .bind(target)
            .fetch_optional(pool)
            .await?;
            Ok(disabled.flatten().is_some())
        })
    }
}
