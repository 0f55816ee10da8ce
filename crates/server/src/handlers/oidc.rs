//! `/api/v1/auth/oidc/…`: signing in with an OpenID provider (Google, or any issuer of
//! `[auth.oidc.<name>]`).
//!
//! `GET /auth/oidc/{provider}` redirects the browser to the provider with a fresh state,
//! nonce and PKCE challenge, kept in a signed cookie (`cookie.rs`) rather than in this
//! process, so the provider's redirect back may reach any API process. The callback checks
//! that cookie and the state, exchanges the code (with the PKCE verifier) and verifies the
//! ID token (the accounts crate), then finds the account:
//! 1. the one this provider account is linked to;
//! 2. else the account with the same e-mail address, linked now — only when the provider
//!    says the address is verified (`email_verified: true`);
//! 3. else a new account, when the signup policy is `open` (`invite_only` and `closed`
//!    refuse: an invitation cannot travel through a provider). An address the provider
//!    does not vouch for that belongs to an existing account is refused (`email_taken`),
//!    never linked.
//!
//! It then starts a dashboard session and redirects to the path the login started from.
//! No token or code appears in a URL this server produces or in its logs.

mod account;
mod cookie;
mod failure;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use selextract_accounts::oidc::{OidcClient, OidcError, OidcProviders};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use self::account::{find_or_create_account, sign_in};
use self::cookie::{CookieProblem, LoginInProgress};
use self::failure::{OidcFailure, wants_html};
use crate::audit::ClientIp;
use crate::error::{ApiError, ApiQuery};
use crate::routes::{QueryParam, Route, Success, def};
use crate::state::AppState;
use crate::time::now_ms;

/// Longest accepted return path.
const MAX_RETURN_TO: usize = 512;

const START_QUERY: &[QueryParam] = &[(
    "return_to",
    "string",
    "Where to go after signing in: a path on this site (default `/`).",
)];
const CALLBACK_QUERY: &[QueryParam] = &[
    (
        "code",
        "string",
        "The authorization code (from the provider).",
    ),
    ("state", "string", "The state sent to the provider."),
    (
        "iss",
        "string",
        "The provider's issuer (RFC 9207), checked when present.",
    ),
    (
        "error",
        "string",
        "The provider's refusal, e.g. access_denied.",
    ),
];

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::{Json, Redirect};
    vec![
        def(
            M::GET,
            "/api/v1/auth/oidc",
            "listOidcProviders",
            "OpenID providers this installation signs in with",
        )
        .to(list_providers, &[], None, Json(200, "OidcProviderList")),
        def(
            M::GET,
            "/api/v1/auth/oidc/{provider}",
            "startOidcLogin",
            "Sign in with an OpenID provider: redirects to it",
        )
        .to(
            start_login,
            START_QUERY,
            None,
            Redirect("To the provider's authorization endpoint, with the sign-in cookie set."),
        ),
        def(
            M::GET,
            "/api/v1/auth/oidc/{provider}/callback",
            "finishOidcLogin",
            "Where the provider sends the browser back: signs in and redirects",
        )
        .to(
            callback,
            CALLBACK_QUERY,
            None,
            Redirect("To the return path (default `/`), with the session cookies set."),
        ),
    ]
}

pub(crate) fn schemas() -> Map<String, Value> {
    let schemas = json!({
        "OidcProviderList": {
            "type": "object",
            "required": ["providers"],
            "properties": {
                "providers": {"type": "array", "items": {
                    "type": "object",
                    "required": ["name", "display_name", "login_url"],
                    "properties": {
                        "name": {"type": "string"},
                        "display_name": {"type": "string"},
                        "login_url": {"type": "string", "description": "Open in the browser (top-level navigation) to sign in."}
                    }
                }}
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `GET /auth/oidc`: the login page's buttons.
async fn list_providers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let providers = oidc_providers(&state).await?;
    let list: Vec<Value> = providers
        .iter()
        .map(|client| {
            json!({
                "name": client.name(),
                "display_name": client.display_name(),
                "login_url": format!("/api/v1/auth/oidc/{}", client.name()),
            })
        })
        .collect();
    Ok(Json(json!({ "providers": list })))
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    #[serde(default)]
    return_to: Option<String>,
}

/// `GET /auth/oidc/{provider}`: to the provider, with the login in progress in a cookie.
async fn start_login(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StartQuery>,
) -> Result<Response, OidcFailure> {
    let html = wants_html(&headers);
    let fail = |error: ApiError| OidcFailure::new(error, None, html);
    let client = provider_client(&state, &provider).await.map_err(fail)?;
    let start = client
        .begin_login()
        .await
        .map_err(|error| fail(provider_error(&provider, error)))?;
    let login = LoginInProgress {
        provider: provider.clone(),
        pending: start.pending,
        return_to: safe_return_path(query.return_to.as_deref()),
        expires_at_ms: now_ms().saturating_add(cookie_lifetime_ms()),
    };
    let cookie = cookie::issue(&state, &login, &headers)
        .await
        .map_err(fail)?;
    let location = HeaderValue::from_str(start.authorize_url.as_str())
        .map_err(|e| fail(ApiError::internal(e)))?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET /auth/oidc/{provider}/callback`: the provider's answer → a session.
async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    ip: ClientIp,
    ApiQuery(query): ApiQuery<CallbackQuery>,
) -> Result<Response, OidcFailure> {
    let html = wants_html(&headers);
    let clear = cookie::clear(&state, &headers);
    let fail = |error: ApiError| OidcFailure::new(error, clear.clone(), html);
    let client = provider_client(&state, &provider).await.map_err(fail)?;
    if let Some(error) = &query.error {
        return Err(fail(ApiError::OidcRefused(format!(
            "{} refused the sign-in ({})",
            client.display_name(),
            printable(error)
        ))));
    }
    let login = check_login_in_progress(&state, &headers, &provider, &query)
        .await
        .map_err(fail)?;
    check_issuer(&client, query.iss.as_deref()).map_err(fail)?;
    let code = query
        .code
        .as_deref()
        .filter(|code| !code.is_empty())
        .ok_or_else(|| {
            fail(ApiError::OidcRefused(
                "the provider sent no code".to_owned(),
            ))
        })?;
    let identity = client
        .finish_login(code, &login.pending)
        .await
        .map_err(|error| fail(provider_error(&provider, error)))?;
    let user = find_or_create_account(&state, &client, &identity, &ip)
        .await
        .map_err(fail)?;
    let cookies = sign_in(&state, &user, &headers, &ip, &provider)
        .await
        .map_err(fail)?;
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        cookies,
    )
        .into_response();
    let location =
        HeaderValue::from_str(&login.return_to).unwrap_or_else(|_| HeaderValue::from_static("/"));
    response.headers_mut().insert(header::LOCATION, location);
    if let Some(clear) = clear {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    Ok(response)
}

/// The cookie's login in progress, for this provider and the returned state.
async fn check_login_in_progress(
    state: &AppState,
    headers: &HeaderMap,
    provider: &str,
    query: &CallbackQuery,
) -> Result<LoginInProgress, ApiError> {
    let returned_state = query.state.as_deref().unwrap_or_default();
    match cookie::verify(state, headers, provider, returned_state).await? {
        Ok(login) if !returned_state.is_empty() => Ok(login),
        Ok(_) => Err(ApiError::OidcStateInvalid(
            CookieProblem::StateMismatch.message().to_owned(),
        )),
        Err(problem) => {
            tracing::info!(?problem, provider, "OpenID callback refused");
            Err(ApiError::OidcStateInvalid(problem.message().to_owned()))
        }
    }
}

/// RFC 9207: a provider that names itself in the redirect must be the one we asked (a
/// defence against mix-ups between providers).
fn check_issuer(client: &OidcClient, iss: Option<&str>) -> Result<(), ApiError> {
    match iss {
        Some(iss) if iss != client.issuer() => Err(ApiError::OidcRefused(
            "the answer came from another issuer than this provider's".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// The configured providers, built once per process on first use.
async fn oidc_providers(state: &AppState) -> Result<Arc<OidcProviders>, ApiError> {
    state
        .oidc
        .get_or_try_init(|| async {
            OidcProviders::new(&state.config.auth.oidc, &state.config.public_base_url())
                .map(Arc::new)
        })
        .await
        .cloned()
        .map_err(ApiError::internal)
}

async fn provider_client(state: &AppState, name: &str) -> Result<Arc<OidcClient>, ApiError> {
    oidc_providers(state)
        .await?
        .get(name)
        .ok_or_else(|| ApiError::not_found("OpenID provider"))
}

/// The provider's failures as API errors; the cause goes to the log only.
fn provider_error(provider: &str, error: OidcError) -> ApiError {
    tracing::warn!(provider, error = %error, "OpenID sign-in failed");
    match error {
        OidcError::Unavailable(_) => ApiError::OidcUnavailable(
            "the identity provider could not be reached or answered wrongly; try again later"
                .to_owned(),
        ),
        OidcError::Refused(code) => ApiError::OidcRefused(format!(
            "the identity provider refused the sign-in ({}); start again",
            printable(&code)
        )),
        OidcError::Invalid(_) => ApiError::OidcRefused(
            "the identity provider's answer failed verification; start again".to_owned(),
        ),
        OidcError::Config(error) => ApiError::internal(error),
    }
}

/// A same-origin path to go back to, or `/`: an absolute URL, a scheme-relative `//host`
/// or `/\host`, control characters or an oversized value would make this an open
/// redirect or a header injection, so they fall back to `/`.
fn safe_return_path(requested: Option<&str>) -> String {
    let Some(path) = requested else {
        return "/".to_owned();
    };
    let fine = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= MAX_RETURN_TO
        && !path.chars().any(|c| c.is_control() || c == '\\');
    if fine {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

/// A provider-supplied code for a message: short, printable ASCII.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

fn cookie_lifetime_ms() -> i64 {
    i64::try_from(cookie::LIFETIME_SECS * 1000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_on_this_site() {
        for fine in ["/", "/tasks/123?tab=runs", "/a/b#c", "/ünïcode"] {
            assert_eq!(safe_return_path(Some(fine)), fine);
        }
        let too_long = format!("/{}", "a".repeat(MAX_RETURN_TO));
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "/a\\b",
            "evil",
            "",
            "/a\r\nSet-Cookie: x=y",
            "/\u{0}",
            "javascript:alert(1)",
            &too_long,
        ] {
            assert_eq!(safe_return_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_path(None), "/");
    }

    #[test]
    fn provider_codes_are_shown_short_and_printable() {
        assert_eq!(printable("access_denied"), "access_denied");
        assert_eq!(printable("<script>\r\n x"), "<script>x");
        assert_eq!(printable(&"x".repeat(500)).len(), 64);
    }
}
