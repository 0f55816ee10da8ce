//! `POST /api/v1/billing/webhooks/lemon-squeezy`: the provider's deliveries.
//!
//! Order of the steps matters: the signature is checked over the raw bytes before anything
//! reads them (a tampered or unsigned body is 401 and changes nothing); then the body is
//! parsed, mapped to a store change, and applied exactly once (a replay answers 200 and
//! changes nothing, so the provider stops retrying). Test-mode deliveries change nothing
//! unless the settings say `test_mode = true`, so a test purchase never grants a real plan.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use selextract_billing::{
    WebhookObject, entitles_to_plan, event_key, parse_event, verify_signature,
};
use selextract_config::ExposeSecret;
use selextract_store::{
    BillingChange, BillingEvent, BillingOutcome, InvoiceRecord, SubscriptionRecord,
};
use serde_json::{Value, json};

use crate::audit::{ClientIp, Event, record};
use crate::error::ApiError;
use crate::handlers::billing::{provider, this_month};
use crate::state::AppState;
use crate::time::now_ms;

pub(crate) async fn receive(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let config = provider(&state)?;
    let secret = config
        .signing_secret
        .as_ref()
        .ok_or(ApiError::BillingDisabled)?;
    let signature = headers.get("x-signature").and_then(|v| v.to_str().ok());
    verify_signature(secret.expose_secret().as_bytes(), &body, signature).map_err(|error| {
        tracing::warn!(%error, "refused a billing webhook");
        ApiError::Unauthorized(format!("invalid webhook signature: {error}"))
    })?;
    let event = parse_event(&body).map_err(|error| {
        tracing::warn!(%error, "a signed billing webhook could not be read");
        ApiError::InvalidRequest(format!("unreadable webhook payload: {error}"))
    })?;
    let name = event.name.as_str().to_owned();
    let change = if event.test_mode && !config.test_mode {
        BillingChange::Record {
            outcome: "ignored_test_mode",
        }
    } else {
        change_of(config, &event.object)
    };
    let object_id = match &event.object {
        WebhookObject::Subscription(s) => Some(s.id.clone()),
        WebhookObject::Invoice(i) => Some(i.id.clone()),
        WebhookObject::Order(o) => Some(o.id.clone()),
        WebhookObject::Ignored => None,
    };
    let billing_event = BillingEvent {
        key: event_key(&body),
        name: name.clone(),
        object_id: object_id.clone(),
        user_hint: event.user_id.clone(),
    };
    let outcome = state
        .store
        .apply_billing_event(&billing_event, &change, &state.config.plans, &this_month())
        .await?;
    audit(&state, &ip, &name, object_id.as_deref(), &change, &outcome).await;
    Ok(Json(json!({ "outcome": outcome_name(&outcome, &change) })))
}

/// What the event asks of the store.
fn change_of(
    config: &selextract_billing::LemonSqueezyConfig,
    object: &WebhookObject,
) -> BillingChange {
    match object {
        WebhookObject::Subscription(s) => match config.plan_for_variant(s.variant_id) {
            // Another product of the same store: not ours to act on.
            None => BillingChange::Record {
                outcome: "ignored_unknown_variant",
            },
            Some(plan) => BillingChange::Subscription(SubscriptionRecord {
                id: s.id.clone(),
                user_id: String::new(),
                customer_id: s.customer_id.clone(),
                variant_id: s.variant_id.to_string(),
                plan: plan.to_owned(),
                status: s.status.clone(),
                entitled: entitles_to_plan(s, now_ms()),
                cancelled: s.cancelled,
                card_brand: s.card_brand.clone(),
                card_last_four: s.card_last_four.clone(),
                renews_at_ms: s.renews_at_ms,
                ends_at_ms: s.ends_at_ms,
                trial_ends_at_ms: s.trial_ends_at_ms,
                provider_updated_at_ms: s.updated_at_ms,
            }),
        },
        WebhookObject::Invoice(i) => BillingChange::Invoice(InvoiceRecord {
            id: i.id.clone(),
            subscription_id: i.subscription_id.clone(),
            status: i.status.clone(),
            billing_reason: i.billing_reason.clone(),
            total: i.total,
            currency: i.currency.clone(),
            refunded_amount: i.refunded_amount,
            invoice_url: i.invoice_url.clone(),
            created_at_ms: i.created_at_ms,
            provider_updated_at_ms: i.updated_at_ms,
        }),
        // Order refunds are kept in the event log; the invoice's own refund event marks the
        // invoice.
        WebhookObject::Order(_) => BillingChange::Record {
            outcome: "recorded",
        },
        WebhookObject::Ignored => BillingChange::Record { outcome: "ignored" },
    }
}

fn outcome_name(outcome: &BillingOutcome, change: &BillingChange) -> &'static str {
    match (outcome, change) {
        (BillingOutcome::Duplicate, _) => "duplicate",
        (_, BillingChange::Record { outcome }) => outcome,
        (BillingOutcome::Applied { .. }, _) => "applied",
        (BillingOutcome::Stale { .. }, _) => "stale",
        (BillingOutcome::UnknownUser, _) => "unknown_user",
        (BillingOutcome::Recorded { .. }, _) => "recorded",
    }
}

/// `billing_<event_name>` in the user's audit log, for deliveries that concern a user and
/// were not seen before.
async fn audit(
    state: &AppState,
    ip: &ClientIp,
    name: &str,
    object_id: Option<&str>,
    change: &BillingChange,
    outcome: &BillingOutcome,
) {
    let (user_id, new_plan) = match outcome {
        BillingOutcome::Applied { user_id, new_plan } => (Some(user_id.as_str()), new_plan.clone()),
        BillingOutcome::Stale { user_id } => (Some(user_id.as_str()), None),
        BillingOutcome::Recorded { user_id } => (user_id.as_deref(), None),
        BillingOutcome::Duplicate | BillingOutcome::UnknownUser => (None, None),
    };
    let Some(user_id) = user_id else {
        return;
    };
    if matches!(change, BillingChange::Record { outcome } if *outcome != "recorded") {
        return;
    }
    let event = format!("billing_{name}");
    record(
        state,
        ip,
        Event {
            user_id: Some(user_id),
            actor: Some("billing"),
            event: &event,
            details: json!({
                "object_id": object_id,
                "outcome": outcome_name(outcome, change),
                "new_plan": new_plan,
            }),
        },
    )
    .await;
}
