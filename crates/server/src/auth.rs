//! API-key authentication, scopes and the per-key rate limit, applied per route.
//!
//! A verified key is cached in memory for [`CACHE_TTL`] under the SHA-256 of the full key,
//! so the hot path (`GET /tasks/{id}` at 10,000 req/s) costs one hash and one map read;
//! revoking a key through this process evicts it at once. Every change that takes
//! something away (a key revoked, a user disabled, demoted or moved to another plan) bumps
//! the store's credential revision; a process compares it at most once per
//! `server.credential_check_interval` (1 s) and empties its cache when it moved, so other
//! processes and the CLI's changes take effect everywhere within that interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::keys;
use crate::rate_limit::RateDecision;
use crate::state::AppState;
use crate::time::now_ms;

const CACHE_TTL: Duration = Duration::from_secs(30);
/// `last_used_at` is written at most this often per key, not on every request.
const TOUCH_INTERVAL_MS: i64 = 60_000;

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

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

/// Who is calling: the key's owner and what the key may do.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub user_id: String,
    pub key_id: String,
    pub scopes: ScopeSet,
    pub is_admin: bool,
    pub plan: String,
    /// When the presented key expires (ms since the epoch); keys it mints expire no later.
    pub key_expires_at_ms: Option<i64>,
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

struct CachedKey {
    context: Arc<AuthContext>,
    verified_at: Instant,
    /// The credential revision the cache was at when verification started: an entry
    /// verified while a revocation was being made is not used once the cache has seen it.
    revision: i64,
    expires_at_ms: Option<i64>,
    last_touch_ms: AtomicI64,
}

/// Verified keys by the SHA-256 of the full key, valid under one credential revision.
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: RwLock<HashMap<[u8; 32], Arc<CachedKey>>>,
    /// The store's credential revision the entries were verified under.
    revision: AtomicI64,
    /// When the revision was last compared (ms since the epoch; 0: never).
    revision_checked_at_ms: AtomicI64,
}

impl KeyCache {
    /// Empties the cache when the store's credential revision has moved since the last
    /// comparison, at most once per `interval` (the compare-exchange lets one request of
    /// many do it). A store that cannot be read leaves the cache as it is: keys verified
    /// before an outage keep working through it, as they did before.
    async fn forget_if_credentials_changed(
        &self,
        store: &selextract_store::Store,
        interval: std::time::Duration,
        now: i64,
    ) {
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let last = self.revision_checked_at_ms.load(Ordering::Acquire);
        if last != 0 && now.saturating_sub(last) < interval_ms {
            return;
        }
        if interval_ms > 0
            && self
                .revision_checked_at_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match store.credential_revision().await {
            Ok(revision) => {
                if self.revision.swap(revision, Ordering::AcqRel) != revision {
                    let mut entries = match self.entries.write() {
                        Ok(guard) => guard,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    entries.clear();
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the credential revision");
            }
        }
    }

    fn get(&self, fingerprint: &[u8; 32]) -> Option<Arc<CachedKey>> {
        let entries = match self.entries.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let revision = self.revision.load(Ordering::Acquire);
        entries
            .get(fingerprint)
            .filter(|entry| entry.verified_at.elapsed() < CACHE_TTL && entry.revision == revision)
            .cloned()
    }

    fn insert(&self, fingerprint: [u8; 32], entry: Arc<CachedKey>) {
        let mut entries = match self.entries.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if entries.len() >= 10_000 {
            entries.retain(|_, entry| entry.verified_at.elapsed() < CACHE_TTL);
        }
        entries.insert(fingerprint, entry);
    }

    /// Forgets a revoked key so this process refuses it from the next request on.
    pub(crate) fn evict_key(&self, key_id: &str) {
        let mut entries = match self.entries.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries.retain(|_, entry| entry.context.key_id != key_id);
    }
}

/// The presented key: `Authorization: Bearer sk_…` or `X-API-Key: sk_…`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get(&X_API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Resolves the presented key to its owner, from the cache or the store.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Arc<AuthContext>, ApiError> {
    let Some(full_key) = presented_key(headers) else {
        return Err(ApiError::Unauthorized(
            "an API key is required (Authorization: Bearer sk_…)".to_owned(),
        ));
    };
    // A string not shaped like a key (a megabyte of header, say) is refused before it is
    // hashed or looked up.
    if keys::parse_api_key(full_key).is_none() {
        return Err(invalid_key());
    }
    let fingerprint = keys::fingerprint(full_key);
    let now = now_ms();
    state
        .keys
        .forget_if_credentials_changed(&state.store, state.config.credential_check_interval, now)
        .await;
    let entry = match state.keys.get(&fingerprint) {
        Some(entry) => entry,
        None => {
            let revision = state.keys.revision.load(Ordering::Acquire);
            let entry = Arc::new(verify_with_store(state, full_key, revision).await?);
            state.keys.insert(fingerprint, Arc::clone(&entry));
            entry
        }
    };
    if entry.expires_at_ms.is_some_and(|expires| expires <= now) {
        return Err(invalid_key());
    }
    touch_if_due(state, &entry, now).await;
    Ok(Arc::clone(&entry.context))
}

fn invalid_key() -> ApiError {
    // One message for unknown, malformed, revoked and expired keys: a caller learns nothing
    // about which keys exist.
    ApiError::Unauthorized("the API key is invalid, revoked or expired".to_owned())
}

async fn verify_with_store(
    state: &AppState,
    full_key: &str,
    revision: i64,
) -> Result<CachedKey, ApiError> {
    let (public_id, secret) = keys::parse_api_key(full_key).ok_or_else(invalid_key)?;
    let key = state
        .store
        .find_api_key_by_public_id(public_id)
        .await?
        .ok_or_else(invalid_key)?;
    if !keys::secret_matches(secret, &key.secret_hash) || key.revoked_at_ms.is_some() {
        return Err(invalid_key());
    }
    let user = state
        .store
        .find_user_by_id(&key.user_id)
        .await?
        .ok_or_else(invalid_key)?;
    if user.disabled {
        return Err(ApiError::Unauthorized(
            "this account is disabled".to_owned(),
        ));
    }
    let context = AuthContext {
        user_id: user.id,
        key_id: key.id,
        scopes: ScopeSet::from_names(key.scopes.iter().map(String::as_str)),
        is_admin: user.is_admin,
        plan: user.plan,
        key_expires_at_ms: key.expires_at_ms,
    };
    Ok(CachedKey {
        context: Arc::new(context),
        verified_at: Instant::now(),
        revision,
        expires_at_ms: key.expires_at_ms,
        last_touch_ms: AtomicI64::new(key.last_used_at_ms.unwrap_or(0)),
    })
}

/// Writes `last_used_at` when the last write is older than a minute. The compare-exchange
/// makes exactly one of many concurrent requests do the write.
async fn touch_if_due(state: &AppState, entry: &CachedKey, now: i64) {
    let last = entry.last_touch_ms.load(Ordering::Relaxed);
    if now - last < TOUCH_INTERVAL_MS {
        return;
    }
    if entry
        .last_touch_ms
        .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    if let Err(error) = state.store.touch_api_key(&entry.context.key_id, now).await {
        // Bookkeeping only: the request itself must not fail for it.
        tracing::warn!(%error, "could not record API key use");
    }
}

/// Route middleware: authenticate, count against the key's rate limit, check `scope`, then
/// hand the caller to the handler. Rate-limit headers go on every authenticated response.
pub(crate) async fn require_scope(
    State((state, scope)): State<(AppState, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    let context = match authenticate(&state, request.headers()).await {
        Ok(context) => context,
        Err(error) => return error.into_response(),
    };
    let decision = state
        .rate_limiter
        .check(&context.key_id, state.config.rate_limit_per_minute)
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

fn add_rate_limit_headers(headers: &mut HeaderMap, decision: RateDecision) {
    static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
    static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    headers.insert(LIMIT.clone(), HeaderValue::from(decision.limit));
    headers.insert(REMAINING.clone(), HeaderValue::from(decision.remaining));
    headers.insert(RESET.clone(), HeaderValue::from(decision.reset_after_secs));
}
