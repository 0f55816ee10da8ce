//! A monitor's changes (SPEC §5): `GET /runs/{id}/changes` (the run's change summary and a
//! page of its per-record detail), `GET /tasks/{id}/changes` (the task's recent summaries),
//! the task's Atom feed tokens, and the feed itself (`GET /tasks/{id}/changes.atom`, see
//! `changes_feed.rs`).
//!
//! A feed token is a random secret in the feed's URL (stored as its SHA-256) that grants
//! reading that one task's feed and nothing else: it is not an API key, so every other
//! route refuses it, and it can be revoked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use selextract_changes::{ChangeKind, RunChanges, read_detail};
use selextract_store::FeedToken;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiQuery, ErrorDetail};
use crate::handlers::runs::find_run;
use crate::handlers::tasks::find_task;
use crate::routes::{QueryParam, Route, Success, def};
use crate::state::AppState;
use crate::time::{rfc3339, rfc3339_opt};
use crate::views::check;

const DEFAULT_DETAIL_LIMIT: usize = 100;
const MAX_DETAIL_LIMIT: usize = 500;
const DEFAULT_SUMMARY_LIMIT: u32 = 20;
const MAX_SUMMARY_LIMIT: u32 = 100;
/// What a feed token starts with, so a leaked one is recognisable for what it is.
pub(crate) const FEED_TOKEN_PREFIX: &str = "feed_";

const DETAIL_QUERY: &[QueryParam] = &[
    (
        "kind",
        "string",
        "Only entries of this kind: added, removed or changed (default: all, added first).",
    ),
    (
        "cursor",
        "string",
        "Where to continue: the previous page's next_cursor.",
    ),
    (
        "limit",
        "integer",
        "Entries to return, 1 to 500 (default 100).",
    ),
];
const SUMMARY_QUERY: &[QueryParam] = &[
    (
        "limit",
        "integer",
        "Summaries to return, 1 to 100 (default 20).",
    ),
    (
        "only_changed",
        "boolean",
        "Only runs where something was added, removed or changed (default false).",
    ),
];
const FEED_QUERY: &[QueryParam] = &[(
    "token",
    "string",
    "The feed token (from POST /tasks/{id}/feed-tokens); grants this feed only.",
)];

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::Json;
    vec![
        def(
            M::GET,
            "/api/v1/runs/{id}/changes",
            "getRunChanges",
            "A monitor run's change summary and a page of its added, removed and changed records",
        )
        .scope(Scope::TasksRead)
        .to(run_changes, DETAIL_QUERY, None, Json(200, "RunChangesPage")),
        def(
            M::GET,
            "/api/v1/tasks/{id}/changes",
            "listTaskChanges",
            "The task's recent change summaries, newest first",
        )
        .scope(Scope::TasksRead)
        .to(task_changes, SUMMARY_QUERY, None, Json(200, "TaskChanges")),
        def(
            M::POST,
            "/api/v1/tasks/{id}/feed-tokens",
            "createFeedToken",
            "A new Atom feed token for the task (the token and feed URL are shown once)",
        )
        .scope(Scope::TasksWrite)
        .to(create_feed_token, &[], None, Json(201, "FeedTokenCreated")),
        def(
            M::GET,
            "/api/v1/tasks/{id}/feed-tokens",
            "listFeedTokens",
            "The task's feed tokens (never their secrets)",
        )
        .scope(Scope::TasksRead)
        .to(list_feed_tokens, &[], None, Json(200, "FeedTokens")),
        def(
            M::DELETE,
            "/api/v1/tasks/{id}/feed-tokens/{token_id}",
            "revokeFeedToken",
            "Revoke a feed token: its feed URL stops working",
        )
        .scope(Scope::TasksWrite)
        .to(revoke_feed_token, &[], None, Success::Empty),
        def(
            M::GET,
            "/api/v1/tasks/{id}/changes.atom",
            "getTaskChangesFeed",
            "Atom 1.0 feed of the task's runs with changes (authenticated by a feed token)",
        )
        .to(
            crate::handlers::changes_feed::task_changes_feed,
            FEED_QUERY,
            None,
            Success::Atom,
        ),
    ]
}

pub(crate) fn schemas() -> Map<String, Value> {
    let count = json!({"type": "integer", "minimum": 0});
    let schemas = json!({
        "RunChanges": {
            "type": "object",
            "required": ["run_id", "task_id", "previous_run_id", "key_field", "previous_records", "records", "added", "removed", "changed", "unchanged", "changed_fraction", "passed_threshold", "created_at"],
            "properties": {
                "run_id": {"type": "string"},
                "task_id": {"type": "string"},
                "previous_run_id": {"type": ["string", "null"], "description": "The completed run compared with; null for a monitor's first run (every record is added, and no change alert is sent for it)."},
                "key_field": {"type": ["string", "null"], "description": "The field identifying records across runs; null: the SHA-256 of the whole record (an edited record is then one removed and one added). A record without the key field, or with null there, is keyed by its hash."},
                "previous_records": count, "records": count,
                "added": count, "removed": count, "changed": count, "unchanged": count,
                "changed_fraction": {"type": "number", "description": "(added + removed + changed) / max(previous_records, records, 1)"},
                "passed_threshold": {"type": "boolean", "description": "Whether the change reached schedule.change_threshold (any change when unset); changes.detected is sent only then."},
                "created_at": {"type": "string", "format": "date-time"}
            }
        },
        "ChangeEntry": {
            "type": "object",
            "required": ["kind", "key", "record", "previous", "fields"],
            "properties": {
                "kind": {"type": "string", "enum": ["added", "removed", "changed"]},
                "key": {"type": "string", "description": "The key: the key field's value as JSON text (\"sku-1\" with its quotes, 42), or sha256:<hex>; the n-th record with the same key (n > 1) has #n appended."},
                "record": {"type": ["object", "null"], "description": "The record in this run (null when removed)."},
                "previous": {"type": ["object", "null"], "description": "The record in the previous run (null when added)."},
                "fields": {"type": "array", "description": "For changed records: each differing top-level field as {field, old, new}; old is absent for a field the previous record lacked, new for one this record lacks.", "items": {"type": "object"}}
            }
        },
        "RunChangesPage": {
            "type": "object",
            "required": ["summary", "items", "next_cursor"],
            "properties": {
                "summary": {"$ref": "#/components/schemas/RunChanges"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/ChangeEntry"}},
                "next_cursor": {"type": ["string", "null"], "description": "Pass as cursor for the next page; null at the end."}
            }
        },
        "TaskChanges": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/RunChanges"}}}
        },
        "FeedToken": {
            "type": "object",
            "required": ["id", "task_id", "created_at", "revoked_at", "last_used_at"],
            "properties": {
                "id": {"type": "string"},
                "task_id": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "revoked_at": {"type": ["string", "null"], "format": "date-time"},
                "last_used_at": {"type": ["string", "null"], "format": "date-time"}
            }
        },
        "FeedTokenCreated": {
            "allOf": [{"$ref": "#/components/schemas/FeedToken"}, {
                "type": "object",
                "required": ["token", "feed_url"],
                "properties": {
                    "token": {"type": "string", "description": "Shown only now; only its SHA-256 is stored."},
                    "feed_url": {"type": "string", "description": "The feed's full URL with the token, for a feed reader."}
                }
            }]
        },
        "FeedTokens": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/FeedToken"}}}
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct DetailQuery {
    kind: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/runs/{id}/changes`.
pub(crate) async fn run_changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    ApiQuery(query): ApiQuery<DetailQuery>,
) -> Result<Json<Value>, ApiError> {
    let (kind, cursor, limit) = detail_query(&query)?;
    let run = find_run(&state, &caller, &run_id).await?;
    let summary = state.store.run_changes(&run).await?.ok_or_else(|| {
        ApiError::NotFound(
            "this run has no change summary: only completed runs of a task with a schedule are \
             compared with the previous run"
                .to_owned(),
        )
    })?;
    let page = read_detail(&state.results, &summary, kind, cursor, limit)
        .await
        .map_err(|error| ApiError::Internal(error.into()))?;
    Ok(Json(json!({
        "summary": summary_json(&summary),
        "items": page.items,
        "next_cursor": page.next_cursor.map(|cursor| cursor.to_string()),
    })))
}

fn detail_query(query: &DetailQuery) -> Result<(Option<ChangeKind>, u64, usize), ApiError> {
    let mut errors = Vec::new();
    let kind = match query
        .kind
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => ChangeKind::parse(text).or_else(|| {
            errors.push(ErrorDetail::new(
                "kind",
                "must be added, removed or changed",
            ));
            None
        }),
    };
    let cursor = match query
        .cursor
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => 0,
        Some(text) => text.parse().unwrap_or_else(|_| {
            errors.push(ErrorDetail::new(
                "cursor",
                "must be a next_cursor from a previous page",
            ));
            0
        }),
    };
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_DETAIL_LIMIT,
        MAX_DETAIL_LIMIT,
        &mut errors,
    );
    check(errors)?;
    Ok((kind, cursor, limit))
}

fn parse_limit(
    text: Option<&str>,
    default: usize,
    max: usize,
    errors: &mut Vec<ErrorDetail>,
) -> usize {
    match text.map(str::trim).filter(|s| !s.is_empty()) {
        None => default,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => limit,
            _ => {
                errors.push(ErrorDetail::new(
                    "limit",
                    format!("must be an integer from 1 to {max}"),
                ));
                default
            }
        },
    }
}

/// A summary as the API shows it (the storage layout fields stay inside).
pub(crate) fn summary_json(summary: &RunChanges) -> Value {
    json!({
        "run_id": summary.run_id,
        "task_id": summary.task_id,
        "previous_run_id": summary.previous_run_id,
        "key_field": summary.key_field,
        "previous_records": summary.previous_records,
        "records": summary.records,
        "added": summary.added,
        "removed": summary.removed,
        "changed": summary.changed,
        "unchanged": summary.unchanged,
        "changed_fraction": summary.changed_fraction,
        "passed_threshold": summary.passed_threshold,
        "created_at": rfc3339(summary.created_at_ms),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct SummaryQuery {
    limit: Option<String>,
    only_changed: Option<String>,
}

/// `GET /api/v1/tasks/{id}/changes`.
pub(crate) async fn task_changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = Vec::new();
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_SUMMARY_LIMIT as usize,
        MAX_SUMMARY_LIMIT as usize,
        &mut errors,
    );
    let only_changed = match query.only_changed.as_deref().map(str::trim) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            errors.push(ErrorDetail::new("only_changed", "must be true or false"));
            false
        }
    };
    check(errors)?;
    find_task(&state, &caller, &task_id).await?;
    let limit = u32::try_from(limit).unwrap_or(DEFAULT_SUMMARY_LIMIT);
    let summaries = state
        .store
        .list_task_changes(&caller.user_id, &task_id, only_changed, limit)
        .await?;
    let items: Vec<Value> = summaries.iter().map(summary_json).collect();
    Ok(Json(json!({"items": items})))
}

/// `POST /api/v1/tasks/{id}/feed-tokens`.
pub(crate) async fn create_feed_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    find_task(&state, &caller, &task_id).await?;
    let token = format!(
        "{FEED_TOKEN_PREFIX}{}",
        selextract_accounts::tokens::new_opaque_token()
    );
    let hash = selextract_accounts::tokens::hash_opaque_token(&token);
    let now = chrono::Utc::now().timestamp_millis();
    let created = state
        .store
        .create_feed_token(&caller.user_id, &task_id, &hash, now)
        .await?;
    let mut json = feed_token_json(&created);
    let feed_url = format!(
        "{}/api/v1/tasks/{task_id}/changes.atom?token={token}",
        state.config.public_base_url()
    );
    if let Some(object) = json.as_object_mut() {
        object.insert("token".to_owned(), Value::String(token));
        object.insert("feed_url".to_owned(), Value::String(feed_url));
    }
    Ok((StatusCode::CREATED, Json(json)))
}

/// `GET /api/v1/tasks/{id}/feed-tokens`.
pub(crate) async fn list_feed_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find_task(&state, &caller, &task_id).await?;
    let tokens = state
        .store
        .list_feed_tokens(&caller.user_id, &task_id)
        .await?;
    let items: Vec<Value> = tokens.iter().map(feed_token_json).collect();
    Ok(Json(json!({"items": items})))
}

/// `DELETE /api/v1/tasks/{id}/feed-tokens/{token_id}`.
pub(crate) async fn revoke_feed_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((task_id, token_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    find_task(&state, &caller, &task_id).await?;
    let now = chrono::Utc::now().timestamp_millis();
    if state
        .store
        .revoke_feed_token(&caller.user_id, &task_id, &token_id, now)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("feed token"))
    }
}

fn feed_token_json(token: &FeedToken) -> Value {
    json!({
        "id": token.id,
        "task_id": token.task_id,
        "created_at": rfc3339(token.created_at_ms),
        "revoked_at": rfc3339_opt(token.revoked_at_ms),
        "last_used_at": rfc3339_opt(token.last_used_at_ms),
    })
}
