//! `/api/v1/admin/users`: administrators list accounts, read one, and change its plan,
//! administrator flag or disabled flag. Like the other admin routes, everyone else gets
//! `403 forbidden` (the routes are in the public document; a 404 would hide nothing).
//!
//! Every change goes through the store methods the CLI uses, so the same guard keeps the
//! last enabled administrator (no one can disable or demote them, themselves included) and
//! every change that takes something away bumps the credential revision: a disabled
//! user's keys, sessions and tokens are refused by every API process within
//! `server.credential_check_interval` (and by this one at once). Each change is written to
//! the audit log as `admin_user_changed`, with the acting administrator and what changed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use selextract_store::{GuardedChange, User, UserFilter};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::admin::require_admin;
use crate::audit::{self, ClientIp, Event};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorDetail};
use crate::handlers::account::grant_this_month;
use crate::routes::{QueryParam, Route, Success, def};
use crate::state::AppState;
use crate::time::rfc3339;
use crate::views::{ListEnvelope, check, parse_page};

/// Longer filter text cannot match an e-mail (RFC 5321 caps a path at 254 characters).
const MAX_EMAIL_FILTER_CHARS: usize = 254;

const USER_FILTERS: &[QueryParam] = &[
    ("page", "integer", "Page number, from 1 (default 1)."),
    (
        "page_size",
        "integer",
        "Items per page, 1 to 100 (default 20).",
    ),
    (
        "email_contains",
        "string",
        "Only users whose e-mail contains this text (case-insensitive).",
    ),
    ("plan", "string", "Only users on this plan."),
    ("disabled", "boolean", "true or false."),
    ("is_admin", "boolean", "true or false."),
];

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::Json;
    vec![
        def(
            M::GET,
            "/api/v1/admin/users",
            "listUsers",
            "List users, oldest first, with filters (admin only)",
        )
        .scope(Scope::TasksRead)
        .to(list_users, USER_FILTERS, None, Json(200, "AdminUserList")),
        def(
            M::GET,
            "/api/v1/admin/users/{id}",
            "getUser",
            "A user (admin only)",
        )
        .scope(Scope::TasksRead)
        .to(get_user, &[], None, Json(200, "AdminUser")),
        // A change needs a key that may change things: a read-only key of an administrator
        // only reads.
        def(
            M::PUT,
            "/api/v1/admin/users/{id}",
            "updateUser",
            "Change a user's plan, administrator flag or disabled flag (admin only; never \
             the last enabled administrator's)",
        )
        .scope(Scope::TasksWrite)
        .to(
            update_user,
            &[],
            Some("AdminUserUpdate"),
            Json(200, "AdminUser"),
        ),
    ]
}

pub(crate) fn schemas() -> Map<String, Value> {
    let user = json!({
        "type": "object",
        "required": ["id", "email", "plan", "is_admin", "disabled", "max_concurrent_runs", "has_password", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "email": {"type": "string"},
            "plan": {"type": "string"},
            "is_admin": {"type": "boolean"},
            "disabled": {"type": "boolean"},
            "max_concurrent_runs": {"type": "integer"},
            "has_password": {"type": "boolean", "description": "Whether the user can log in with a password (the hash is never returned)."},
            "created_at": {"type": "string", "format": "date-time"}
        }
    });
    let schemas = json!({
        "AdminUser": user,
        "AdminUserList": {
            "type": "object",
            "required": ["items", "total_count", "page", "page_size", "total_pages", "has_next", "has_prev"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/AdminUser"}},
                "total_count": {"type": "integer"},
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
                "total_pages": {"type": "integer"},
                "has_next": {"type": "boolean"},
                "has_prev": {"type": "boolean"}
            }
        },
        "AdminUserUpdate": {
            "type": "object",
            "additionalProperties": false,
            "minProperties": 1,
            "description": "Any of the fields; the others stay. Disabling or demoting the last enabled administrator is refused with 409 conflict.",
            "properties": {
                "plan": {"type": "string", "description": "A configured plan's name."},
                "is_admin": {"type": "boolean"},
                "disabled": {"type": "boolean", "description": "A disabled user's keys, sessions and tokens stop working, and their queued runs are not started."}
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserListQuery {
    page: Option<String>,
    page_size: Option<String>,
    email_contains: Option<String>,
    plan: Option<String>,
    disabled: Option<String>,
    is_admin: Option<String>,
}

/// `GET /api/v1/admin/users`.
pub(crate) async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<UserListQuery>,
) -> Result<Json<ListEnvelope>, ApiError> {
    require_admin(&caller)?;
    let mut errors = Vec::new();
    let page = parse_page(
        query.page.as_deref(),
        query.page_size.as_deref(),
        &mut errors,
    );
    let email_contains = query.email_contains.map(|text| text.trim().to_owned());
    if email_contains
        .as_deref()
        .is_some_and(|text| text.chars().count() > MAX_EMAIL_FILTER_CHARS)
    {
        errors.push(ErrorDetail::new(
            "email_contains",
            format!("must be at most {MAX_EMAIL_FILTER_CHARS} characters"),
        ));
    }
    let filter = UserFilter {
        email_contains,
        plan: query.plan.filter(|plan| !plan.is_empty()),
        disabled: parse_flag("disabled", query.disabled.as_deref(), &mut errors),
        is_admin: parse_flag("is_admin", query.is_admin.as_deref(), &mut errors),
    };
    check(errors)?;
    let users = state.store.list_users_page(&filter, page).await?;
    let items = users.items.iter().map(admin_user_json).collect();
    Ok(Json(ListEnvelope::new(items, users.total_count, page)))
}

/// `true` or `false` (absent or empty: no filter); anything else is an error naming `name`.
fn parse_flag(name: &str, text: Option<&str>, errors: &mut Vec<ErrorDetail>) -> Option<bool> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            errors.push(ErrorDetail::new(name, "must be true or false"));
            None
        }
    }
}

/// `GET /api/v1/admin/users/{id}`.
pub(crate) async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let user = find_user(&state, &user_id).await?;
    Ok(Json(admin_user_json(&user)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserUpdate {
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    is_admin: Option<bool>,
    #[serde(default)]
    disabled: Option<bool>,
}

/// `PUT /api/v1/admin/users/{id}`: validates the whole body, then applies the changes that
/// can be refused (demote, disable) before the ones that cannot, so a refused change leaves
/// the user as it was.
pub(crate) async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    Path(user_id): Path<String>,
    ApiJson(update): ApiJson<UserUpdate>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let plan = validate_update(&state, &update)?;
    let before = find_user(&state, &user_id).await?;
    apply_guarded_changes(&state, &before, &update).await?;
    apply_other_changes(&state, &before, &update, plan).await?;
    let after = find_user(&state, &user_id).await?;
    let changes = changed_fields(&before, &after);
    if !changes.is_empty() {
        // The store bumped the credential revision; make this process see it at once.
        state.keys.recheck_credentials_now();
        let details = json!({"email": after.email, "changes": changes});
        let event = Event {
            user_id: Some(&after.id),
            actor: Some(&caller.user_id),
            event: "admin_user_changed",
            details,
        };
        audit::record(&state, &ip, event).await;
    }
    Ok(Json(admin_user_json(&after)))
}

/// The plan to move to (name and concurrency cap), after checking every field.
fn validate_update(
    state: &AppState,
    update: &UserUpdate,
) -> Result<Option<(String, u32)>, ApiError> {
    let mut errors = Vec::new();
    if update.plan.is_none() && update.is_admin.is_none() && update.disabled.is_none() {
        errors.push(ErrorDetail::new(
            "body",
            "name at least one of plan, is_admin, disabled",
        ));
    }
    let plans = &state.config.plans;
    let plan = match update.plan.as_deref() {
        None => None,
        // The cap comes from `plan_for`, as the CLI's `user set-plan` takes it: with billing
        // off every user runs under the default plan's limits.
        Some(name) if plans.plans.contains_key(name) => {
            Some((name.to_owned(), plans.plan_for(name).1.max_concurrent_runs))
        }
        Some(_) => {
            let known: Vec<&str> = plans.plans.keys().map(String::as_str).collect();
            errors.push(ErrorDetail::new(
                "plan",
                format!("unknown plan; configured plans: {}", known.join(", ")),
            ));
            None
        }
    };
    check(errors)?;
    Ok(plan)
}

/// Demoting and disabling, each refused for the last enabled administrator. Demoting comes
/// first: once demoted, the user cannot be the last administrator, so the disable that
/// follows cannot be refused after the demotion was made.
async fn apply_guarded_changes(
    state: &AppState,
    before: &User,
    update: &UserUpdate,
) -> Result<(), ApiError> {
    if update.is_admin == Some(false) && before.is_admin {
        let change = state.store.set_user_admin(&before.id, false).await?;
        expect_changed(change, "demote")?;
    }
    if update.disabled == Some(true) && !before.disabled {
        let change = state
            .store
            .disable_user_unless_last_admin(&before.id)
            .await?;
        expect_changed(change, "disable")?;
    }
    Ok(())
}

fn expect_changed(change: GuardedChange, verb: &str) -> Result<(), ApiError> {
    match change {
        GuardedChange::Changed => Ok(()),
        GuardedChange::NoSuchUser => Err(ApiError::not_found("user")),
        GuardedChange::LastEnabledAdmin => Err(ApiError::Conflict(format!(
            "refusing to {verb} the last enabled administrator; promote another user first"
        ))),
    }
}

async fn apply_other_changes(
    state: &AppState,
    before: &User,
    update: &UserUpdate,
    plan: Option<(String, u32)>,
) -> Result<(), ApiError> {
    let store = &state.store;
    if update.disabled == Some(false) && before.disabled {
        store.set_user_disabled(&before.id, false).await?;
    }
    if update.is_admin == Some(true) && !before.is_admin {
        expect_changed(store.set_user_admin(&before.id, true).await?, "promote")?;
    }
    if let Some((name, max_concurrent_runs)) = plan
        && name != before.plan
    {
        if !store
            .set_user_plan(&before.id, &name, max_concurrent_runs)
            .await?
        {
            return Err(ApiError::not_found("user"));
        }
        grant_this_month(state, &before.id, &name).await?;
    }
    Ok(())
}

/// `{"field": {"from": …, "to": …}}` for each field that differs.
fn changed_fields(before: &User, after: &User) -> Map<String, Value> {
    let mut changes = Map::new();
    if before.plan != after.plan {
        changes.insert(
            "plan".to_owned(),
            json!({"from": before.plan, "to": after.plan}),
        );
    }
    if before.is_admin != after.is_admin {
        changes.insert(
            "is_admin".to_owned(),
            json!({"from": before.is_admin, "to": after.is_admin}),
        );
    }
    if before.disabled != after.disabled {
        changes.insert(
            "disabled".to_owned(),
            json!({"from": before.disabled, "to": after.disabled}),
        );
    }
    changes
}

/// The user `user_id`, or 404 `not_found` naming a user.
pub(crate) async fn find_user(state: &AppState, user_id: &str) -> Result<User, ApiError> {
    state
        .store
        .find_user_by_id(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

fn admin_user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "plan": user.plan,
        "is_admin": user.is_admin,
        "disabled": user.disabled,
        "max_concurrent_runs": user.max_concurrent_runs,
        "has_password": user.password_hash.is_some(),
        "created_at": rfc3339(user.created_at_ms),
    })
}
