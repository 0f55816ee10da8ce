//! Notifications as a user sees them: the delivery log (`GET /api/v1/deliveries`, one
//! delivery with its attempts, redelivery), the webhook signing secret (read and rotate),
//! and the health of a task's notification targets (list, re-enable). Every read is the
//! caller's own: another user's delivery or task is a 404, like one that does not exist.
//!
//! The signing secret is shown to the person (session or JWT) and to API keys holding
//! `keys:write` (a program that sets up its own receiver needs it; a read-only key does
//! not); rotating it is the person's only, like other account-level changes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use selextract_store::{Delivery, DeliveryAttempt, DeliveryFilter, DeliveryState, NotifyTarget};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audit::{self, ClientIp, Event};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiQuery, ErrorDetail, OptionalJson};
use crate::handlers::tasks::find_task;
use crate::routes::{QueryParam, Route, Success, def};
use crate::state::AppState;
use crate::time::{rfc3339, rfc3339_opt};
use crate::views::check;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;

const LOG_FILTERS: &[QueryParam] = &[
    ("task_id", "string", "Only deliveries of this task."),
    (
        "state",
        "string",
        "pending, delivered, failed or cancelled.",
    ),
    (
        "cursor",
        "string",
        "Only deliveries older than this: pass the previous page's next_cursor.",
    ),
    (
        "limit",
        "integer",
        "Deliveries to return, 1 to 100 (default 50).",
    ),
];

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::Json;
    vec![
        def(
            M::GET,
            "/api/v1/deliveries",
            "listDeliveries",
            "The caller's notification deliveries, newest first",
        )
        .scope(Scope::TasksRead)
        .to(
            list_deliveries,
            LOG_FILTERS,
            None,
            Json(200, "DeliveryPage"),
        ),
        def(
            M::GET,
            "/api/v1/deliveries/{id}",
            "getDelivery",
            "One delivery with its attempts",
        )
        .scope(Scope::TasksRead)
        .to(get_delivery, &[], None, Json(200, "DeliveryDetail")),
        def(
            M::POST,
            "/api/v1/deliveries/{id}/redeliver",
            "redeliverDelivery",
            "Send a delivery again (same delivery id, a fresh retry window)",
        )
        .scope(Scope::TasksWrite)
        .to(redeliver, &[], None, Json(200, "Delivery")),
        def(
            M::GET,
            "/api/v1/account/webhook-secret",
            "getWebhookSecret",
            "The caller's webhook signing secret (session, JWT or a keys:write key)",
        )
        .scope(Scope::TasksRead)
        .to(get_webhook_secret, &[], None, Json(200, "WebhookSecret")),
        def(
            M::POST,
            "/api/v1/account/webhook-secret/rotate",
            "rotateWebhookSecret",
            "Replace the webhook signing secret (session or JWT only)",
        )
        .scope(Scope::TasksRead)
        .to(rotate_webhook_secret, &[], None, Json(200, "WebhookSecret")),
        def(
            M::GET,
            "/api/v1/tasks/{id}/notify/targets",
            "listNotifyTargets",
            "The health of a task's notification targets",
        )
        .scope(Scope::TasksRead)
        .to(list_targets, &[], None, Json(200, "NotifyTargets")),
        def(
            M::POST,
            "/api/v1/tasks/{id}/notify/targets/enable",
            "enableNotifyTargets",
            "Re-enable a task's disabled notification targets (all, or one channel and target)",
        )
        .scope(Scope::TasksWrite)
        .to(
            enable_targets,
            &[],
            Some("EnableNotifyTargets"),
            Json(200, "NotifyTargets"),
        ),
    ]
}

pub(crate) fn schemas() -> Map<String, Value> {
    let schemas = json!({
        "Delivery": {
            "type": "object",
            "required": ["id", "event", "channel", "target", "state", "attempts", "created_at"],
            "properties": {
                "id": {"type": "string", "description": "Also the X-Selextract-Delivery header: the same on every attempt."},
                "task_id": {"type": ["string", "null"]},
                "run_id": {"type": ["string", "null"]},
                "event": {"type": "string", "enum": ["run.completed", "run.failed", "run.partial", "changes.detected"]},
                "channel": {"type": "string", "enum": ["webhook", "slack", "email"]},
                "target": {"type": "string", "description": "The URL or e-mail address."},
                "state": {"type": "string", "enum": ["pending", "delivered", "failed", "cancelled"]},
                "attempts": {"type": "integer"},
                "last_status": {"type": ["integer", "null"], "description": "The receiver's last HTTP status."},
                "last_error": {"type": ["string", "null"]},
                "last_latency_ms": {"type": ["integer", "null"]},
                "next_attempt_at": {"type": ["string", "null"], "format": "date-time", "description": "While pending."},
                "give_up_at": {"type": "string", "format": "date-time"},
                "created_at": {"type": "string", "format": "date-time"},
                "delivered_at": {"type": ["string", "null"], "format": "date-time"}
            }
        },
        "DeliveryAttempt": {
            "type": "object",
            "required": ["attempt", "started_at", "outcome", "latency_ms"],
            "properties": {
                "attempt": {"type": "integer"},
                "started_at": {"type": "string", "format": "date-time"},
                "outcome": {"type": "string", "enum": ["delivered", "retry", "failed"]},
                "status_code": {"type": ["integer", "null"]},
                "latency_ms": {"type": "integer"},
                "error": {"type": ["string", "null"]}
            }
        },
        "DeliveryDetail": {
            "allOf": [{"$ref": "#/components/schemas/Delivery"}, {
                "type": "object",
                "required": ["payload", "attempt_log"],
                "properties": {
                    "payload": {"type": "object", "description": "The event document (the webhook body)."},
                    "attempt_log": {"type": "array", "items": {"$ref": "#/components/schemas/DeliveryAttempt"}}
                }
            }]
        },
        "DeliveryPage": {
            "type": "object",
            "required": ["items", "has_more", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}},
                "has_more": {"type": "boolean"},
                "next_cursor": {"type": ["string", "null"]}
            }
        },
        "WebhookSecret": {
            "type": "object",
            "required": ["secret", "version"],
            "properties": {
                "secret": {"type": "string", "description": "whsec_…: the HMAC-SHA256 key of X-Selextract-Signature."},
                "version": {"type": "integer"}
            }
        },
        "NotifyTarget": {
            "type": "object",
            "required": ["channel", "target", "consecutive_failures", "disabled"],
            "properties": {
                "channel": {"type": "string"},
                "target": {"type": "string"},
                "consecutive_failures": {"type": "integer"},
                "disabled": {"type": "boolean"},
                "disabled_at": {"type": ["string", "null"], "format": "date-time"},
                "disabled_reason": {"type": ["string", "null"]}
            }
        },
        "NotifyTargets": {
            "type": "object",
            "required": ["task_id", "targets"],
            "properties": {
                "task_id": {"type": "string"},
                "targets": {"type": "array", "items": {"$ref": "#/components/schemas/NotifyTarget"}, "description": "Targets that ever failed; one that never failed has no row and is healthy."},
                "enabled": {"type": "integer", "description": "After enable: how many targets were re-enabled."}
            }
        },
        "EnableNotifyTargets": {
            "type": "object",
            "properties": {
                "channel": {"type": "string", "description": "With target: re-enable only this one."},
                "target": {"type": "string"}
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogQuery {
    task_id: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/deliveries`.
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = parse_log_query(&query)?;
    let (items, has_more) = state
        .store
        .list_deliveries(&caller.user_id, &filter)
        .await?;
    let next_cursor = has_more
        .then(|| {
            items
                .last()
                .map(|d| format!("{}.{}", d.created_at_ms, d.id))
        })
        .flatten();
    Ok(Json(json!({
        "items": items.iter().map(delivery_json).collect::<Vec<_>>(),
        "has_more": has_more,
        "next_cursor": next_cursor,
    })))
}

fn parse_log_query(query: &LogQuery) -> Result<DeliveryFilter, ApiError> {
    let mut errors = Vec::new();
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let state = text(&query.state).and_then(|s| match s.parse::<DeliveryState>() {
        Ok(state) => Some(state),
        Err(()) => {
            errors.push(ErrorDetail::new(
                "state",
                "must be pending, delivered, failed or cancelled",
            ));
            None
        }
    });
    let before = text(&query.cursor).and_then(|cursor| {
        let parsed = cursor
            .split_once('.')
            .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())));
        if parsed.is_none() {
            errors.push(ErrorDetail::new("cursor", "is not a cursor from this API"));
        }
        parsed
    });
    let limit = match text(&query.limit) {
        None => DEFAULT_LIMIT,
        Some(limit) => match limit.parse::<u32>() {
            Ok(n @ 1..=MAX_LIMIT) => n,
            _ => {
                errors.push(ErrorDetail::new(
                    "limit",
                    "must be an integer from 1 to 100",
                ));
                DEFAULT_LIMIT
            }
        },
    };
    check(errors)?;
    Ok(DeliveryFilter {
        task_id: text(&query.task_id),
        state,
        before,
        limit,
    })
}

/// `GET /api/v1/deliveries/{id}`.
pub(crate) async fn get_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (delivery, attempts) = state
        .store
        .get_delivery(&caller.user_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(Json(delivery_detail_json(&delivery, &attempts)))
}

/// `POST /api/v1/deliveries/{id}/redeliver`: pending again, due now, retried for another
/// `notifications.retry_for`; the delivery id stays, so receivers can tell it is a repeat.
pub(crate) async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = chrono::Utc::now().timestamp_millis();
    let retry_for = i64::try_from(state.notify.retry_for.as_millis()).unwrap_or(i64::MAX);
    let delivery = state
        .store
        .redeliver_delivery(&caller.user_id, &id, now, now.saturating_add(retry_for))
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let event = Event::by_user(
        &caller.user_id,
        "delivery_redelivered",
        json!({"delivery_id": id}),
    );
    audit::record(&state, &ip, event).await;
    Ok(Json(delivery_json(&delivery)))
}

/// `GET /api/v1/account/webhook-secret`.
pub(crate) async fn get_webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    if !caller.is_human() && !caller.scopes.contains(Scope::KeysWrite) {
        return Err(ApiError::Forbidden(
            "reading the webhook secret needs a login session, an access token or an API key \
             with keys:write"
                .to_owned(),
        ));
    }
    let version = state
        .store
        .webhook_secret_version(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    secret_json(&state, &caller.user_id, version).await
}

/// `POST /api/v1/account/webhook-secret/rotate`: the old secret stops signing at once
/// (deliveries attempted from now on use the new one).
pub(crate) async fn rotate_webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
) -> Result<Json<Value>, ApiError> {
    if !caller.is_human() {
        return Err(ApiError::Forbidden(
            "this change needs a login session or access token, not an API key".to_owned(),
        ));
    }
    let version = state
        .store
        .bump_webhook_secret_version(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let event = Event::by_user(
        &caller.user_id,
        "webhook_secret_rotated",
        json!({"version": version}),
    );
    audit::record(&state, &ip, event).await;
    secret_json(&state, &caller.user_id, version).await
}

async fn secret_json(
    state: &AppState,
    user_id: &str,
    version: u32,
) -> Result<Json<Value>, ApiError> {
    let secrets = state.webhook_secrets().await?;
    Ok(Json(json!({
        "secret": secrets.secret_for(user_id, version),
        "version": version,
    })))
}

/// `GET /api/v1/tasks/{id}/notify/targets`.
pub(crate) async fn list_targets(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let targets = state
        .store
        .notify_targets(&caller.user_id, &task_id)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    Ok(Json(targets_json(&task_id, &targets, None)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnableBody {
    channel: Option<String>,
    target: Option<String>,
}

/// `POST /api/v1/tasks/{id}/notify/targets/enable` (body optional: `{}` re-enables all).
pub(crate) async fn enable_targets(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    Path(task_id): Path<String>,
    OptionalJson(body): OptionalJson<EnableBody>,
) -> Result<Json<Value>, ApiError> {
    find_task(&state, &caller, &task_id).await?;
    let body = body.unwrap_or_default();
    let one = match (&body.channel, &body.target) {
        (Some(channel), Some(target)) => Some((channel.as_str(), target.as_str())),
        (None, None) => None,
        _ => {
            return Err(ApiError::Validation(vec![ErrorDetail::new(
                "target",
                "channel and target go together",
            )]));
        }
    };
    let enabled = state
        .store
        .enable_notify_targets(&caller.user_id, &task_id, one)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    let event = Event::by_user(
        &caller.user_id,
        "notify_targets_enabled",
        json!({"task_id": task_id, "enabled": enabled}),
    );
    audit::record(&state, &ip, event).await;
    let targets = state
        .store
        .notify_targets(&caller.user_id, &task_id)
        .await?
        .unwrap_or_default();
    Ok(Json(targets_json(&task_id, &targets, Some(enabled))))
}

fn delivery_json(delivery: &Delivery) -> Value {
    json!({
        "id": delivery.id,
        "task_id": delivery.task_id,
        "run_id": delivery.run_id,
        "event": delivery.event,
        "channel": delivery.channel,
        "target": delivery.target,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "last_latency_ms": delivery.last_latency_ms,
        "next_attempt_at": (delivery.state == DeliveryState::Pending).then(|| rfc3339(delivery.next_attempt_at_ms)),
        "give_up_at": rfc3339(delivery.give_up_at_ms),
        "created_at": rfc3339(delivery.created_at_ms),
        "delivered_at": rfc3339_opt(delivery.delivered_at_ms),
    })
}

fn delivery_detail_json(delivery: &Delivery, attempts: &[DeliveryAttempt]) -> Value {
    let mut value = delivery_json(delivery);
    if let Value::Object(map) = &mut value {
        map.insert("payload".to_owned(), delivery.payload.clone());
        map.insert(
            "attempt_log".to_owned(),
            attempts
                .iter()
                .map(|a| {
                    json!({
                        "attempt": a.attempt,
                        "started_at": rfc3339(a.started_at_ms),
                        "outcome": a.outcome,
                        "status_code": a.status_code,
                        "latency_ms": a.latency_ms,
                        "error": a.error,
                    })
                })
                .collect(),
        );
    }
    value
}

fn targets_json(task_id: &str, targets: &[NotifyTarget], enabled: Option<u64>) -> Value {
    let mut value = json!({
        "task_id": task_id,
        "targets": targets.iter().map(|t| json!({
            "channel": t.channel,
            "target": t.target,
            "consecutive_failures": t.consecutive_failures,
            "disabled": t.disabled_at_ms.is_some(),
            "disabled_at": rfc3339_opt(t.disabled_at_ms),
            "disabled_reason": t.disabled_reason,
        })).collect::<Vec<_>>(),
    });
    if let (Some(enabled), Value::Object(map)) = (enabled, &mut value) {
        map.insert("enabled".to_owned(), json!(enabled));
    }
    value
}
