//! Which local account an OpenID sign-in logs into (the order is in the parent module's
//! comment), and the checks and bookkeeping of signing it in.

use axum::http::HeaderMap;
use selextract_accounts::oidc::{OidcClient, VerifiedIdentity};
use selextract_accounts::{Email, SignupPolicy};
use selextract_store::{NewOidcIdentity, StoreError, User};
use serde_json::json;

use crate::audit::{ClientIp, Event, record};
use crate::auth::session::start_session;
use crate::error::ApiError;
use crate::handlers::account::{
    NewAccount, create_default_account, refuse_registered_email, validate_display_name,
};
use crate::state::AppState;

/// Which account the verified identity logs into (see the module comment for the order).
pub(super) async fn find_or_create_account(
    state: &AppState,
    client: &OidcClient,
    identity: &VerifiedIdentity,
    ip: &ClientIp,
) -> Result<User, ApiError> {
    let provider = client.name();
    if let Some(user) = state
        .store
        .find_user_by_oidc_identity(provider, &identity.subject)
        .await?
    {
        return Ok(user);
    }
    let email = identity
        .email
        .as_deref()
        .and_then(|email| Email::parse(email).ok())
        .ok_or_else(|| {
            ApiError::OidcRefused(format!(
                "{} did not share a usable e-mail address (the `email` scope is needed)",
                client.display_name()
            ))
        })?;
    let new_identity = NewOidcIdentity {
        provider: provider.to_owned(),
        subject: identity.subject.clone(),
        email: email.as_str().to_owned(),
        email_verified: identity.email_verified,
    };
    if identity.email_verified
        && let Some(user) = state.store.find_user_by_email(email.as_str()).await?
    {
        return link_existing_account(state, user, &new_identity, ip).await;
    }
    if state.config.auth.signup != SignupPolicy::Open {
        return Err(ApiError::SignupClosed(
            "there is no account for this sign-in, and sign-up is closed on this installation; ask an administrator"
                .to_owned(),
        ));
    }
    if !identity.email_verified {
        refuse_registered_email(state, email.as_str()).await?;
    }
    create_account(state, identity, &new_identity, ip).await
}

async fn link_existing_account(
    state: &AppState,
    user: User,
    identity: &NewOidcIdentity,
    ip: &ClientIp,
) -> Result<User, ApiError> {
    match state.store.link_oidc_identity(&user.id, identity).await {
        Ok(()) => {}
        // Linked a moment ago by a concurrent callback of the same person: that link wins.
        Err(StoreError::Conflict(_)) => {
            return state
                .store
                .find_user_by_oidc_identity(&identity.provider, &identity.subject)
                .await?
                .ok_or_else(|| ApiError::internal("a linked identity vanished"));
        }
        Err(error) => return Err(error.into()),
    }
    let details = json!({"provider": identity.provider, "email": identity.email});
    record(state, ip, Event::by_user(&user.id, "oidc_linked", details)).await;
    Ok(user)
}

/// A new account on the default plan with its first month's compute units, linked to the
/// provider account.
async fn create_account(
    state: &AppState,
    identity: &VerifiedIdentity,
    new_identity: &NewOidcIdentity,
    ip: &ClientIp,
) -> Result<User, ApiError> {
    let display_name = identity.name.as_deref().and_then(display_name);
    let account = NewAccount::Oidc {
        identity: new_identity,
        display_name: display_name.as_deref(),
    };
    let user = create_default_account(state, &new_identity.email, account).await?;
    let details = json!({"method": "oidc", "provider": new_identity.provider});
    record(
        state,
        ip,
        Event::by_user(&user.id, "signup", details.clone()),
    )
    .await;
    record(state, ip, Event::by_user(&user.id, "oidc_linked", details)).await;
    crate::metrics::user_registered();
    Ok(user)
}

/// Refuses disabled and (under `auth.require_verified_email`) unverified accounts, then
/// starts the session: its `Set-Cookie` headers.
pub(super) async fn sign_in(
    state: &AppState,
    user: &User,
    headers: &HeaderMap,
    ip: &ClientIp,
    provider: &str,
) -> Result<HeaderMap, ApiError> {
    if user.disabled {
        return Err(ApiError::Forbidden("this account is disabled".to_owned()));
    }
    if state.config.auth.require_verified_email {
        let standing = state
            .store
            .account_standing(&user.id)
            .await?
            .ok_or_else(|| ApiError::internal("the account vanished"))?;
        if standing.email_verified_at_ms.is_none() {
            return Err(ApiError::EmailNotVerified);
        }
    }
    state.store.record_successful_login(&user.id).await?;
    let cookies = start_session(state, user, headers).await?;
    let details = json!({"method": "oidc", "provider": provider});
    record(state, ip, Event::by_user(&user.id, "login", details)).await;
    crate::metrics::user_logged_in("oidc");
    Ok(cookies)
}

/// A provider's display name as ours when it passes our own rule (trimmed, no control
/// characters, at most 100 characters: `validate_display_name`); otherwise none.
fn display_name(name: &str) -> Option<String> {
    validate_display_name(Some(name)).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_for_accounts_are_tidied_or_dropped() {
        assert_eq!(
            display_name("  Ada Lovelace "),
            Some("Ada Lovelace".to_owned())
        );
        assert_eq!(display_name(""), None);
        assert_eq!(display_name("a\nb"), None);
        assert_eq!(display_name(&"é".repeat(101)), None);
        assert_eq!(display_name(&"é".repeat(100)), Some("é".repeat(100)));
    }
}
