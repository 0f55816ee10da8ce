//! Who is calling, and may they: one [`Caller`] for the three credentials the API accepts,
//! with the same scope check and rate limit for each, applied per route by
//! [`require_scope`].
//!
//! - [`api_key`]: `Authorization: Bearer sk_…` or `X-API-Key: sk_…`, verified keys cached
//!   per process (the hot path).
//! - [`session`]: the dashboard's `selextract_session` cookie, looked up in the store on
//!   every request (so a logout is final at once everywhere), with a double-submit CSRF
//!   token on every state-changing request.
//! - [`jwt`]: `Authorization: Bearer <JWT>`, a 15-minute access token tied to a refresh
//!   token family whose standing is cached like a key.
//!
//! Sessions and JWTs stand for the person, so they carry every scope; API keys carry the
//! scopes they were made with. Whatever takes access away (a key revoked, a user disabled, a
//! refresh family revoked, "log out everywhere") bumps the store's credential revision, and
//! every process empties its caches when it sees the revision move (at most
//! `server.credential_check_interval` later).

pub(crate) mod api_key;
pub(crate) mod jwt;
pub(crate) mod session;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub(crate) use api_key::KeyCache;

use crate::error::ApiError;
use crate::rate_limit::RateDecision;
use crate::state::AppState;

/// A permission an API key can carry (SPEC §6). `admin` is a user flag, never a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    TasksRead,
    TasksWrite,
    ResultsRead,
    KeysWrite,
    BillingRead,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::TasksRead,
        Scope::TasksWrite,
        Scope::ResultsRead,
        Scope::KeysWrite,
        Scope::BillingRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
            Scope::ResultsRead => "results:read",
            Scope::KeysWrite => "keys:write",
            Scope::BillingRead => "billing:read",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    fn bit(self) -> u8 {
        match self {
            Scope::TasksRead => 1,
            Scope::TasksWrite => 2,
            Scope::ResultsRead => 4,
            Scope::KeysWrite => 8,
            Scope::BillingRead => 16,
        }
    }
}

/// A set of scopes as a bit set: checking one is a mask, not a string search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// Scopes named in `names`; unknown names (from an older or newer version) grant nothing.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        ScopeSet(
            names
                .into_iter()
                .filter_map(Scope::parse)
                .fold(0, |bits, scope| bits | scope.bit()),
        )
    }

    /// Every scope: what a session or a JWT (the person themselves) may do.
    pub fn all() -> Self {
        ScopeSet(
            Scope::ALL
                .into_iter()
                .fold(0, |bits, scope| bits | scope.bit()),
        )
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

/// Which credential a request presented, with the id that names it in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API key (`api_keys.id`).
    ApiKey { key_id: String },
    /// A dashboard session (`sessions.id`, not the cookie's secret).
    Session { session_id: String },
    /// A JWT access token of a refresh-token family (`refresh_tokens.family_id`).
    Jwt { family_id: String },
}

/// Who is calling: the user, the credential and what it may do.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub user_id: String,
    pub credential: Credential,
    pub scopes: ScopeSet,
    pub is_admin: bool,
    pub plan: String,
    /// When the presented key expires (ms since the epoch); keys it mints expire no later.
    /// `None` for sessions and JWTs: the person may make keys that outlive the login.
    pub key_expires_at_ms: Option<i64>,
}

impl AuthContext {
    /// Whether the caller is the person (a session or a JWT) rather than a program holding
    /// an API key: account-level changes (password, deleting the account) require it.
    pub fn is_human(&self) -> bool {
        !matches!(self.credential, Credential::ApiKey { .. })
    }

    /// The rate limiter's bucket. An API key has its own budget (as keys always had);
    /// sessions and JWTs share one per user, so logging in again does not buy a fresh one.
    fn rate_limit_bucket(&self) -> String {
        match &self.credential {
            Credential::ApiKey { key_id } => key_id.clone(),
            Credential::Session { .. } | Credential::Jwt { .. } => {
                format!("user:{}", self.user_id)
            }
        }
    }
}

/// The authenticated caller of a route that requires a scope.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<AuthContext>);

impl std::ops::Deref for Caller {
    type Target = AuthContext;
    fn deref(&self) -> &AuthContext {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<AuthContext>>()
            .cloned()
            .map(Caller)
            // Only reachable if a route needing a caller was registered without a scope.
            .ok_or_else(|| ApiError::internal("route is missing its authentication layer"))
    }
}

/// What a request presents, before it is verified.
enum Presented<'a> {
    ApiKey(&'a str),
    Jwt(&'a str),
    Session(String),
    /// An `Authorization` header that is neither a key nor a JWT.
    Malformed,
    Nothing,
}

/// An explicit credential header wins over the cookie: a program's key is what it means,
/// whatever cookies a shared client jar holds.
fn presented_credential(headers: &HeaderMap) -> Presented<'_> {
    static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Some((scheme, token)) = value.to_str().ok().and_then(|v| v.trim().split_once(' '))
        else {
            return Presented::Malformed;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Presented::Malformed;
        }
        let token = token.trim();
        return if token.starts_with("sk_") {
            Presented::ApiKey(token)
        } else if jwt::looks_like_jwt(token) {
            Presented::Jwt(token)
        } else {
            // Shaped like neither: judged as a key, which refuses it with the key's message.
            Presented::ApiKey(token)
        };
    }
    if let Some(value) = headers.get(&X_API_KEY) {
        return match value.to_str() {
            Ok(key) => Presented::ApiKey(key.trim()),
            Err(_) => Presented::Malformed,
        };
    }
    match session::session_cookie(headers) {
        Some(token) => Presented::Session(token),
        None => Presented::Nothing,
    }
}

/// Resolves the presented credential to its owner. A session must also pass the CSRF check
/// when `method` changes state.
pub(crate) async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Arc<AuthContext>, ApiError> {
    match presented_credential(headers) {
        Presented::ApiKey(key) => api_key::authenticate_key(state, key).await,
        Presented::Jwt(token) => jwt::authenticate_jwt(state, token).await,
        Presented::Session(token) => {
            let context = session::authenticate_session(state, &token).await?;
            if changes_state(method) {
                session::check_csrf(state, &context, headers).await?;
            }
            Ok(context)
        }
        Presented::Malformed => Err(ApiError::Unauthorized(
            "the Authorization header must be `Bearer <API key or access token>`".to_owned(),
        )),
        Presented::Nothing => Err(ApiError::Unauthorized(
            "an API key, access token or session is required (Authorization: Bearer sk_…)"
                .to_owned(),
        )),
    }
}

/// POST, PUT, PATCH and DELETE: what a forged cross-site request could use to do harm.
pub(crate) fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Route middleware: authenticate, count against the caller's rate limit (the plan's, else
/// the server's), check `scope`, then hand the caller to the handler. Rate-limit headers go
/// on every authenticated response.
pub(crate) async fn require_scope(
    State((state, scope)): State<(AppState, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    let context = match authenticate(&state, request.method(), request.headers()).await {
        Ok(context) => context,
        Err(error) => return error.into_response(),
    };
    let limit = rate_limit_for_plan(&state, &context.plan);
    let decision = state
        .rate_limiter
        .check(&context.rate_limit_bucket(), limit)
        .await;
    let mut response = if !decision.allowed {
        ApiError::RateLimited {
            retry_after_secs: decision.reset_after_secs,
        }
        .into_response()
    } else if !context.scopes.contains(scope) {
        ApiError::InsufficientScope(scope.as_str()).into_response()
    } else {
        request.extensions_mut().insert(context);
        next.run(request).await
    };
    add_rate_limit_headers(response.headers_mut(), decision);
    response
}

/// Requests per minute for a user on `plan`: the plan's own limit when it sets one, else
/// `server.rate_limit_per_minute`.
fn rate_limit_for_plan(state: &AppState, plan: &str) -> u32 {
    let (_, plan) = state.config.plans.plan_for(plan);
    plan.rate_limit_per_minute
        .unwrap_or(state.config.rate_limit_per_minute)
}

fn add_rate_limit_headers(headers: &mut HeaderMap, decision: RateDecision) {
    static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
    static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    headers.insert(LIMIT.clone(), HeaderValue::from(decision.limit));
    headers.insert(REMAINING.clone(), HeaderValue::from(decision.remaining));
    headers.insert(RESET.clone(), HeaderValue::from(decision.reset_after_secs));
}
