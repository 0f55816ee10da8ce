//! selextract-server: the REST API (SPEC §7) over axum — tasks, runs, records and exports,
//! previews, API keys, health, readiness and metrics. The only crate that knows HTTP.
//!
//! Architecture invariants:
//! - Every route is declared once, in `routes.rs`; the router and the OpenAPI document are
//!   both built from that table.
//! - Every error leaves through [`ApiError`]: one envelope, one table of codes and statuses.
//! - Every read or write of user data goes through a store method that takes the caller's
//!   user id, so another user's ids are simply "not found".
//! - Live progress (SSE) polls the database, never the worker, so API and workers can run
//!   in different processes without a broker.

mod admin;
mod audit;
mod auth;
mod config;
mod deletion;
mod error;
mod event_streams;
mod handlers;
pub mod keys;
mod metrics;
mod openapi;
mod rate_limit;
mod redis_rate_limit;
mod request_id;
mod routes;
pub mod signing;
mod state;
pub mod status;
mod time;
mod views;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware::{from_fn, from_fn_with_state};
use tokio_util::sync::CancellationToken;

pub use auth::{AuthContext, Scope, ScopeSet};
pub use config::{EventStreamConfig, MetricsConfig, ServerConfig};
pub use error::{ApiError, ErrorDetail};
pub use metrics::{build_metrics_recorder, describe_server_metrics};
pub use openapi::openapi;
pub use rate_limit::{InMemoryRateLimiter, RateDecision, RateLimiter};
pub use redis_rate_limit::RedisRateLimiter;
pub use state::AppState;

/// The whole HTTP application: every route of the table, each with its scope check, plus
/// request ids, metrics and the body limit around all of them.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes::routes() {
        let mut handler = route.handler;
        if let Some(scope) = route.doc.scope {
            handler = handler.route_layer(from_fn_with_state(
                (state.clone(), scope),
                auth::require_scope,
            ));
        }
        router = router.route(route.doc.path, handler);
    }
    router
        .fallback(no_such_route)
        .layer(from_fn(refuse_nul_in_path))
        .layer(from_fn(metrics::record_http_metrics))
        .layer(DefaultBodyLimit::max(state.config.request_body_limit))
        .layer(from_fn(request_id::assign_request_id))
        .with_state(state)
}

/// No resource's id holds a NUL byte, and PostgreSQL cannot even compare one: a path with
/// `%00` is a 404 before any handler or database sees it.
async fn refuse_nul_in_path(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if request.uri().path().contains("%00") {
        return axum::response::IntoResponse::into_response(ApiError::NotFound(
            "no such resource: the path contains a NUL byte (%00)".to_owned(),
        ));
    }
    next.run(request).await
}

async fn no_such_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// Serves the API on `listener` until `shutdown` is cancelled, then stops accepting, ends
/// event streams and waits for in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut state = state;
    state.shutdown = shutdown.child_token();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Every `(method, path template)` the router serves, for tests and docs.
pub fn served_routes() -> Vec<(String, String)> {
    routes::routes()
        .into_iter()
        .map(|route| (route.doc.method.to_string(), route.doc.path.to_owned()))
        .collect()
}
