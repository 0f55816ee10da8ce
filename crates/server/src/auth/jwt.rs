//! JWT access tokens (`Authorization: Bearer <JWT>`), issued by `POST /auth/token`.
//!
//! The signature and expiry are checked on every request (cheap, no IO). What a JWT cannot
//! say by itself — whether its refresh family was revoked (logout everywhere, a replayed
//! refresh token) or its user disabled — is read from the store once and cached per family
//! like a verified key: for at most [`super::api_key::CACHE_TTL`], and dropped as soon as
//! the credential revision moves (every such change bumps it). So a revoked family's access
//! tokens stop working on every process within `server.credential_check_interval`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use selextract_accounts::tokens::{MAX_ACCESS_TOKEN_BYTES, verify_access_token};

use super::api_key::CACHE_TTL;
use super::{AuthContext, Credential, ScopeSet};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::now_ms;

/// The signing purpose (key derivation label) of access tokens.
pub(crate) const JWT_PURPOSE: &str = "jwt";

/// A refresh family found live, with its user's standing, under one credential revision.
pub(crate) struct CachedFamily {
    context: Arc<AuthContext>,
    verified_at: Instant,
    revision: i64,
}

/// Three non-empty base64url parts separated by dots: the compact JWS form.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.len() <= MAX_ACCESS_TOKEN_BYTES
        && token.split('.').count() == 3
        && token.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn invalid_token() -> ApiError {
    ApiError::Unauthorized("the access token is invalid, revoked or expired".to_owned())
}

/// Verifies an access token and resolves it to its user.
pub(crate) async fn authenticate_jwt(
    state: &AppState,
    token: &str,
) -> Result<Arc<AuthContext>, ApiError> {
    let key = state.signing().await?.key(JWT_PURPOSE);
    let claims = verify_access_token(&key, token).map_err(|_| invalid_token())?;
    let cache = &state.keys;
    cache
        .forget_if_credentials_changed(
            &state.store,
            state.config.credential_check_interval,
            now_ms(),
        )
        .await;
    let revision = cache.revision.load(Ordering::Acquire);
    let cached = {
        let families = match cache.families.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        families
            .get(&claims.fid)
            .filter(|entry| entry.verified_at.elapsed() < CACHE_TTL && entry.revision == revision)
            .map(|entry| Arc::clone(&entry.context))
    };
    let context = match cached {
        Some(context) => context,
        None => {
            let context = verify_family(state, &claims.fid).await?;
            let mut families = match cache.families.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if families.len() >= 10_000 {
                families.retain(|_, entry| entry.verified_at.elapsed() < CACHE_TTL);
            }
            families.insert(
                claims.fid.clone(),
                Arc::new(CachedFamily {
                    context: Arc::clone(&context),
                    verified_at: Instant::now(),
                    revision,
                }),
            );
            context
        }
    };
    // The family belongs to one user; a token naming another (only possible with the key)
    // is refused all the same.
    if context.user_id != claims.sub {
        return Err(invalid_token());
    }
    Ok(context)
}

/// Reads a family's standing and its user from the store.
async fn verify_family(state: &AppState, family_id: &str) -> Result<Arc<AuthContext>, ApiError> {
    let standing = state
        .store
        .refresh_family_standing(family_id)
        .await?
        .filter(|standing| !standing.revoked)
        .ok_or_else(invalid_token)?;
    let user = state
        .store
        .find_user_by_id(&standing.user_id)
        .await?
        .ok_or_else(invalid_token)?;
    if user.disabled {
        return Err(ApiError::Unauthorized(
            "this account is disabled".to_owned(),
        ));
    }
    Ok(Arc::new(AuthContext {
        user_id: user.id,
        credential: Credential::Jwt {
            family_id: family_id.to_owned(),
        },
        scopes: ScopeSet::all(),
        is_admin: user.is_admin,
        plan: user.plan,
        key_expires_at_ms: None,
    }))
}
