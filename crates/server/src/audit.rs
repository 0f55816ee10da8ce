//! Recording audit events from handlers (the log itself is the store's `audit_log`).
//!
//! Recording never fails the request it belongs to: a login that succeeded has succeeded
//! even when its audit entry could not be written; the failure is logged instead.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use selextract_store::AuditEntry;
use serde_json::Value;

use crate::state::AppState;

/// The client address of a request: the TCP peer, never `X-Forwarded-For` (a header is
/// whatever the client wants it to be). Behind a reverse proxy this is the proxy.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_canonical().to_string()),
        ))
    }
}

/// One event to record: whose account it concerns, who did it (a user id, or `cli`,
/// `billing`, …), a stable snake_case name, and its facts (never a password, token or key:
/// the store refuses details naming one).
#[derive(Debug, Clone)]
pub(crate) struct Event<'a> {
    pub user_id: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub event: &'a str,
    pub details: Value,
}

impl<'a> Event<'a> {
    /// An event a user caused on their own account.
    pub(crate) fn by_user(user_id: &'a str, event: &'a str, details: Value) -> Self {
        Event {
            user_id: Some(user_id),
            actor: Some(user_id),
            event,
            details,
        }
    }
}

/// Appends `event` to the audit log with the client address (take a [`ClientIp`]
/// extractor in the handler); a failure is logged, not returned.
pub(crate) async fn record(state: &AppState, ip: &ClientIp, event: Event<'_>) {
    let entry = AuditEntry {
        user_id: event.user_id,
        actor: event.actor,
        event: event.event,
        ip: ip.0.as_deref(),
        details: event.details,
    };
    if let Err(error) = state.store.record_audit(&entry).await {
        tracing::warn!(%error, event = entry.event, "could not write an audit entry");
    }
}
