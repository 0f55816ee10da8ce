//! The login-in-progress cookie of an OpenID Connect sign-in: state, nonce, PKCE verifier,
//! provider and return path between the redirect to the provider and its redirect back.
//!
//! The cookie is signed with the installation's key (purpose `oidc`), so any API process of
//! the installation can check it (the callback may reach another process than the start)
//! and nobody can forge or alter one; it names its provider and ends after ten minutes.
//! HttpOnly (scripts never see the verifier), SameSite=Lax (the provider's redirect back is
//! a top-level navigation, which Lax cookies accompany), and scoped to the OIDC routes.

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use selextract_accounts::oidc::PendingLogin;
use serde::{Deserialize, Serialize};

use crate::auth::session::{cookie_value, wants_secure_cookies};
use crate::error::ApiError;
use crate::keys::constant_time_eq;
use crate::state::AppState;
use crate::time::now_ms;

pub(crate) const OIDC_COOKIE: &str = "selextract_oidc";
const COOKIE_PATH: &str = "/api/v1/auth/oidc";
const SIGNING_PURPOSE: &str = "oidc";
/// How long a sign-in may take at the provider.
pub(crate) const LIFETIME_SECS: u64 = 600;
/// A cookie longer than this is not ours (ours is a few hundred bytes).
const MAX_COOKIE_LEN: usize = 4096;

/// What the cookie carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoginInProgress {
    pub provider: String,
    #[serde(flatten)]
    pub pending: PendingLogin,
    /// Where to go after the login: a same-origin path, checked when it was taken.
    pub return_to: String,
    pub expires_at_ms: i64,
}

/// The `Set-Cookie` value that starts a login.
pub(crate) async fn issue(
    state: &AppState,
    login: &LoginInProgress,
    headers: &HeaderMap,
) -> Result<HeaderValue, ApiError> {
    let json = serde_json::to_vec(login).map_err(ApiError::internal)?;
    let signed = state
        .signing()
        .await?
        .sign(SIGNING_PURPOSE, &URL_SAFE_NO_PAD.encode(json));
    cookie_header(state, &signed, LIFETIME_SECS, headers)
}

/// The `Set-Cookie` value that removes the cookie (every callback answer carries it: a
/// login in progress is used once, whatever the outcome).
pub(crate) fn clear(state: &AppState, headers: &HeaderMap) -> Option<HeaderValue> {
    cookie_header(state, "", 0, headers).ok()
}

/// Why a callback's cookie was not accepted (all answer `oidc_state_invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieProblem {
    Missing,
    Forged,
    Expired,
    OtherProvider,
    StateMismatch,
}

impl CookieProblem {
    pub(crate) fn message(self) -> &'static str {
        match self {
            CookieProblem::Missing => {
                "no sign-in is in progress in this browser (cookies blocked, or it took over 10 minutes); start again"
            }
            CookieProblem::Forged => "the sign-in cookie is not valid; start again",
            CookieProblem::Expired => "the sign-in took over 10 minutes; start again",
            CookieProblem::OtherProvider => {
                "the sign-in in progress is with another provider; start again"
            }
            CookieProblem::StateMismatch => {
                "the provider's answer does not belong to the sign-in in progress; start again"
            }
        }
    }
}

/// The login in progress the request's cookie carries, if it is genuine, current, for
/// `provider`, and its state is `state` (compared in constant time).
pub(crate) async fn verify(
    state: &AppState,
    headers: &HeaderMap,
    provider: &str,
    returned_state: &str,
) -> Result<Result<LoginInProgress, CookieProblem>, ApiError> {
    let Some(value) = cookie_value(headers, OIDC_COOKIE).filter(|value| !value.is_empty()) else {
        return Ok(Err(CookieProblem::Missing));
    };
    if value.len() > MAX_COOKIE_LEN {
        return Ok(Err(CookieProblem::Forged));
    }
    let signing = state.signing().await?;
    let login = signing
        .verify(SIGNING_PURPOSE, value)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|json| serde_json::from_slice::<LoginInProgress>(&json).ok());
    let Some(login) = login else {
        return Ok(Err(CookieProblem::Forged));
    };
    Ok(if login.expires_at_ms <= now_ms() {
        Err(CookieProblem::Expired)
    } else if login.provider != provider {
        Err(CookieProblem::OtherProvider)
    } else if !constant_time_eq(login.pending.state.as_bytes(), returned_state.as_bytes()) {
        Err(CookieProblem::StateMismatch)
    } else {
        Ok(login)
    })
}

fn cookie_header(
    state: &AppState,
    value: &str,
    max_age_secs: u64,
    headers: &HeaderMap,
) -> Result<HeaderValue, ApiError> {
    let mut text = format!(
        "{OIDC_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax"
    );
    if wants_secure_cookies(state, headers) {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).map_err(ApiError::internal)
}
