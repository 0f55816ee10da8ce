//! `/api/v1/auth/…`: signing up, the account's profile (`/auth/me`), logging out, deleting
//! the account, and the route table and schemas of the whole room (the password checks
//! and tokens are in `login.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use selextract_accounts::password::{check_new_password, hash_password};
use selextract_accounts::{Email, SignupPolicy};
use selextract_store::{AccountStanding, NewOidcIdentity, NewUser, StoreError, User};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{ClientIp, Event};
use crate::auth::session::{clear_session_cookies, start_session};
use crate::auth::{Caller, Credential};
use crate::error::{ApiError, ApiJson, ErrorDetail, OptionalJson};
use crate::handlers::billing::this_month;
use crate::handlers::login::{password_matches, record_failure, refuse_if_locked, run_blocking};
use crate::state::AppState;
use crate::time::{rfc3339, rfc3339_opt};

const MAX_DISPLAY_NAME_CHARS: usize = 100;

#[path = "account_routes.rs"]
mod routes;
pub(crate) use routes::{routes, schemas};

/// The account as its owner sees it. Never the password hash.
pub(crate) fn account_json(user: &User, standing: &AccountStanding) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "display_name": standing.display_name,
        "plan": user.plan,
        "is_admin": user.is_admin,
        "email_verified": standing.email_verified_at_ms.is_some(),
        "created_at": rfc3339(user.created_at_ms),
        "last_login_at": rfc3339_opt(standing.last_login_at_ms),
    })
}

/// Records a security event about `user_id` caused by its owner (or, for `None`, by an
/// unknown caller such as a login for an unregistered e-mail); a failure is logged, never
/// returned (see [`crate::audit::record`]).
pub(crate) async fn audit(
    state: &AppState,
    user_id: Option<&str>,
    event: &str,
    ip: &ClientIp,
    details: Value,
) {
    let event = Event {
        user_id,
        actor: user_id,
        event,
        details,
    };
    crate::audit::record(state, ip, event).await;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignupBody {
    email: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    invite_token: Option<String>,
}

/// `POST /auth/signup`: under the `[auth] signup` policy, creates a user on the default plan
/// and starts a session.
async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    ApiJson(body): ApiJson<SignupBody>,
) -> Result<Response, ApiError> {
    if state.config.auth.signup == SignupPolicy::Closed {
        return Err(ApiError::SignupClosed(
            "sign-up is closed on this installation; ask an administrator".to_owned(),
        ));
    }
    let (email, display_name) = validate_signup(&body)?;
    if state.config.auth.signup == SignupPolicy::InviteOnly {
        // Spent only by the address it was sent to; refused alike whatever is wrong.
        let token = body.invite_token.as_deref().unwrap_or_default();
        crate::handlers::recovery::spend_invitation(&state, token, &email).await?;
    }
    let user = create_account(&state, &email, &body.password).await?;
    if let Some(name) = display_name.as_deref() {
        state.store.set_display_name(&user.id, Some(name)).await?;
    }
    let standing = state
        .store
        .account_standing(&user.id)
        .await?
        .ok_or_else(|| ApiError::internal("the new user vanished"))?;
    let cookies = start_session(&state, &user, &headers).await?;
    audit(&state, Some(&user.id), "signup", &ip, json!({})).await;
    crate::metrics::user_registered();
    Ok((
        StatusCode::CREATED,
        cookies,
        Json(account_json(&user, &standing)),
    )
        .into_response())
}

fn validate_signup(body: &SignupBody) -> Result<(Email, Option<String>), ApiError> {
    let mut errors = Vec::new();
    let email = match Email::parse(&body.email) {
        Ok(email) => Some(email),
        Err(error) => {
            errors.push(ErrorDetail::new("email", error.to_string()));
            None
        }
    };
    if let Err(error) = check_new_password(&body.password) {
        errors.push(ErrorDetail::new("password", error.to_string()));
    }
    let display_name = match validate_display_name(body.display_name.as_deref()) {
        Ok(name) => name,
        Err(detail) => {
            errors.push(detail);
            None
        }
    };
    match email {
        Some(email) if errors.is_empty() => Ok((email, display_name)),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// A display name: trimmed, at most 100 characters, no control characters; empty is none.
pub(crate) fn validate_display_name(name: Option<&str>) -> Result<Option<String>, ErrorDetail> {
    let Some(name) = name.map(str::trim).filter(|name| !name.is_empty()) else {
        return Ok(None);
    };
    if name.len() > MAX_DISPLAY_NAME_CHARS * 4 || name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(ErrorDetail::new(
            "display_name",
            format!("at most {MAX_DISPLAY_NAME_CHARS} characters"),
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || selextract_accounts::email::is_invisible(c))
    {
        return Err(ErrorDetail::new(
            "display_name",
            "may not contain control or invisible characters",
        ));
    }
    Ok(Some(name.to_owned()))
}

/// Creates the user on the default plan with its first month's compute units.
async fn create_account(state: &AppState, email: &Email, password: &str) -> Result<User, ApiError> {
    let cost = state.config.auth.password.clone();
    let password = password.to_owned();
    let hash = run_blocking(move || hash_password(&cost, &password))
        .await?
        .map_err(|error| {
            ApiError::Validation(vec![ErrorDetail::new("password", error.to_string())])
        })?;
    create_default_account(state, email.as_str(), NewAccount::Password(hash)).await
}

/// `EmailTaken` when an account holds `email` already: checked before work a conflict at
/// creation would waste (an invitation sent or spent, an OpenID sign-up).
pub(crate) async fn refuse_registered_email(state: &AppState, email: &str) -> Result<(), ApiError> {
    match state.store.find_user_by_email(email).await? {
        Some(_) => Err(ApiError::EmailTaken),
        None => Ok(()),
    }
}

/// How a new account signs in: its password's argon2id hash (the invitation page hashes
/// before it spends the invitation), or the OpenID identity it is
/// created with (and the provider's display name, if usable).
pub(crate) enum NewAccount<'a> {
    Password(String),
    Oidc {
        identity: &'a NewOidcIdentity,
        display_name: Option<&'a str>,
    },
}

/// Creates a user on the default plan (with its concurrency cap) and grants its first
/// month's compute units: every sign-up, with a password or an OpenID provider, goes
/// through here. An address in use is `EmailTaken`.
pub(crate) async fn create_default_account(
    state: &AppState,
    email: &str,
    account: NewAccount<'_>,
) -> Result<User, ApiError> {
    let plans = &state.config.plans;
    let (_, plan) = plans.plan_for(&plans.default_plan);
    let mut new = NewUser {
        email: email.to_owned(),
        password_hash: None,
        is_admin: false,
        plan: plans.default_plan.clone(),
        max_concurrent_runs: plan.max_concurrent_runs,
    };
    let created = match account {
        NewAccount::Password(hash) => {
            new.password_hash = Some(hash);
            state.store.create_user(new).await
        }
        NewAccount::Oidc {
            identity,
            display_name,
        } => {
            state
                .store
                .create_user_with_oidc_identity(new, display_name, identity)
                .await
        }
    };
    let user = match created {
        Ok(user) => user,
        Err(StoreError::Conflict(_)) => return Err(ApiError::EmailTaken),
        Err(error) => return Err(error.into()),
    };
    grant_this_month(state, &user.id, &user.plan).await?;
    Ok(user)
}

/// This month's compute units of `plan`, once per user and month (a new account, an
/// administrator's plan change, as `selextract user set-plan` grants them): the idempotency
/// key is the monthly grant job's (`selextract_store::monthly_grant_key`), so a user who had
/// this month's grant keeps it and nobody gets two.
pub(crate) async fn grant_this_month(
    state: &AppState,
    user_id: &str,
    plan: &str,
) -> Result<(), ApiError> {
    state
        .store
        .grant_monthly_compute_units(&state.config.plans, user_id, plan, &this_month())
        .await?;
    Ok(())
}

async fn get_me(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let (user, standing) = load_account(&state, &caller.user_id).await?;
    Ok(Json(account_json(&user, &standing)))
}

async fn load_account(
    state: &AppState,
    user_id: &str,
) -> Result<(User, AccountStanding), ApiError> {
    let user = state
        .store
        .find_user_by_id(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let standing = state
        .store
        .account_standing(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok((user, standing))
}

/// Account-level changes are the person's, never a program's key.
fn require_human(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_human() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this change needs a login session or access token, not an API key".to_owned(),
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    current_password: Option<String>,
    #[serde(default)]
    new_password: Option<String>,
}

/// `PUT /auth/me`: display name; e-mail and password only with the current password. A new
/// password ends every other session and token family of the account.
async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    require_human(&caller)?;
    let display_name = validate_display_name(body.display_name.as_deref())
        .map_err(|detail| ApiError::Validation(vec![detail]))?;
    let email = body
        .email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|error| {
            ApiError::Validation(vec![ErrorDetail::new("email", error.to_string())])
        })?;
    if let Some(password) = body.new_password.as_deref() {
        check_new_password(password).map_err(|error| {
            ApiError::Validation(vec![ErrorDetail::new("new_password", error.to_string())])
        })?;
    }
    let (user, _) = load_account(&state, &caller.user_id).await?;
    if email.is_some() || body.new_password.is_some() {
        confirm_password(&state, &user, body.current_password.as_deref(), &ip).await?;
    }
    if body.display_name.is_some() {
        state
            .store
            .set_display_name(&user.id, display_name.as_deref())
            .await?;
    }
    if let Some(email) = &email
        && email.as_str() != user.email
    {
        match state.store.set_user_email(&user.id, email.as_str()).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Err(ApiError::EmailTaken),
            Err(error) => return Err(error.into()),
        }
        audit(&state, Some(&user.id), "email_changed", &ip, json!({})).await;
    }
    if let Some(password) = body.new_password {
        change_password(&state, &caller, &password, &ip).await?;
    }
    let (user, standing) = load_account(&state, &caller.user_id).await?;
    Ok(Json(account_json(&user, &standing)))
}

/// The current password, checked like a login (lockout included), for changes that could
/// take the account over.
async fn confirm_password(
    state: &AppState,
    user: &User,
    password: Option<&str>,
    ip: &ClientIp,
) -> Result<(), ApiError> {
    let Some(password) = password else {
        return Err(ApiError::Validation(vec![ErrorDetail::new(
            "current_password",
            "is required to change the e-mail address or the password",
        )]));
    };
    let standing = state
        .store
        .account_standing(&user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    refuse_if_locked(state, user, &standing, ip).await?;
    let matches = match user.password_hash.as_deref() {
        Some(phc) => password_matches(password, phc).await?,
        None => false,
    };
    if !matches {
        return Err(match record_failure(state, user, ip).await {
            ApiError::InvalidCredentials => {
                ApiError::Forbidden("the current password is wrong".to_owned())
            }
            other => other,
        });
    }
    Ok(())
}

async fn change_password(
    state: &AppState,
    caller: &Caller,
    password: &str,
    ip: &ClientIp,
) -> Result<(), ApiError> {
    let cost = state.config.auth.password.clone();
    let password = password.to_owned();
    let hash = run_blocking(move || hash_password(&cost, &password))
        .await?
        .map_err(|error| {
            ApiError::Validation(vec![ErrorDetail::new("new_password", error.to_string())])
        })?;
    state
        .store
        .set_user_password_hash(&caller.user_id, Some(&hash))
        .await?;
    let (this_session, this_family) = match &caller.credential {
        Credential::Session { session_id } => (Some(session_id.as_str()), None),
        Credential::Jwt { family_id } => (None, Some(family_id.as_str())),
        Credential::ApiKey { .. } => (None, None),
    };
    state
        .store
        .end_user_sessions(&caller.user_id, this_session)
        .await?;
    state
        .store
        .revoke_user_refresh_families(&caller.user_id, this_family)
        .await?;
    audit(
        state,
        Some(&caller.user_id),
        "password_changed",
        ip,
        json!({}),
    )
    .await;
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutBody {
    #[serde(default)]
    everywhere: bool,
}

/// `POST /auth/logout`: ends this session (or this token family); with `everywhere`, every
/// session and token family of the account. The cookies are cleared either way.
async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ip: ClientIp,
    OptionalJson(body): OptionalJson<LogoutBody>,
) -> Result<Response, ApiError> {
    let everywhere = body.unwrap_or_default().everywhere;
    let user_id = caller.user_id.as_str();
    if everywhere {
        state.store.end_user_sessions(user_id, None).await?;
        state
            .store
            .revoke_user_refresh_families(user_id, None)
            .await?;
        audit(&state, Some(user_id), "logout_everywhere", &ip, json!({})).await;
    } else {
        match &caller.credential {
            Credential::Session { session_id } => {
                state.store.end_session(user_id, session_id).await?;
            }
            Credential::Jwt { family_id } => {
                state
                    .store
                    .revoke_refresh_family(user_id, family_id)
                    .await?;
            }
            Credential::ApiKey { .. } => {
                return Err(ApiError::Forbidden(
                    "an API key is not a login; revoke it with DELETE /api/v1/api-keys/{id}"
                        .to_owned(),
                ));
            }
        }
        audit(&state, Some(user_id), "logout", &ip, json!({})).await;
    }
    let cookies = clear_session_cookies(&state, &headers);
    Ok((StatusCode::NO_CONTENT, cookies).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeletionBody {
    password: String,
}

/// `DELETE /auth/account`: with a session or JWT and the password, deletes the account and
/// all its data for real (the ledger stays, anonymised).
async fn delete_account(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ip: ClientIp,
    ApiJson(body): ApiJson<DeletionBody>,
) -> Result<Response, ApiError> {
    require_human(&caller)?;
    let (user, _) = load_account(&state, &caller.user_id).await?;
    confirm_password(&state, &user, Some(&body.password), &ip).await?;
    let report = crate::deletion::delete_account(&state, &user.id).await?;
    // `delete_account` recorded `account_deleted` under the anonymous id: an entry under
    // the real id here would name the account the deletion just anonymised.
    tracing::info!(?report, "account deleted");
    let cookies = clear_session_cookies(&state, &headers);
    Ok((StatusCode::NO_CONTENT, cookies).into_response())
}
