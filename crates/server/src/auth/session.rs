//! Dashboard sessions: the `selextract_session` cookie (HttpOnly, SameSite=Lax, Secure over
//! TLS) holding a random secret whose SHA-256 is the `sessions` row's key, and the
//! double-submit CSRF token every state-changing cookie request must echo.
//!
//! A session is read from the store on every request (no cache), so a logout, "log out
//! everywhere", a password change or a disabled account ends it at once on every process.
//! It ends by itself after `auth.session.idle_timeout_seconds` without use (use is written
//! at most once a minute) or `absolute_timeout_seconds` after login.
//!
//! The CSRF token is `Signing::sign("csrf", session id)`: it names the session row (never
//! its secret, since the CSRF cookie is readable by scripts) and only the server can make
//! it. Another site can make a browser send the session cookie, but it can neither read the
//! CSRF cookie nor set the `X-CSRF-Token` header, so a forged request is refused.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use selextract_accounts::SecureCookie;
use selextract_accounts::tokens::{hash_opaque_token, is_opaque_token, new_opaque_token};
use selextract_store::{NewSession, Session, User};

use super::{AuthContext, Credential, ScopeSet};
use crate::error::ApiError;
use crate::keys::constant_time_eq;
use crate::state::AppState;
use crate::time::now_ms;

pub(crate) const SESSION_COOKIE: &str = "selextract_session";
pub(crate) const CSRF_COOKIE: &str = "selextract_csrf";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// `last_seen_at` is written at most this often per session (or a quarter of the idle
/// timeout, when that is shorter, so that use always keeps a session alive).
const TOUCH_INTERVAL_MS: i64 = 60_000;
/// The signing purpose of CSRF tokens.
const CSRF_PURPOSE: &str = "csrf";

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The session secret the request carries, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

fn invalid_session() -> ApiError {
    ApiError::Unauthorized("the session has ended or is invalid; log in again".to_owned())
}

/// Whether `session` may still be used at `now`.
fn is_live(state: &AppState, session: &Session, now: i64) -> bool {
    let idle_ms = seconds_to_ms(state.config.auth.session.idle_timeout_seconds);
    session.revoked_at_ms.is_none()
        && session.expires_at_ms > now
        && session.last_seen_at_ms.saturating_add(idle_ms) > now
}

fn seconds_to_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Resolves a session cookie to its user, from the store.
pub(crate) async fn authenticate_session(
    state: &AppState,
    token: &str,
) -> Result<Arc<AuthContext>, ApiError> {
    // A value not shaped like our ids (a megabyte of cookie, say) is refused before it is
    // hashed or looked up.
    if !is_opaque_token(token) {
        return Err(invalid_session());
    }
    let session = state
        .store
        .find_session_by_token_hash(&hash_opaque_token(token))
        .await?
        .ok_or_else(invalid_session)?;
    let now = now_ms();
    if !is_live(state, &session, now) {
        return Err(invalid_session());
    }
    let user = state
        .store
        .find_user_by_id(&session.user_id)
        .await?
        .ok_or_else(invalid_session)?;
    if user.disabled {
        return Err(ApiError::Unauthorized(
            "this account is disabled".to_owned(),
        ));
    }
    let idle_ms = seconds_to_ms(state.config.auth.session.idle_timeout_seconds);
    if now.saturating_sub(session.last_seen_at_ms) >= TOUCH_INTERVAL_MS.min(idle_ms / 4)
        && let Err(error) = state.store.touch_session(&session.id, now).await
    {
        // Bookkeeping only: the request itself must not fail for it.
        tracing::warn!(%error, "could not record session use");
    }
    Ok(Arc::new(AuthContext {
        user_id: user.id,
        credential: Credential::Session {
            session_id: session.id,
        },
        scopes: ScopeSet::all(),
        is_admin: user.is_admin,
        plan: user.plan,
        key_expires_at_ms: None,
    }))
}

/// The CSRF token of a session: what the `selextract_csrf` cookie holds and the
/// `X-CSRF-Token` header must repeat.
pub(crate) async fn csrf_token(state: &AppState, session_id: &str) -> Result<String, ApiError> {
    Ok(state.signing().await?.sign(CSRF_PURPOSE, session_id))
}

/// Refuses a state-changing cookie request whose `X-CSRF-Token` is not the session's token.
pub(crate) async fn check_csrf(
    state: &AppState,
    context: &AuthContext,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let Credential::Session { session_id } = &context.credential else {
        return Ok(());
    };
    let presented = headers
        .get(HeaderName::from_static(CSRF_HEADER))
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .ok_or(ApiError::CsrfFailed)?;
    let expected = csrf_token(state, session_id).await?;
    if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::CsrfFailed)
    }
}

/// Starts a session for `user` (after a login, a signup or an OpenID callback) and returns
/// the `Set-Cookie` headers to add to the response: the session cookie and the CSRF cookie.
pub(crate) async fn start_session(
    state: &AppState,
    user: &User,
    headers: &HeaderMap,
) -> Result<HeaderMap, ApiError> {
    let config = &state.config.auth.session;
    let token = new_opaque_token();
    let token_hash = hash_opaque_token(&token);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|agent| agent.chars().take(256).collect::<String>());
    let session = state
        .store
        .create_session(&NewSession {
            token_hash: &token_hash,
            user_id: &user.id,
            expires_at_ms: now_ms().saturating_add(seconds_to_ms(config.absolute_timeout_seconds)),
            ip: None,
            user_agent: user_agent.as_deref(),
        })
        .await?;
    let csrf = csrf_token(state, &session.id).await?;
    let max_age = config.absolute_timeout_seconds;
    let secure = wants_secure_cookies(state, headers);
    let mut cookies = HeaderMap::new();
    cookies.append(
        header::SET_COOKIE,
        cookie_header(SESSION_COOKIE, &token, max_age, true, secure)?,
    );
    cookies.append(
        header::SET_COOKIE,
        cookie_header(CSRF_COOKIE, &csrf, max_age, false, secure)?,
    );
    Ok(cookies)
}

/// `Set-Cookie` headers that make the browser forget both cookies (after a logout).
pub(crate) fn clear_session_cookies(state: &AppState, headers: &HeaderMap) -> HeaderMap {
    let secure = wants_secure_cookies(state, headers);
    let mut cookies = HeaderMap::new();
    for (name, http_only) in [(SESSION_COOKIE, true), (CSRF_COOKIE, false)] {
        if let Ok(value) = cookie_header(name, "", 0, http_only, secure) {
            cookies.append(header::SET_COOKIE, value);
        }
    }
    cookies
}

fn cookie_header(
    name: &str,
    value: &str,
    max_age_secs: u64,
    http_only: bool,
    secure: bool,
) -> Result<HeaderValue, ApiError> {
    let mut text = format!("{name}={value}; Path=/; Max-Age={max_age_secs}; SameSite=Lax");
    if http_only {
        text.push_str("; HttpOnly");
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).map_err(ApiError::internal)
}

/// Whether our cookies (the session's, the CSRF token's, an OpenID login in progress) get
/// `Secure`. `auto` follows how people reach the installation: a
/// `server.public_url` starting with `https://`, or a request a TLS-terminating proxy marks
/// with `X-Forwarded-Proto: https` (or `Forwarded: proto=https`) — the API itself speaks
/// plain HTTP. Trusting that header from anyone is safe here: it can only make a cookie
/// more restricted, never less.
pub(crate) fn wants_secure_cookies(state: &AppState, headers: &HeaderMap) -> bool {
    match state.config.auth.session.secure_cookie {
        SecureCookie::Always => true,
        SecureCookie::Never => false,
        SecureCookie::Auto => {
            let forwarded_proto = headers
                .get("x-forwarded-proto")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
            let forwarded = headers
                .get("forwarded")
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| {
                    value
                        .split([';', ','])
                        .any(|part| part.trim().eq_ignore_ascii_case("proto=https"))
                });
            let public_https = state
                .config
                .public_url
                .trim()
                .to_ascii_lowercase()
                .starts_with("https://");
            public_https || forwarded_proto || forwarded
        }
    }
}
