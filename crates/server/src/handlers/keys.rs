//! `/api/v1/api-keys`: list, create (the full key is shown once), revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use selextract_store::NewApiKey;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{self, ClientIp, Event};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorDetail};
use crate::handlers::runs::PageQuery;
use crate::keys::generate_api_key;
use crate::state::AppState;
use crate::time::{now_ms, parse_rfc3339, rfc3339_opt};
use crate::views::{ListEnvelope, api_key_json};

const MAX_NAME_CHARS: usize = 100;

pub(crate) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ListEnvelope>, ApiError> {
    let page = query.page()?;
    let keys = state.store.list_api_keys(&caller.user_id).await?;
    let total = u64::try_from(keys.len()).unwrap_or(u64::MAX);
    let start =
        usize::try_from(u64::from(page.page - 1) * u64::from(page.page_size)).unwrap_or(usize::MAX);
    let items = keys
        .iter()
        .skip(start)
        .take(page.page_size as usize)
        .map(api_key_json)
        .collect();
    Ok(Json(ListEnvelope::new(items, total, page)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyBody {
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

pub(crate) async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (scopes, requested_expiry_ms) = validate_new_key(&body)?;
    // A key may hand out only what it holds, so a narrow key cannot mint a broader one…
    if let Some(missing) = scopes.iter().find(|scope| !caller.scopes.contains(**scope)) {
        return Err(ApiError::InsufficientScope(missing.as_str()));
    }
    // …nor one that outlives it: a leaked short-lived key must not buy itself a permanent
    // successor.
    let expires_at_ms = earliest_expiry(requested_expiry_ms, caller.key_expires_at_ms);
    let (full_key, public_id, secret_hash) = generate_api_key();
    let new = NewApiKey {
        user_id: caller.user_id.clone(),
        public_id,
        secret_hash,
        name: body.name.trim().to_owned(),
        scopes: scopes
            .iter()
            .map(|scope| scope.as_str().to_owned())
            .collect(),
        expires_at_ms,
    };
    let key = state.store.insert_api_key(new).await?;
    // The key's id, name and scopes identify it; the key itself is never recorded.
    let details = json!({
        "key_id": key.id,
        "name": key.name,
        "scopes": key.scopes,
        "expires_at": rfc3339_opt(key.expires_at_ms),
    });
    let event = Event::by_user(&caller.user_id, "api_key_created", details);
    audit::record(&state, &ip, event).await;
    let mut json = api_key_json(&key);
    if let Some(object) = json.as_object_mut() {
        object.insert("key".to_owned(), Value::String(full_key));
    }
    Ok((StatusCode::CREATED, Json(json)))
}

/// The earlier of two optional expiry times, `None` meaning never.
fn earliest_expiry(requested: Option<i64>, callers: Option<i64>) -> Option<i64> {
    match (requested, callers) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (one, None) | (None, one) => one,
    }
}

fn validate_new_key(body: &CreateKeyBody) -> Result<(Vec<Scope>, Option<i64>), ApiError> {
    let mut errors = Vec::new();
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        errors.push(ErrorDetail::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if body.scopes.is_empty() {
        errors.push(ErrorDetail::new("scopes", "must name at least one scope"));
    }
    let mut scopes = Vec::new();
    for (index, name) in body.scopes.iter().enumerate() {
        match Scope::parse(name) {
            Some(scope) if !scopes.contains(&scope) => scopes.push(scope),
            Some(_) => {}
            None => errors.push(ErrorDetail::new(
                format!("scopes[{index}]"),
                "unknown scope; expected tasks:read, tasks:write, results:read, keys:write or billing:read",
            )),
        }
    }
    let expires_at_ms = match body.expires_at.as_deref() {
        None => None,
        Some(text) => match parse_rfc3339(text) {
            Some(ms) if ms > now_ms() => Some(ms),
            Some(_) => {
                errors.push(ErrorDetail::new("expires_at", "must be in the future"));
                None
            }
            None => {
                errors.push(ErrorDetail::new(
                    "expires_at",
                    "must be an RFC 3339 timestamp",
                ));
                None
            }
        },
    };
    if errors.is_empty() {
        Ok((scopes, expires_at_ms))
    } else {
        Err(ApiError::Validation(errors))
    }
}

pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Revoking is idempotent; only the first revocation is an event worth recording.
    let already_revoked = state
        .store
        .list_api_keys(&caller.user_id)
        .await?
        .iter()
        .any(|key| key.id == key_id && key.revoked_at_ms.is_some());
    if !state.store.revoke_api_key(&caller.user_id, &key_id).await? {
        return Err(ApiError::not_found("API key"));
    }
    state.keys.evict_key(&key_id);
    if !already_revoked {
        let event = Event::by_user(
            &caller.user_id,
            "api_key_revoked",
            json!({"key_id": key_id}),
        );
        audit::record(&state, &ip, event).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
