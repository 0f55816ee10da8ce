//! Reading the audit log: `GET /api/v1/admin/audit` (administrators: every entry) and
//! `GET /api/v1/auth/audit` (anyone: the entries about their own account). Both page
//! backwards by entry id (`before`), which stays correct while new entries are appended.
//!
//! The log is append-only: there is no route (and no store method) that changes or removes
//! an entry.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use selextract_store::{AuditFilter, AuditRecord};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::admin::require_admin;
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiQuery, ErrorDetail};
use crate::routes::{QueryParam, Route, Success, def};
use crate::state::AppState;
use crate::time::rfc3339;
use crate::views::check;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;
/// Event names are short snake_case words (`login_failed`, `billing_subscription_created`).
const MAX_EVENT_CHARS: usize = 64;
/// User ids are UUIDs; anything much longer is not one.
const MAX_USER_ID_CHARS: usize = 64;

const PAGING: [QueryParam; 3] = [
    (
        "event",
        "string",
        "Only entries of this event (e.g. login_failed).",
    ),
    (
        "before",
        "integer",
        "Only entries older than this entry id: pass the previous page's next_before.",
    ),
    (
        "limit",
        "integer",
        "Entries to return, 1 to 100 (default 50).",
    ),
];
const ADMIN_FILTERS: &[QueryParam] = &[
    ("user_id", "string", "Only entries about this user."),
    PAGING[0],
    PAGING[1],
    PAGING[2],
];

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::Json;
    vec![
        def(
            M::GET,
            "/api/v1/admin/audit",
            "listAudit",
            "The audit log, newest first (admin only)",
        )
        .scope(Scope::TasksRead)
        .to(admin_audit, ADMIN_FILTERS, None, Json(200, "AuditPage")),
        def(
            M::GET,
            "/api/v1/auth/audit",
            "listOwnAudit",
            "The audit log of the caller's own account, newest first",
        )
        .scope(Scope::TasksRead)
        .to(own_audit, &PAGING, None, Json(200, "AuditPage")),
    ]
}

pub(crate) fn schemas() -> Map<String, Value> {
    let schemas = json!({
        "AuditEntry": {
            "type": "object",
            "required": ["id", "event", "details", "created_at"],
            "properties": {
                "id": {"type": "integer"},
                "user_id": {"type": ["string", "null"], "description": "The account the event concerns."},
                "actor": {"type": ["string", "null"], "description": "Who did it: a user id, or `cli`, `billing`, …"},
                "event": {"type": "string", "description": "login, login_failed, login_locked, logout, logout_everywhere, signup, password_changed, password_reset_requested, password_reset, email_verified, api_key_created, api_key_revoked, account_deleted, admin_user_changed, invitation_created, oidc_linked, refresh_reuse_detected, billing_<event>"},
                "ip": {"type": ["string", "null"], "description": "The client address; in a user's own log, shown only for the user's own actions and failed logins."},
                "details": {"type": "object", "description": "Event-specific facts; never a password, token or key."},
                "created_at": {"type": "string", "format": "date-time"}
            }
        },
        "AuditPage": {
            "type": "object",
            "required": ["items", "has_more", "next_before"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
                "has_more": {"type": "boolean"},
                "next_before": {"type": ["integer", "null"], "description": "Pass as `before` for the next (older) page."}
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    user_id: Option<String>,
    event: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/admin/audit`.
pub(crate) async fn admin_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let mut errors = Vec::new();
    let user_id = query
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    if user_id.is_some_and(|id| id.chars().count() > MAX_USER_ID_CHARS) {
        errors.push(ErrorDetail::new("user_id", "is not a user id"));
    }
    let filter = parse_paging(&query, user_id.map(str::to_owned), &mut errors);
    check(errors)?;
    let (entries, has_more) = read_page(&state, filter).await?;
    let items = entries
        .iter()
        .map(|entry| audit_json(entry, true))
        .collect();
    Ok(Json(page_json(items, &entries, has_more)))
}

/// `GET /api/v1/auth/audit`: only the caller's account. A `user_id` parameter is refused
/// rather than ignored, so nobody mistakes it for a filter that works here.
pub(crate) async fn own_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = Vec::new();
    if query.user_id.is_some() {
        errors.push(ErrorDetail::new(
            "user_id",
            "not accepted here: this log holds only your own account's entries",
        ));
    }
    let filter = parse_paging(&query, Some(caller.user_id.clone()), &mut errors);
    check(errors)?;
    let (entries, has_more) = read_page(&state, filter).await?;
    let items = entries
        .iter()
        .map(|entry| {
            // Another person's address (an administrator who changed this account) is not
            // this user's to see; a failed login's is (actor `None`), that is the point.
            let own_action = entry
                .actor
                .as_deref()
                .is_none_or(|actor| actor == caller.user_id);
            audit_json(entry, own_action)
        })
        .collect();
    Ok(Json(page_json(items, &entries, has_more)))
}

fn parse_paging(
    query: &AuditQuery,
    user_id: Option<String>,
    errors: &mut Vec<ErrorDetail>,
) -> AuditFilter {
    let event = query
        .event
        .as_deref()
        .map(str::trim)
        .filter(|event| !event.is_empty());
    if event.is_some_and(|event| {
        event.len() > MAX_EVENT_CHARS
            || !event
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }) {
        errors.push(ErrorDetail::new(
            "event",
            "must be an event name: lower-case letters, digits and _",
        ));
    }
    let before_id = match query.before.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<i64>() {
            Ok(id) if id >= 1 => Some(id),
            _ => {
                errors.push(ErrorDetail::new("before", "must be a positive integer"));
                None
            }
        },
    };
    let limit = match query.limit.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => match text.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => {
                errors.push(ErrorDetail::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                ));
                DEFAULT_LIMIT
            }
        },
    };
    AuditFilter {
        user_id,
        event: event.map(str::to_owned),
        before_id,
        limit,
    }
}

/// One page, and whether older entries exist: one more entry than asked for is read.
async fn read_page(
    state: &AppState,
    mut filter: AuditFilter,
) -> Result<(Vec<AuditRecord>, bool), ApiError> {
    let limit = filter.limit as usize;
    filter.limit += 1;
    let mut entries = state.store.list_audit(&filter).await?;
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    Ok((entries, has_more))
}

fn page_json(items: Vec<Value>, entries: &[AuditRecord], has_more: bool) -> Value {
    let next_before = if has_more {
        entries.last().map(|entry| entry.id)
    } else {
        None
    };
    json!({"items": items, "has_more": has_more, "next_before": next_before})
}

fn audit_json(entry: &AuditRecord, show_ip: bool) -> Value {
    json!({
        "id": entry.id,
        "user_id": entry.user_id,
        "actor": entry.actor,
        "event": entry.event,
        "ip": if show_ip { entry.ip.as_deref() } else { None },
        "details": entry.details,
        "created_at": rfc3339(entry.created_at_ms),
    })
}
