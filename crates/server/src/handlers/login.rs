//! Proving who you are with a password: `POST /auth/login` (a dashboard session) and
//! `POST /auth/token` (a JWT access token and a rotating refresh token), plus the password
//! check both share, with lockout and equal cost for unknown e-mails.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use selextract_accounts::password::{
    PasswordError, hash_password, needs_rehash, verify_dummy_password, verify_password,
};
use selextract_accounts::tokens::{
    hash_opaque_token, is_opaque_token, issue_access_token, new_opaque_token,
};
use selextract_accounts::{AuthConfig, Email};
use selextract_store::{AccountStanding, RefreshRotation, User};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::ClientIp;
use crate::auth::jwt::JWT_PURPOSE;
use crate::auth::session::start_session;
use crate::error::{ApiError, ApiJson};
use crate::handlers::account::{account_json, audit};
use crate::state::AppState;
use crate::time::now_ms;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    email: String,
    password: String,
}

/// `POST /auth/login`: checks the password and starts a session (cookies).
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let (user, standing) = check_login(&state, &body.email, &body.password, &ip).await?;
    let cookies = start_session(&state, &user, &headers).await?;
    audit(
        &state,
        Some(&user.id),
        "login",
        &ip,
        json!({"method": "password"}),
    )
    .await;
    crate::metrics::user_logged_in("password");
    Ok((
        StatusCode::OK,
        cookies,
        Json(account_json(&user, &standing)),
    )
        .into_response())
}

/// Checks an e-mail and password: the user and their standing, or why not. An unknown
/// e-mail (or an account without a password) costs one dummy verification, so the answer's
/// timing does not tell which e-mails are registered; both answer `invalid_credentials`.
pub(crate) async fn check_login(
    state: &AppState,
    email: &str,
    password: &str,
    ip: &ClientIp,
) -> Result<(User, AccountStanding), ApiError> {
    let config = &state.config.auth;
    let user = match Email::parse(email) {
        Ok(email) => state.store.find_user_by_email(email.as_str()).await?,
        Err(_) => None,
    };
    let Some((user, phc)) = user.and_then(|user| {
        let phc = user.password_hash.clone()?;
        Some((user, phc))
    }) else {
        let cost = config.password.clone();
        let password = password.to_owned();
        run_blocking(move || verify_dummy_password(&cost, &password)).await?;
        // A wrong password for a real account also runs the failure-count statement; run it
        // here too (it matches no row), so the two answers cost the same round trips.
        state.store.record_failed_login("", |_| None).await?;
        audit(
            state,
            None,
            "login_failed",
            ip,
            json!({"reason": "unknown_email"}),
        )
        .await;
        return Err(ApiError::InvalidCredentials);
    };
    let standing = state
        .store
        .account_standing(&user.id)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    refuse_if_locked(state, &user, &standing, ip).await?;
    if !password_matches(password, &phc).await? {
        return Err(record_failure(state, &user, ip).await);
    }
    if user.disabled {
        return Err(ApiError::Forbidden("this account is disabled".to_owned()));
    }
    if config.require_verified_email && standing.email_verified_at_ms.is_none() {
        return Err(ApiError::EmailNotVerified);
    }
    rehash_if_needed(state, &user, password, &phc).await;
    state.store.record_successful_login(&user.id).await?;
    Ok((user, standing))
}

/// A locked account refuses even the right password until the lock ends.
pub(crate) async fn refuse_if_locked(
    state: &AppState,
    user: &User,
    standing: &AccountStanding,
    ip: &ClientIp,
) -> Result<(), ApiError> {
    let now = now_ms();
    match standing.locked_until_ms {
        Some(until) if until > now => {
            audit(state, Some(&user.id), "login_locked", ip, json!({})).await;
            Err(locked_error(until, now))
        }
        _ => Ok(()),
    }
}

fn locked_error(until_ms: i64, now_ms: i64) -> ApiError {
    let wait_ms = u64::try_from(until_ms.saturating_sub(now_ms)).unwrap_or(0);
    ApiError::AccountLocked {
        retry_after_secs: wait_ms.div_ceil(1000).max(1),
    }
}

/// Counts a failed password and answers with the error to send: `account_locked` when this
/// failure locked the account, `invalid_credentials` otherwise.
pub(crate) async fn record_failure(state: &AppState, user: &User, ip: &ClientIp) -> ApiError {
    let lockout = state.config.auth.lockout.clone();
    let locked = state
        .store
        .record_failed_login(&user.id, |failures| lockout.lock_for_ms(failures))
        .await;
    audit(
        state,
        Some(&user.id),
        "login_failed",
        ip,
        json!({"reason": "wrong_password"}),
    )
    .await;
    match locked {
        Ok(Some(until)) => locked_error(until, now_ms()),
        Ok(None) => ApiError::InvalidCredentials,
        Err(error) => error.into(),
    }
}

/// Verifies on a blocking thread (argon2 takes tens of milliseconds of CPU by design).
pub(crate) async fn password_matches(password: &str, phc: &str) -> Result<bool, ApiError> {
    let password = password.to_owned();
    let phc = phc.to_owned();
    match run_blocking(move || verify_password(&password, &phc)).await? {
        Ok(matches) => Ok(matches),
        // No stored password is that long, so it is simply wrong.
        Err(PasswordError::TooLong) => Ok(false),
        Err(error) => {
            tracing::warn!(%error, "a stored password hash could not be read");
            Ok(false)
        }
    }
}

/// Stores a fresh hash after a successful login when the configured cost changed. A failure
/// is logged, not the login's failure.
async fn rehash_if_needed(state: &AppState, user: &User, password: &str, phc: &str) {
    let cost = state.config.auth.password.clone();
    if !needs_rehash(&cost, phc).unwrap_or(false) {
        return;
    }
    let password = password.to_owned();
    let hashed = run_blocking(move || hash_password(&cost, &password)).await;
    match hashed {
        Ok(Ok(hash)) => {
            if let Err(error) = state
                .store
                .set_user_password_hash(&user.id, Some(&hash))
                .await
            {
                tracing::warn!(%error, "could not store the rehashed password");
            }
        }
        // A password set before the current rules (shorter, say) keeps its old hash.
        Ok(Err(error)) => tracing::info!(%error, "password not rehashed"),
        Err(error) => tracing::warn!(%error, "password rehash failed"),
    }
}

pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)
}

#[derive(Debug, Deserialize)]
#[serde(tag = "grant_type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum TokenBody {
    Password { email: String, password: String },
    RefreshToken { refresh_token: String },
}

/// `POST /auth/token`: a password or a refresh token for a new access token and a new
/// refresh token. A refresh token is spent by its use; presenting a spent one again revokes
/// its whole family (someone else has a copy).
pub(crate) async fn issue_token(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Json<Value>, ApiError> {
    let ttl_ms = seconds_to_ms(state.config.auth.tokens.refresh_ttl_seconds);
    let refresh_token = new_opaque_token();
    let refresh_hash = hash_opaque_token(&refresh_token);
    let expires_at = now_ms().saturating_add(ttl_ms);
    let (user_id, family_id) = match body {
        TokenBody::Password { email, password } => {
            let (user, _) = check_login(&state, &email, &password, &ip).await?;
            let family_id = uuid::Uuid::new_v4().to_string();
            state
                .store
                .insert_refresh_token(&user.id, &family_id, &refresh_hash, expires_at)
                .await?;
            audit(
                &state,
                Some(&user.id),
                "login",
                &ip,
                json!({"method": "token"}),
            )
            .await;
            crate::metrics::user_logged_in("password");
            (user.id, family_id)
        }
        TokenBody::RefreshToken {
            refresh_token: presented,
        } => {
            let (user_id, family_id) =
                rotate(&state, &presented, &refresh_hash, expires_at, &ip).await?;
            crate::metrics::user_logged_in("refresh");
            (user_id, family_id)
        }
    };
    let access_token = access_token_for(&state, &user_id, &family_id).await?;
    Ok(Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.config.auth.tokens.access_ttl_seconds,
        "refresh_token": refresh_token,
    })))
}

async fn rotate(
    state: &AppState,
    presented: &str,
    new_hash: &str,
    expires_at: i64,
    ip: &ClientIp,
) -> Result<(String, String), ApiError> {
    let invalid = || {
        ApiError::TokenInvalid("the refresh token is invalid, spent, revoked or expired".to_owned())
    };
    if !is_opaque_token(presented) {
        return Err(invalid());
    }
    match state
        .store
        .rotate_refresh_token(&hash_opaque_token(presented), new_hash, expires_at)
        .await?
    {
        RefreshRotation::Rotated { user_id, family_id } => {
            let user = state
                .store
                .find_user_by_id(&user_id)
                .await?
                .ok_or_else(invalid)?;
            if user.disabled {
                return Err(ApiError::Unauthorized(
                    "this account is disabled".to_owned(),
                ));
            }
            Ok((user_id, family_id))
        }
        RefreshRotation::Reused { user_id, family_id } => {
            audit(
                state,
                Some(&user_id),
                "refresh_reuse_detected",
                ip,
                json!({"family_id": family_id}),
            )
            .await;
            Err(invalid())
        }
        RefreshRotation::Invalid => Err(invalid()),
    }
}

async fn access_token_for(
    state: &AppState,
    user_id: &str,
    family_id: &str,
) -> Result<String, ApiError> {
    let key = state.signing().await?.key(JWT_PURPOSE);
    let config: &AuthConfig = &state.config.auth;
    let ttl = i64::try_from(config.tokens.access_ttl_seconds).unwrap_or(i64::MAX);
    issue_access_token(&key, user_id, family_id, now_ms() / 1000, ttl).map_err(ApiError::internal)
}

pub(crate) fn seconds_to_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}
