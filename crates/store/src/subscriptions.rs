//! Billing state kept from the payment provider's webhooks (Lemon Squeezy): subscriptions,
//! their invoices, and the event log that makes each delivery take effect exactly once.
//!
//! Every delivery is one transaction: its key goes into `billing_events` first (a second
//! delivery of the same key finds it and changes nothing), then its effect — a subscription
//! or invoice upserted only when the provider's `updated_at` is not older than the kept one,
//! and the user's plan recomputed (the newest entitled subscription's plan, else the default
//! plan), with a grant topping up this month's compute units on an upgrade.

use crate::db::{Db, RowExt, WritePool, now_ms, to_sql_int, with_pool};
use crate::{Plans, Store, StoreError};

/// The columns of `invoices` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! invoices_columns {
    () => {
        "id, subscription_id, status, billing_reason, total, currency, refunded_amount, invoice_url, created_at, provider_updated_at"
    };
}

/// The columns of `subscriptions` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! subscriptions_columns {
    () => {
        "id, user_id, customer_id, variant_id, plan, status, entitled, cancelled, card_brand, card_last_four, renews_at, ends_at, trial_ends_at, provider_updated_at"
    };
}

/// One webhook delivery, as the store needs it.
#[derive(Debug, Clone)]
pub struct BillingEvent {
    /// Exactly-once key (the SHA-256 of the raw body).
    pub key: String,
    /// The provider's event name (`subscription_created`).
    pub name: String,
    /// The provider's id of the object the event carries.
    pub object_id: Option<String>,
    /// The user the checkout was made for (`custom_data.user_id`), used only for objects
    /// not seen before: a known subscription keeps its owner.
    pub user_hint: Option<String>,
}

/// A subscription's state as the provider reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub id: String,
    pub user_id: String,
    pub customer_id: Option<String>,
    pub variant_id: String,
    /// The plan the variant sells.
    pub plan: String,
    pub status: String,
    /// Whether this state gives the user `plan`.
    pub entitled: bool,
    pub cancelled: bool,
    pub card_brand: Option<String>,
    pub card_last_four: Option<String>,
    pub renews_at_ms: Option<i64>,
    pub ends_at_ms: Option<i64>,
    pub trial_ends_at_ms: Option<i64>,
    pub provider_updated_at_ms: i64,
}

/// A subscription invoice (a payment, possibly refunded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRecord {
    pub id: String,
    pub subscription_id: String,
    pub status: String,
    pub billing_reason: Option<String>,
    pub total: i64,
    pub currency: String,
    pub refunded_amount: i64,
    pub invoice_url: Option<String>,
    pub created_at_ms: i64,
    pub provider_updated_at_ms: i64,
}

/// What a delivery changes. `user_id` of a subscription is ignored: the owner comes from
/// the kept row or the event's hint.
#[derive(Debug, Clone)]
pub enum BillingChange {
    Subscription(SubscriptionRecord),
    Invoice(InvoiceRecord),
    /// Kept in the event log only (order refunds, events this service does not act on).
    Record {
        outcome: &'static str,
    },
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingOutcome {
    /// The same delivery was processed before: nothing changed.
    Duplicate,
    /// Applied. `new_plan` is the user's plan when it changed.
    Applied {
        user_id: String,
        new_plan: Option<String>,
    },
    /// Older than the state kept: logged, nothing changed.
    Stale { user_id: String },
    /// No user owns the object (no kept subscription, no valid hint): logged only.
    UnknownUser,
    /// Logged only.
    Recorded { user_id: Option<String> },
}

impl BillingOutcome {
    fn log_name(&self) -> &'static str {
        match self {
            BillingOutcome::Duplicate => "duplicate",
            BillingOutcome::Applied { .. } => "applied",
            BillingOutcome::Stale { .. } => "stale",
            BillingOutcome::UnknownUser => "unknown_user",
            BillingOutcome::Recorded { .. } => "recorded",
        }
    }
}

const UPSERT_SUBSCRIPTION: &str = "\
INSERT INTO subscriptions (id, user_id, customer_id, variant_id, plan, status, entitled, \
    cancelled, card_brand, card_last_four, renews_at, ends_at, trial_ends_at, \
    provider_updated_at, created_at, updated_at) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
    variant_id = excluded.variant_id, plan = excluded.plan, status = excluded.status, \
    entitled = excluded.entitled, cancelled = excluded.cancelled, \
    card_brand = excluded.card_brand, card_last_four = excluded.card_last_four, \
    renews_at = excluded.renews_at, ends_at = excluded.ends_at, \
    trial_ends_at = excluded.trial_ends_at, \
    provider_updated_at = excluded.provider_updated_at, updated_at = excluded.updated_at \
WHERE subscriptions.provider_updated_at <= excluded.provider_updated_at";

const UPSERT_INVOICE: &str = "\
INSERT INTO invoices (id, subscription_id, user_id, status, billing_reason, total, currency, \
    refunded_amount, invoice_url, provider_updated_at, created_at) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
    billing_reason = excluded.billing_reason, total = excluded.total, \
    currency = excluded.currency, refunded_amount = excluded.refunded_amount, \
    invoice_url = excluded.invoice_url, provider_updated_at = excluded.provider_updated_at \
WHERE invoices.provider_updated_at <= excluded.provider_updated_at";

impl Store {
    /// Applies one webhook delivery exactly once (see the module comment). `month` is the
    /// current `yyyy-mm`, the period of the monthly grant an upgrade tops up.
    pub async fn apply_billing_event(
        &self,
        event: &BillingEvent,
        change: &BillingChange,
        plans: &Plans,
        month: &str,
    ) -> Result<BillingOutcome, StoreError> {
        self.apply_billing(Some(event), change, plans, month).await
    }

    /// Keeps a subscription state read from the provider's API (after a plan change,
    /// cancellation or resumption), with the same ordering rule as webhooks, so the account
    /// page shows it before the webhook arrives. `record.user_id` is the owner.
    pub async fn record_subscription_state(
        &self,
        record: &SubscriptionRecord,
        plans: &Plans,
        month: &str,
    ) -> Result<BillingOutcome, StoreError> {
        self.apply_billing(
            None,
            &BillingChange::Subscription(record.clone()),
            plans,
            month,
        )
        .await
    }

    async fn apply_billing(
        &self,
        event: Option<&BillingEvent>,
        change: &BillingChange,
        plans: &Plans,
        month: &str,
    ) -> Result<BillingOutcome, StoreError> {
        let now = now_ms();
        let lock_user = match self.db {
            Db::Sqlite(_) => "SELECT plan FROM users WHERE id = $1",
            Db::Postgres(_) => "SELECT plan FROM users WHERE id = $1 FOR UPDATE",
        };
        let outcome = with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(event) = event {
                let fresh = sqlx::query(
                    "INSERT INTO billing_events (event_key, event_name, object_id, user_id, \
                     received_at, outcome) VALUES ($1, $2, $3, NULL, $4, 'processing') \
                     ON CONFLICT (event_key) DO NOTHING",
                )
                .bind(&event.key)
                .bind(&event.name)
                .bind(&event.object_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !fresh {
                    return Ok(BillingOutcome::Duplicate);
                }
            }
            let hint = event.and_then(|event| event.user_hint.as_deref());
            // The owner: a kept object's user, else the hint when it names a user.
            let (kept_owner, object_user_hint) = match change {
                BillingChange::Subscription(record) => {
                    let kept = sqlx::query("SELECT user_id FROM subscriptions WHERE id = $1")
                        .bind(&record.id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.text("user_id"))
                        .transpose()?;
                    let hint = if event.is_none() {
                        Some(record.user_id.as_str())
                    } else {
                        hint
                    };
                    (kept, hint)
                }
                BillingChange::Invoice(record) => {
                    let kept = sqlx::query("SELECT user_id FROM subscriptions WHERE id = $1")
                        .bind(&record.subscription_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.text("user_id"))
                        .transpose()?;
                    (kept, hint)
                }
                BillingChange::Record { .. } => (None, hint),
            };
            let owner = match kept_owner {
                Some(owner) => Some(owner),
                None => match object_user_hint {
                    Some(hint) => sqlx::query("SELECT id FROM users WHERE id = $1")
                        .bind(hint)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.text("id"))
                        .transpose()?,
                    None => None,
                },
            };
            let outcome = match (change, owner) {
                (BillingChange::Record { .. }, owner) => {
                    BillingOutcome::Recorded { user_id: owner }
                }
                (_, None) => BillingOutcome::UnknownUser,
                (BillingChange::Invoice(record), Some(owner)) => {
                    let applied = sqlx::query(UPSERT_INVOICE)
                        .bind(&record.id)
                        .bind(&record.subscription_id)
                        .bind(&owner)
                        .bind(&record.status)
                        .bind(&record.billing_reason)
                        .bind(record.total)
                        .bind(&record.currency)
                        .bind(record.refunded_amount)
                        .bind(&record.invoice_url)
                        .bind(record.provider_updated_at_ms)
                        .bind(record.created_at_ms)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if applied {
                        BillingOutcome::Applied {
                            user_id: owner,
                            new_plan: None,
                        }
                    } else {
                        BillingOutcome::Stale { user_id: owner }
                    }
                }
                (BillingChange::Subscription(record), Some(owner)) => {
                    // Lock the user first, so concurrent deliveries for one user recompute
                    // the plan one after the other.
                    let current_plan = sqlx::query(lock_user)
                        .bind(&owner)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.text("plan"))
                        .transpose()?;
                    let applied = sqlx::query(UPSERT_SUBSCRIPTION)
                        .bind(&record.id)
                        .bind(&owner)
                        .bind(&record.customer_id)
                        .bind(&record.variant_id)
                        .bind(&record.plan)
                        .bind(&record.status)
                        .bind(i64::from(record.entitled))
                        .bind(i64::from(record.cancelled))
                        .bind(&record.card_brand)
                        .bind(&record.card_last_four)
                        .bind(record.renews_at_ms)
                        .bind(record.ends_at_ms)
                        .bind(record.trial_ends_at_ms)
                        .bind(record.provider_updated_at_ms)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if !applied {
                        BillingOutcome::Stale { user_id: owner }
                    } else {
                        let entitled_plan = sqlx::query(
                            "SELECT plan FROM subscriptions WHERE user_id = $1 AND entitled = 1 \
                             ORDER BY provider_updated_at DESC, id DESC LIMIT 1",
                        )
                        .bind(&owner)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.text("plan"))
                        .transpose()?;
                        let target = entitled_plan.unwrap_or_else(|| plans.default_plan.clone());
                        let mut new_plan = None;
                        if current_plan.as_deref() != Some(target.as_str()) {
                            let (_, plan) = plans.plan_for(&target);
                            sqlx::query(
                                "UPDATE users SET plan = $1, max_concurrent_runs = $2 WHERE id = $3",
                            )
                            .bind(&target)
                            .bind(i64::from(plan.max_concurrent_runs))
                            .bind(&owner)
                            .execute(&mut *tx)
                            .await?;
                            if let Some(allowance) = plan.monthly_compute_units {
                                let base_key = crate::ledger::monthly_grant_key(&owner, month);
                                let granted = sqlx::query(
                                    "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS granted \
                                     FROM ledger WHERE user_id = $1 AND kind = 'grant' AND \
                                     (idempotency_key = $2 OR \
                                      substr(idempotency_key, 1, length($3)) = $3)",
                                )
                                .bind(&owner)
                                .bind(&base_key)
                                .bind(format!("{base_key}:"))
                                .fetch_one(&mut *tx)
                                .await?
                                .int("granted")?;
                                let top_up = to_sql_int(allowance).saturating_sub(granted);
                                if top_up > 0 {
                                    let key = if granted == 0 {
                                        base_key
                                    } else {
                                        format!("{base_key}:{target}")
                                    };
                                    sqlx::query(
                                        "INSERT INTO ledger (user_id, run_id, idempotency_key, \
                                         kind, amount, mode, created_at) \
                                         VALUES ($1, NULL, $2, 'grant', $3, NULL, $4) \
                                         ON CONFLICT (idempotency_key) DO NOTHING",
                                    )
                                    .bind(&owner)
                                    .bind(&key)
                                    .bind(top_up)
                                    .bind(now)
                                    .execute(&mut *tx)
                                    .await?;
                                }
                            }
                            new_plan = Some(target);
                        }
                        BillingOutcome::Applied {
                            user_id: owner,
                            new_plan,
                        }
                    }
                }
            };
            if let Some(event) = event {
                let user_id = match &outcome {
                    BillingOutcome::Applied { user_id, .. } | BillingOutcome::Stale { user_id } => {
                        Some(user_id.clone())
                    }
                    BillingOutcome::Recorded { user_id } => user_id.clone(),
                    _ => None,
                };
                let log_name = match change {
                    BillingChange::Record { outcome } => outcome,
                    _ => outcome.log_name(),
                };
                sqlx::query(
                    "UPDATE billing_events SET outcome = $1, user_id = $2 WHERE event_key = $3",
                )
                .bind(log_name)
                .bind(user_id)
                .bind(&event.key)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(outcome)
        })?;
        if let BillingOutcome::Applied {
            new_plan: Some(_), ..
        } = &outcome
        {
            // The plan is part of what a cached credential carries (rate limits, caps).
            self.bump_credential_revision().await?;
        }
        Ok(outcome)
    }

    /// The user's subscriptions, the most recently changed first.
    pub async fn list_subscriptions(
        &self,
        user_id: &str,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query(concat!(
                "SELECT ",
                subscriptions_columns!(),
                " FROM subscriptions WHERE user_id = $1 \
                 ORDER BY provider_updated_at DESC, id DESC"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(subscription_from_row)
            .collect()
        })
    }

    /// The subscription a user manages: the most recently changed one that has not
    /// expired, else none.
    pub async fn current_subscription(
        &self,
        user_id: &str,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        Ok(self
            .list_subscriptions(user_id)
            .await?
            .into_iter()
            .find(|subscription| subscription.status != "expired"))
    }

    /// A page of the user's invoices, newest first, and how many there are.
    pub async fn list_invoices(
        &self,
        user_id: &str,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<InvoiceRecord>, u64), StoreError> {
        with_pool!(&self.db, |pool| {
            let total = sqlx::query("SELECT COUNT(*) AS n FROM invoices WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(pool)
                .await?
                .uint("n")?;
            let items = sqlx::query(concat!(
                "SELECT ",
                invoices_columns!(),
                " FROM invoices WHERE user_id = $1 ORDER BY created_at DESC, id DESC \
                 LIMIT $2 OFFSET $3"
            ))
            .bind(user_id)
            .bind(i64::from(limit))
            .bind(to_sql_int(offset))
            .fetch_all(pool)
            .await?
            .iter()
            .map(invoice_from_row)
            .collect::<Result<Vec<_>, _>>()?;
            Ok((items, total))
        })
    }

    /// Webhook deliveries logged (for operators and tests).
    pub async fn count_billing_events(&self) -> Result<u64, StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("SELECT COUNT(*) AS n FROM billing_events")
                .fetch_one(pool)
                .await?
                .uint("n")
        })
    }
}

fn subscription_from_row(row: &impl RowExt) -> Result<SubscriptionRecord, StoreError> {
    Ok(SubscriptionRecord {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        customer_id: row.opt_text("customer_id")?,
        variant_id: row.text("variant_id")?,
        plan: row.text("plan")?,
        status: row.text("status")?,
        entitled: row.flag("entitled")?,
        cancelled: row.flag("cancelled")?,
        card_brand: row.opt_text("card_brand")?,
        card_last_four: row.opt_text("card_last_four")?,
        renews_at_ms: row.opt_int("renews_at")?,
        ends_at_ms: row.opt_int("ends_at")?,
        trial_ends_at_ms: row.opt_int("trial_ends_at")?,
        provider_updated_at_ms: row.int("provider_updated_at")?,
    })
}

fn invoice_from_row(row: &impl RowExt) -> Result<InvoiceRecord, StoreError> {
    Ok(InvoiceRecord {
        id: row.text("id")?,
        subscription_id: row.text("subscription_id")?,
        status: row.text("status")?,
        billing_reason: row.opt_text("billing_reason")?,
        total: row.int("total")?,
        currency: row.text("currency")?,
        refunded_amount: row.int("refunded_amount")?,
        invoice_url: row.opt_text("invoice_url")?,
        created_at_ms: row.int("created_at")?,
        provider_updated_at_ms: row.int("provider_updated_at")?,
    })
}
