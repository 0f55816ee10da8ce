//! `/api/v1/billing`: plans, the caller's subscription and its changes through Lemon Squeezy
//! (checkout, plan change, cancel, resume, customer portal), invoices, and this month's
//! compute-unit usage. The provider's webhooks are in `billing_webhook.rs`.
//!
//! Plans and usage answer whatever the configuration; every route that involves the
//! provider answers 404 `billing_disabled` while `[billing.lemon_squeezy]` is off. Reads
//! need `billing:read`; changes are the account holder's decisions, so they need the person
//! (a session or an access token), not an API key.
//!
//! The state shown is the store's (kept from webhooks); after a change the provider's
//! answer is kept at once with the same ordering rule, so the page does not wait for the
//! webhook.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use chrono::{Datelike, TimeZone, Utc};
use selextract_billing::{LemonSqueezyClient, LemonSqueezyConfig, Subscription, entitles_to_plan};
use selextract_store::SubscriptionRecord;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audit::{ClientIp, Event, record};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorDetail};
use crate::handlers::admin_users::find_user;
use crate::handlers::billing_webhook;
use crate::handlers::runs::PageQuery;
use crate::routes::{Route, Success, def};
use crate::state::AppState;
use crate::time::{now_ms, rfc3339, rfc3339_opt};
use crate::views::ListEnvelope;

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Scope::BillingRead;
    use Success::Json;
    const PAGING: &[crate::routes::QueryParam] = &[
        ("page", "integer", "Page number, from 1 (default 1)."),
        (
            "page_size",
            "integer",
            "Items per page, 1 to 100 (default 20).",
        ),
    ];
    vec![
        def(
            M::GET,
            "/api/v1/billing/plans",
            "listPlans",
            "The configured plans",
        )
        .scope(BillingRead)
        .to(list_plans, &[], None, Json(200, "BillingPlans")),
        def(
            M::GET,
            "/api/v1/billing/subscription",
            "getSubscription",
            "The caller's plan and subscription",
        )
        .scope(BillingRead)
        .to(
            get_subscription,
            &[],
            None,
            Json(200, "BillingSubscription"),
        ),
        def(
            M::POST,
            "/api/v1/billing/create-checkout",
            "createCheckout",
            "A Lemon Squeezy checkout for a plan (sessions and access tokens only)",
        )
        .scope(BillingRead)
        .to(
            create_checkout,
            &[],
            Some("PlanChoice"),
            Json(200, "BillingUrl"),
        ),
        def(
            M::PUT,
            "/api/v1/billing/subscription",
            "changeSubscriptionPlan",
            "Move the subscription to another plan (sessions and access tokens only)",
        )
        .scope(BillingRead)
        .to(
            change_plan,
            &[],
            Some("PlanChoice"),
            Json(200, "BillingSubscription"),
        ),
        def(
            M::POST,
            "/api/v1/billing/subscription/cancel",
            "cancelSubscription",
            "Cancel at the end of the paid period (sessions and access tokens only)",
        )
        .scope(BillingRead)
        .to(cancel, &[], None, Json(200, "BillingSubscription")),
        def(
            M::POST,
            "/api/v1/billing/subscription/resume",
            "resumeSubscription",
            "Undo a cancellation before it takes effect (sessions and access tokens only)",
        )
        .scope(BillingRead)
        .to(resume, &[], None, Json(200, "BillingSubscription")),
        def(
            M::POST,
            "/api/v1/billing/portal",
            "billingPortal",
            "A signed link to the provider's customer portal (sessions and access tokens only)",
        )
        .scope(BillingRead)
        .to(portal, &[], None, Json(200, "BillingUrl")),
        def(
            M::GET,
            "/api/v1/billing/invoices",
            "listInvoices",
            "The caller's invoices, newest first",
        )
        .scope(BillingRead)
        .to(list_invoices, PAGING, None, Json(200, "InvoiceList")),
        def(
            M::GET,
            "/api/v1/billing/usage",
            "getBillingUsage",
            "This month's compute units: used, granted, balance",
        )
        .scope(BillingRead)
        .to(usage, &[], None, Json(200, "BillingUsage")),
        def(
            M::POST,
            "/api/v1/billing/webhooks/lemon-squeezy",
            "lemonSqueezyWebhook",
            "Lemon Squeezy webhook deliveries (X-Signature HMAC of the raw body)",
        )
        .to(
            billing_webhook::receive,
            &[],
            Some("LemonSqueezyWebhook"),
            Json(200, "WebhookReceipt"),
        ),
    ]
}

pub(crate) fn schemas() -> Map<String, Value> {
    let subscription = json!({"type": ["object", "null"], "properties": {
        "id": {"type": "string"}, "plan": {"type": "string"},
        "status": {"type": "string", "description": "on_trial, active, paused, past_due, unpaid, cancelled or expired (the provider's)."},
        "entitled": {"type": "boolean", "description": "Whether this state gives the plan."},
        "cancelled": {"type": "boolean"},
        "renews_at": {"type": ["string", "null"], "format": "date-time"},
        "ends_at": {"type": ["string", "null"], "format": "date-time"},
        "trial_ends_at": {"type": ["string", "null"], "format": "date-time"},
        "card_brand": {"type": ["string", "null"]}, "card_last_four": {"type": ["string", "null"]}
    }});
    let schemas = json!({
        "BillingPlans": {"type": "object", "properties": {
            "billing_enabled": {"type": "boolean"},
            "provider": {"type": ["string", "null"], "description": "lemon_squeezy when checkouts are possible."},
            "default_plan": {"type": "string"},
            "current_plan": {"type": "string"},
            "plans": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "monthly_compute_units": {"type": ["integer", "null"]},
                "max_concurrent_runs": {"type": "integer"},
                "price_cents": {"type": "integer"},
                "overage_compute_units": {"type": "integer"},
                "purchasable": {"type": "boolean"}
            }}}
        }},
        "BillingSubscription": {"type": "object", "properties": {
            "plan": {"type": "string"}, "subscription": subscription
        }},
        "PlanChoice": {"type": "object", "required": ["plan"], "properties": {"plan": {"type": "string"}}},
        "BillingUrl": {"type": "object", "properties": {"url": {"type": "string"}}},
        "Invoice": {"type": "object", "properties": {
            "id": {"type": "string"}, "subscription_id": {"type": "string"},
            "status": {"type": "string", "description": "pending, paid, void, refunded or partial_refund."},
            "billing_reason": {"type": ["string", "null"]},
            "total": {"type": "integer", "description": "In the currency's smallest unit."},
            "refunded_amount": {"type": "integer"}, "currency": {"type": "string"},
            "invoice_url": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"}
        }},
        "InvoiceList": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Invoice"}},
            "total_count": {"type": "integer"}, "page": {"type": "integer"}, "page_size": {"type": "integer"},
            "total_pages": {"type": "integer"}, "has_next": {"type": "boolean"}, "has_prev": {"type": "boolean"}
        }},
        "BillingUsage": {"type": "object", "properties": {
            "plan": {"type": "string"},
            "period_start": {"type": "string", "format": "date-time"},
            "period_end": {"type": "string", "format": "date-time"},
            "monthly_compute_units": {"type": ["integer", "null"]},
            "used": {"type": "integer"}, "granted": {"type": "integer"}, "balance": {"type": "integer"}
        }},
        "LemonSqueezyWebhook": {"type": "object", "description": "The provider's payload, verified byte for byte."},
        "WebhookReceipt": {"type": "object", "properties": {"outcome": {"type": "string"}}}
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The provider settings, or 404 `billing_disabled`.
pub(crate) fn provider(state: &AppState) -> Result<&LemonSqueezyConfig, ApiError> {
    let config = &state.config.plans.lemon_squeezy;
    if config.enabled {
        Ok(config)
    } else {
        Err(ApiError::BillingDisabled)
    }
}

fn client(config: &LemonSqueezyConfig) -> Result<LemonSqueezyClient, ApiError> {
    LemonSqueezyClient::new(config).map_err(provider_failed)
}

fn provider_failed(error: selextract_billing::ClientError) -> ApiError {
    tracing::warn!(%error, "billing provider call failed");
    match error {
        selextract_billing::ClientError::NotFound(what) => {
            ApiError::NotFound(format!("the billing provider has no such {what}"))
        }
        _ => ApiError::BillingProvider,
    }
}

/// Changes to what the account pays are the person's, not a program's.
fn require_person(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_human() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "billing changes need a dashboard session or an access token, not an API key"
                .to_owned(),
        ))
    }
}

/// `yyyy-mm` of now (UTC): the period of monthly grants.
pub(crate) fn this_month() -> String {
    Utc::now().format("%Y-%m").to_string()
}

async fn list_plans(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let plans = &state.config.plans;
    let provider = &plans.lemon_squeezy;
    let items: Vec<Value> = plans
        .plans
        .iter()
        .map(|(name, plan)| {
            json!({
                "name": name,
                "monthly_compute_units": plan.monthly_compute_units,
                "max_concurrent_runs": plan.max_concurrent_runs,
                "price_cents": plan.price_cents,
                "overage_compute_units": plan.overage_compute_units,
                "purchasable": provider.enabled && provider.variant_for_plan(name).is_some(),
            })
        })
        .collect();
    Json(json!({
        "billing_enabled": plans.billing_enabled,
        "provider": provider.enabled.then_some("lemon_squeezy"),
        "default_plan": plans.default_plan,
        "current_plan": plans.plan_for(&caller.plan).0,
        "plans": items,
    }))
}

fn subscription_json(subscription: Option<&SubscriptionRecord>) -> Value {
    match subscription {
        None => Value::Null,
        Some(s) => json!({
            "id": s.id,
            "plan": s.plan,
            "status": s.status,
            "entitled": s.entitled,
            "cancelled": s.cancelled,
            "renews_at": rfc3339_opt(s.renews_at_ms),
            "ends_at": rfc3339_opt(s.ends_at_ms),
            "trial_ends_at": rfc3339_opt(s.trial_ends_at_ms),
            "card_brand": s.card_brand,
            "card_last_four": s.card_last_four,
        }),
    }
}

async fn subscription_view(state: &AppState, user_id: &str) -> Result<Json<Value>, ApiError> {
    let user = find_user(state, user_id).await?;
    let subscription = state.store.current_subscription(user_id).await?;
    Ok(Json(json!({
        "plan": user.plan,
        "subscription": subscription_json(subscription.as_ref()),
    })))
}

async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    provider(&state)?;
    subscription_view(&state, &caller.user_id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanChoice {
    plan: String,
}

/// The variant that sells `plan`, or a validation error naming `plan`.
fn variant_of(config: &LemonSqueezyConfig, plan: &str) -> Result<u64, ApiError> {
    config.variant_for_plan(plan).ok_or_else(|| {
        let known: Vec<&str> = config.variants.keys().map(String::as_str).collect();
        ApiError::Validation(vec![ErrorDetail::new(
            "plan",
            format!("not a plan for sale; expected one of {}", known.join(", ")),
        )])
    })
}

async fn create_checkout(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    ApiJson(choice): ApiJson<PlanChoice>,
) -> Result<Json<Value>, ApiError> {
    let config = provider(&state)?;
    require_person(&caller)?;
    let variant = variant_of(config, &choice.plan)?;
    if let Some(current) = state.store.current_subscription(&caller.user_id).await?
        && current.entitled
    {
        return Err(ApiError::Conflict(format!(
            "you have a {} subscription already; change its plan with PUT /api/v1/billing/subscription",
            current.plan
        )));
    }
    let user = find_user(&state, &caller.user_id).await?;
    let url = client(config)?
        .create_checkout(variant, &caller.user_id, Some(&user.email))
        .await
        .map_err(provider_failed)?;
    record(
        &state,
        &ip,
        Event::by_user(
            &caller.user_id,
            "billing_checkout_created",
            json!({"plan": choice.plan}),
        ),
    )
    .await;
    Ok(Json(json!({ "url": url })))
}

/// The caller's current subscription, or 404.
async fn current_subscription(
    state: &AppState,
    caller: &Caller,
) -> Result<SubscriptionRecord, ApiError> {
    state
        .store
        .current_subscription(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no subscription".to_owned()))
}

/// Keeps the provider's answer as the subscription's state, then shows it.
async fn keep_and_show(
    state: &AppState,
    caller: &Caller,
    ip: &ClientIp,
    action: &str,
    answer: Subscription,
) -> Result<Json<Value>, ApiError> {
    let config = &state.config.plans.lemon_squeezy;
    let Some(plan) = config.plan_for_variant(answer.variant_id) else {
        tracing::warn!(
            variant = answer.variant_id,
            "the provider answered with a variant no plan is sold by"
        );
        return Err(ApiError::BillingProvider);
    };
    let record_state = SubscriptionRecord {
        id: answer.id.clone(),
        user_id: caller.user_id.clone(),
        customer_id: answer.customer_id.clone(),
        variant_id: answer.variant_id.to_string(),
        plan: plan.to_owned(),
        status: answer.status.clone(),
        entitled: entitles_to_plan(&answer, now_ms()),
        cancelled: answer.cancelled,
        card_brand: answer.card_brand.clone(),
        card_last_four: answer.card_last_four.clone(),
        renews_at_ms: answer.renews_at_ms,
        ends_at_ms: answer.ends_at_ms,
        trial_ends_at_ms: answer.trial_ends_at_ms,
        provider_updated_at_ms: answer.updated_at_ms,
    };
    state
        .store
        .record_subscription_state(&record_state, &state.config.plans, &this_month())
        .await?;
    record(
        state,
        ip,
        Event::by_user(
            &caller.user_id,
            action,
            json!({"subscription_id": answer.id, "plan": plan, "status": answer.status}),
        ),
    )
    .await;
    subscription_view(state, &caller.user_id).await
}

async fn change_plan(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    ApiJson(choice): ApiJson<PlanChoice>,
) -> Result<Json<Value>, ApiError> {
    let config = provider(&state)?;
    require_person(&caller)?;
    let variant = variant_of(config, &choice.plan)?;
    let current = current_subscription(&state, &caller).await?;
    let answer = client(config)?
        .change_subscription_variant(&current.id, variant)
        .await
        .map_err(provider_failed)?;
    keep_and_show(&state, &caller, &ip, "billing_plan_changed", answer).await
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
) -> Result<Json<Value>, ApiError> {
    let config = provider(&state)?;
    require_person(&caller)?;
    let current = current_subscription(&state, &caller).await?;
    let answer = client(config)?
        .cancel_subscription(&current.id)
        .await
        .map_err(provider_failed)?;
    keep_and_show(
        &state,
        &caller,
        &ip,
        "billing_subscription_cancel_requested",
        answer,
    )
    .await
}

async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
) -> Result<Json<Value>, ApiError> {
    let config = provider(&state)?;
    require_person(&caller)?;
    let current = current_subscription(&state, &caller).await?;
    if !current.cancelled {
        return Err(ApiError::Conflict(
            "the subscription is not cancelled".to_owned(),
        ));
    }
    let answer = client(config)?
        .resume_subscription(&current.id)
        .await
        .map_err(provider_failed)?;
    keep_and_show(
        &state,
        &caller,
        &ip,
        "billing_subscription_resume_requested",
        answer,
    )
    .await
}

async fn portal(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let config = provider(&state)?;
    require_person(&caller)?;
    let subscriptions = state.store.list_subscriptions(&caller.user_id).await?;
    let newest = subscriptions
        .first()
        .ok_or_else(|| ApiError::NotFound("no subscription".to_owned()))?;
    // Portal links are signed and expire, so they are read fresh each time.
    let fresh = client(config)?
        .get_subscription(&newest.id)
        .await
        .map_err(provider_failed)?;
    let url = fresh
        .urls
        .customer_portal
        .ok_or(ApiError::BillingProvider)?;
    Ok(Json(json!({ "url": url })))
}

async fn list_invoices(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ListEnvelope>, ApiError> {
    provider(&state)?;
    let page = query.page()?;
    let offset = u64::from(page.page - 1) * u64::from(page.page_size);
    let (invoices, total) = state
        .store
        .list_invoices(&caller.user_id, page.page_size, offset)
        .await?;
    let items = invoices
        .iter()
        .map(|invoice| {
            json!({
                "id": invoice.id,
                "subscription_id": invoice.subscription_id,
                "status": invoice.status,
                "billing_reason": invoice.billing_reason,
                "total": invoice.total,
                "refunded_amount": invoice.refunded_amount,
                "currency": invoice.currency,
                "invoice_url": invoice.invoice_url,
                "created_at": rfc3339(invoice.created_at_ms),
            })
        })
        .collect();
    Ok(Json(ListEnvelope::new(items, total, page)))
}

async fn usage(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let (start, end) = this_month_bounds_ms();
    let user = find_user(&state, &caller.user_id).await?;
    let (plan_name, plan) = state.config.plans.plan_for(&user.plan);
    let used = state
        .store
        .compute_units_used(&caller.user_id, start)
        .await?;
    let granted = state
        .store
        .compute_units_granted_since(&caller.user_id, start)
        .await?;
    let balance = state.store.compute_unit_balance(&caller.user_id).await?;
    Ok(Json(json!({
        "plan": plan_name,
        "period_start": rfc3339(start),
        "period_end": rfc3339(end),
        "monthly_compute_units": plan.monthly_compute_units,
        "used": used,
        "granted": granted,
        "balance": balance,
    })))
}

/// The current UTC calendar month as `[start, end)` in unix milliseconds.
fn this_month_bounds_ms() -> (i64, i64) {
    let now = Utc::now();
    let start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single();
    let (next_year, next_month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(next_year, next_month, 1, 0, 0, 0)
        .single();
    match (start, end) {
        (Some(start), Some(end)) => (start.timestamp_millis(), end.timestamp_millis()),
        // The first of a month at midnight UTC always exists; this keeps the types honest.
        _ => (0, now.timestamp_millis()),
    }
}
