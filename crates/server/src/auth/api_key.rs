//! API keys (`Authorization: Bearer sk_…` or `X-API-Key: sk_…`), and the per-process cache
//! of verified credentials.
//!
//! A verified key is cached in memory for [`CACHE_TTL`] under the SHA-256 of the full key,
//! so the hot path (`GET /tasks/{id}` at 10,000 req/s) costs one hash and one map read;
//! revoking a key through this process evicts it at once. The same cache holds the standing
//! of JWT refresh families ([`super::jwt`]). Every change that takes something away (a key
//! revoked, a user disabled, demoted or moved to another plan, a refresh family revoked)
//! bumps the store's credential revision; a process compares it at most once per
//! `server.credential_check_interval` (1 s) and empties its cache when it moved, so other
//! processes and the CLI's changes take effect everywhere within that interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::jwt::CachedFamily;
use super::{AuthContext, Credential, ScopeSet};
use crate::error::ApiError;
use crate::keys;
use crate::state::AppState;
use crate::time::now_ms;

/// How long a verified key (or a refresh family's standing) is trusted without asking the
/// store again, unless the credential revision moves first.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(30);
/// `last_used_at` is written at most this often per key, not on every request.
const TOUCH_INTERVAL_MS: i64 = 60_000;

struct CachedKey {
    context: Arc<AuthContext>,
    verified_at: Instant,
    /// The credential revision the cache was at when verification started: an entry
    /// verified while a revocation was being made is not used once the cache has seen it.
    revision: i64,
    expires_at_ms: Option<i64>,
    last_touch_ms: AtomicI64,
}

/// Verified keys by the SHA-256 of the full key, and refresh families by id, valid under one
/// credential revision.
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: RwLock<HashMap<[u8; 32], Arc<CachedKey>>>,
    pub(super) families: RwLock<HashMap<String, Arc<CachedFamily>>>,
    /// The store's credential revision the entries were verified under.
    pub(super) revision: AtomicI64,
    /// When the revision was last compared (ms since the epoch; 0: never).
    revision_checked_at_ms: AtomicI64,
}

impl KeyCache {
    /// Empties the cache when the store's credential revision has moved since the last
    /// comparison, at most once per `interval` (the compare-exchange lets one request of
    /// many do it). A store that cannot be read leaves the cache as it is: keys verified
    /// before an outage keep working through it, as they did before.
    pub(super) async fn forget_if_credentials_changed(
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
                    drop(entries);
                    let mut families = match self.families.write() {
                        Ok(guard) => guard,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    families.clear();
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

    /// Makes the next request compare the credential revision whatever the interval, so a
    /// change this process has just made and the store has counted (a user disabled,
    /// demoted or moved to another plan) reaches its cached keys and token families from
    /// the next request on, not only after `server.credential_check_interval`.
    pub(crate) fn recheck_credentials_now(&self) {
        self.revision_checked_at_ms.store(0, Ordering::Release);
    }

    /// Forgets a revoked key so this process refuses it from the next request on.
    pub(crate) fn evict_key(&self, key_id: &str) {
        let mut entries = match self.entries.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries.retain(|_, entry| {
            !matches!(&entry.context.credential, Credential::ApiKey { key_id: id } if id == key_id)
        });
    }
}

/// Resolves the presented key to its owner, from the cache or the store.
pub(crate) async fn authenticate_key(
    state: &AppState,
    full_key: &str,
) -> Result<Arc<AuthContext>, ApiError> {
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
        credential: Credential::ApiKey { key_id: key.id },
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
    let Credential::ApiKey { key_id } = &entry.context.credential else {
        return;
    };
    if let Err(error) = state.store.touch_api_key(key_id, now).await {
        // Bookkeeping only: the request itself must not fail for it.
        tracing::warn!(%error, "could not record API key use");
    }
}
