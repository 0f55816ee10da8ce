//! Account recovery and confirmation by e-mail: password reset (request and confirm),
//! e-mail verification (request and confirm) and administrators' invitations, plus the
//! steps the server-rendered pages of `recovery_pages.rs` share with the JSON routes.
//!
//! Tokens are the accounts crate's opaque tokens (32 random bytes, base64url); the store
//! keeps only their SHA-256 and spends each once. A reset request answers the same 202
//! whether or not the address has an account, and does the same work before answering
//! (the lookup); the token and the message are made on a background task, so neither the
//! SMTP server's speed nor its failures show in the answer.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use selextract_accounts::password::{check_new_password, hash_password};
use selextract_accounts::tokens::{hash_opaque_token, is_opaque_token, new_opaque_token};
use selextract_accounts::{Email, EmailError};
use selextract_mail::{MailError, messages};
use selextract_store::{AccountToken, AccountTokenPurpose as Purpose, NewAccountToken, User};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::admin::require_admin;
use crate::audit::{self, ClientIp, Event};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiJson, ErrorDetail};
use crate::handlers::account::refuse_registered_email;
use crate::handlers::login::run_blocking;
use crate::routes::{Route, Success, def};
use crate::state::AppState;
use crate::time::{now_ms, rfc3339};

/// How long a password-reset link works (the issue: 1 h).
pub(crate) const RESET_TTL: Duration = Duration::from_secs(3600);
/// How long a verification link works.
pub(crate) const VERIFY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an invitation works.
pub(crate) const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// At most one reset or verification message per account in this time, so the routes
/// cannot be used to flood somebody's mailbox.
pub(crate) const MAIL_COOLDOWN: Duration = Duration::from_secs(60);

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::{Empty, Json};
    let mut routes =
        vec![
        def(
            M::POST,
            "/api/v1/auth/password-reset",
            "requestPasswordReset",
            "E-mail a password-reset link (always 202, whether or not the address has an account)",
        )
        .to(request_password_reset, &[], Some("PasswordResetRequest"), Json(202, "MailAccepted")),
        def(
            M::POST,
            "/api/v1/auth/password-reset/confirm",
            "confirmPasswordReset",
            "Set a new password with a reset link's token; ends every session and token family",
        )
        .to(confirm_password_reset, &[], Some("PasswordResetConfirm"), Empty),
        def(
            M::POST,
            "/api/v1/auth/verify-email/request",
            "requestEmailVerification",
            "E-mail a link that confirms the caller's address",
        )
        .scope(Scope::TasksRead)
        .to(request_email_verification, &[], None, Json(202, "MailAccepted")),
        def(
            M::POST,
            "/api/v1/auth/verify-email/confirm",
            "confirmEmailVerification",
            "Confirm an address with a verification link's token",
        )
        .to(confirm_email_verification, &[], Some("TokenBody"), Empty),
        def(
            M::POST,
            "/api/v1/admin/invitations",
            "createInvitation",
            "Invite an address to sign up (administrators; the link works 7 days)",
        )
        .scope(Scope::TasksWrite)
        .to(create_invitation, &[], Some("InvitationRequest"), Json(201, "Invitation")),
    ];
    routes.extend(crate::handlers::recovery_pages::routes());
    routes
}

pub(crate) fn schemas() -> Map<String, Value> {
    let schemas = json!({
        "PasswordResetRequest": {
            "type": "object",
            "required": ["email"],
            "properties": {"email": {"type": "string"}}
        },
        "PasswordResetConfirm": {
            "type": "object",
            "required": ["token", "new_password"],
            "properties": {
                "token": {"type": "string", "description": "The token of the e-mailed link."},
                "new_password": {"type": "string", "description": "10 characters to 1024 bytes."}
            }
        },
        "TokenBody": {
            "type": "object",
            "required": ["token"],
            "properties": {"token": {"type": "string"}}
        },
        "InvitationRequest": {
            "type": "object",
            "required": ["email"],
            "properties": {"email": {"type": "string"}}
        },
        "MailAccepted": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "description": "`accepted` (a message goes out if there is anything to send) or `already_verified`."}
            }
        },
        "Invitation": {
            "type": "object",
            "required": ["email", "expires_at"],
            "properties": {
                "email": {"type": "string"},
                "expires_at": {"type": "string", "format": "date-time"}
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailBody {
    email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetConfirmBody {
    token: String,
    new_password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    token: String,
}

/// `POST /auth/password-reset`: 202 whatever the address; a link goes out only to an
/// enabled account, at most once a minute.
async fn request_password_reset(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let email = parse_email(&body.email)?;
    let user = state.store.find_user_by_email(email.as_str()).await?;
    tokio::spawn(send_reset_link(state, user, email, ip));
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "accepted"}))))
}

/// The background half of a reset request: nothing it does reaches the client.
async fn send_reset_link(state: AppState, user: Option<User>, email: Email, ip: ClientIp) {
    let Some(user) = user.filter(|user| !user.disabled) else {
        tracing::info!("password reset requested for an address without an enabled account");
        return;
    };
    if !state.mailer.is_configured() {
        tracing::warn!(
            user_id = %user.id,
            "password reset requested, but e-mail is not configured (set smtp.host)"
        );
        return;
    }
    match recently_mailed(&state, &user.id, Purpose::PasswordReset).await {
        Ok(false) => {}
        Ok(true) => {
            tracing::info!(user_id = %user.id, "password reset requested again within a minute; not sent");
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "could not check the password-reset cooldown");
            return;
        }
    }
    let sent = issue_and_mail(&state, &user, &email, Purpose::PasswordReset).await;
    if let Err(error) = sent {
        tracing::warn!(user_id = %user.id, error = %error, "could not send a password-reset link");
        return;
    }
    let event = Event::by_user(&user.id, "password_reset_requested", json!({}));
    audit::record(&state, &ip, event).await;
}

/// Whether a message of `purpose` went to this account within [`MAIL_COOLDOWN`].
async fn recently_mailed(
    state: &AppState,
    user_id: &str,
    purpose: Purpose,
) -> Result<bool, ApiError> {
    let latest = state
        .store
        .latest_account_token_at(user_id, purpose)
        .await?;
    Ok(latest.is_some_and(|at| now_ms().saturating_sub(at) < duration_ms(MAIL_COOLDOWN)))
}

/// Stores a new token of `purpose` for `user` and e-mails its link.
async fn issue_and_mail(
    state: &AppState,
    user: &User,
    email: &Email,
    purpose: Purpose,
) -> Result<(), ApiError> {
    let (ttl, path) = match purpose {
        Purpose::VerifyEmail => (VERIFY_TTL, "/account/verify-email"),
        _ => (RESET_TTL, "/account/reset-password"),
    };
    let token = issue_token(state, purpose, Some(&user.id), email.as_str(), None, ttl).await?;
    let link = state.config.link(path, &token);
    let message = match purpose {
        Purpose::VerifyEmail => messages::verify_email(&link, "24 hours"),
        _ => messages::password_reset(&link, "1 hour"),
    };
    state.mailer.send(email, &message).await.map_err(mail_error)
}

/// Makes and stores a token; returns the token itself (only its hash is stored).
pub(crate) async fn issue_token(
    state: &AppState,
    purpose: Purpose,
    user_id: Option<&str>,
    email: &str,
    created_by: Option<&str>,
    ttl: Duration,
) -> Result<String, ApiError> {
    let token = new_opaque_token();
    let hash = hash_opaque_token(&token);
    state
        .store
        .create_account_token(&NewAccountToken {
            token_hash: &hash,
            purpose,
            user_id,
            email,
            created_by,
            expires_at_ms: now_ms().saturating_add(duration_ms(ttl)),
        })
        .await?;
    Ok(token)
}

/// `POST /auth/password-reset/confirm`.
async fn confirm_password_reset(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<ResetConfirmBody>,
) -> Result<StatusCode, ApiError> {
    reset_password_with_token(&state, &body.token, &body.new_password, &ip).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a new password with a reset (or admin setup) token: checks the token is live
/// before the costly hash, spends it, stores the hash, ends every session and refresh
/// family of the account, withdraws its other reset links and records `password_reset`.
/// Shared by the JSON route and the HTML form.
pub(crate) async fn reset_password_with_token(
    state: &AppState,
    token: &str,
    new_password: &str,
    ip: &ClientIp,
) -> Result<User, ApiError> {
    let hash = token_hash(token)?;
    check_new_password(new_password).map_err(|error| {
        ApiError::Validation(vec![ErrorDetail::new("new_password", error.to_string())])
    })?;
    // A cheap look before argon2, so that made-up tokens cost a hash lookup, not a hashing.
    let live = state.store.find_live_account_token(&hash, now_ms()).await?;
    if !live.is_some_and(|t| matches!(t.purpose, Purpose::PasswordReset | Purpose::AdminSetup)) {
        return Err(invalid_link());
    }
    let cost = state.config.auth.password.clone();
    let password = new_password.to_owned();
    let password_hash = run_blocking(move || hash_password(&cost, &password))
        .await?
        .map_err(|error| {
            ApiError::Validation(vec![ErrorDetail::new("new_password", error.to_string())])
        })?;
    let spent = spend_reset_token(state, &hash)
        .await?
        .ok_or_else(invalid_link)?;
    let user_id = spent.user_id.as_deref().ok_or_else(invalid_link)?;
    let user = state
        .store
        .find_user_by_id(user_id)
        .await?
        .ok_or_else(invalid_link)?;
    state
        .store
        .set_user_password_hash(&user.id, Some(&password_hash))
        .await?;
    end_every_login(state, &user.id).await?;
    state
        .store
        .withdraw_account_tokens(&user.id, Purpose::PasswordReset)
        .await?;
    if spent.purpose == Purpose::PasswordReset {
        // The link came to this address, so its owner has just proved they read it.
        state
            .store
            .set_email_verified(&user.id, &spent.email, now_ms())
            .await?;
    }
    let details = json!({"via": spent.purpose.as_str()});
    audit::record(
        state,
        ip,
        Event::by_user(&user.id, "password_reset", details),
    )
    .await;
    Ok(user)
}

/// A reset link or the first administrator's setup link (both open the same page).
async fn spend_reset_token(state: &AppState, hash: &str) -> Result<Option<AccountToken>, ApiError> {
    let now = now_ms();
    if let Some(token) = state
        .store
        .consume_account_token(Purpose::PasswordReset, hash, now)
        .await?
    {
        return Ok(Some(token));
    }
    Ok(state
        .store
        .consume_account_token(Purpose::AdminSetup, hash, now)
        .await?)
}

/// Ends every dashboard session and revokes every refresh family of the account (which
/// bumps the credential revision, so access tokens stop on every process too).
async fn end_every_login(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    state.store.end_user_sessions(user_id, None).await?;
    state
        .store
        .revoke_user_refresh_families(user_id, None)
        .await?;
    Ok(())
}

/// `POST /auth/verify-email/request`: mails the caller a verification link.
async fn request_email_verification(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = state
        .store
        .find_user_by_id(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let standing = state.store.account_standing(&user.id).await?;
    if standing.is_some_and(|s| s.email_verified_at_ms.is_some()) {
        return Ok((StatusCode::OK, Json(json!({"status": "already_verified"}))));
    }
    if !state.mailer.is_configured() {
        return Err(ApiError::MailNotConfigured);
    }
    if recently_mailed(&state, &user.id, Purpose::VerifyEmail).await? {
        return Err(ApiError::RateLimited {
            retry_after_secs: MAIL_COOLDOWN.as_secs(),
        });
    }
    // The stored address was normalised on write; one that no longer parses (an account
    // from before the accounts crate) cannot be mailed.
    let email = Email::parse(&user.email).map_err(|_| {
        ApiError::InvalidRequest("this account's e-mail address cannot receive mail".to_owned())
    })?;
    issue_and_mail(&state, &user, &email, Purpose::VerifyEmail).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "accepted"}))))
}

/// `POST /auth/verify-email/confirm`.
async fn confirm_email_verification(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<StatusCode, ApiError> {
    verify_email_with_token(&state, &body.token, &ip).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Spends a verification token and marks the address verified (if the account still has
/// the address the link was sent to). Shared by the JSON route and the HTML page.
pub(crate) async fn verify_email_with_token(
    state: &AppState,
    token: &str,
    ip: &ClientIp,
) -> Result<(), ApiError> {
    let hash = token_hash(token)?;
    let spent = state
        .store
        .consume_account_token(Purpose::VerifyEmail, &hash, now_ms())
        .await?
        .ok_or_else(invalid_link)?;
    let user_id = spent.user_id.as_deref().ok_or_else(invalid_link)?;
    if !state
        .store
        .set_email_verified(user_id, &spent.email, now_ms())
        .await?
    {
        return Err(ApiError::TokenInvalid(
            "this link was sent to an address the account no longer has".to_owned(),
        ));
    }
    let details = json!({"email": spent.email});
    audit::record(
        state,
        ip,
        Event::by_user(user_id, "email_verified", details),
    )
    .await;
    Ok(())
}

/// `POST /admin/invitations`: an administrator invites an address.
async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&caller)?;
    let email = parse_email(&body.email)?;
    if !state.mailer.is_configured() {
        return Err(ApiError::MailNotConfigured);
    }
    refuse_registered_email(&state, email.as_str()).await?;
    let token = issue_token(
        &state,
        Purpose::Invitation,
        None,
        email.as_str(),
        Some(&caller.user_id),
        INVITATION_TTL,
    )
    .await?;
    let link = state.config.link("/account/accept-invitation", &token);
    state
        .mailer
        .send(&email, &messages::invitation(&link, "7 days"))
        .await
        .map_err(mail_error)?;
    let event = Event {
        user_id: None,
        actor: Some(&caller.user_id),
        event: "invitation_created",
        details: json!({"email": email.as_str()}),
    };
    audit::record(&state, &ip, event).await;
    let expires_at = rfc3339(now_ms().saturating_add(duration_ms(INVITATION_TTL)));
    Ok((
        StatusCode::CREATED,
        Json(json!({"email": email.as_str(), "expires_at": expires_at})),
    ))
}

/// For the signup route under `signup = "invite_only"` (and the invitation page): spends
/// the invitation `token` if it was sent to `email` and is live. Refused with the same
/// `signup_closed` answer whatever is wrong, so a guessed token learns nothing.
pub(crate) async fn spend_invitation(
    state: &AppState,
    token: &str,
    email: &Email,
) -> Result<AccountToken, ApiError> {
    let refused =
        || ApiError::SignupClosed("the invitation is invalid, used or expired".to_owned());
    if !is_opaque_token(token) {
        return Err(refused());
    }
    state
        .store
        .consume_invitation(&hash_opaque_token(token), email.as_str(), now_ms())
        .await?
        .ok_or_else(refused)
}

/// The stored hash of a presented token; anything not shaped like one of ours (empty,
/// huge, other alphabets) is refused before hashing.
pub(crate) fn token_hash(token: &str) -> Result<String, ApiError> {
    if is_opaque_token(token) {
        Ok(hash_opaque_token(token))
    } else {
        Err(invalid_link())
    }
}

pub(crate) fn invalid_link() -> ApiError {
    ApiError::TokenInvalid("the link is invalid, used or expired".to_owned())
}

fn parse_email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|error: EmailError| {
        ApiError::Validation(vec![ErrorDetail::new("email", error.to_string())])
    })
}

fn mail_error(error: MailError) -> ApiError {
    match error {
        MailError::NotConfigured => ApiError::MailNotConfigured,
        other => ApiError::Unavailable(format!("the mail server: {other}")),
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
