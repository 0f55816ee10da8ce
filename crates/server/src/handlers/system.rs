//! System routes outside `/api/v1`: liveness, readiness, Prometheus metrics; and the
//! OpenAPI document.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use selextract_config::ExposeSecret;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::keys::constant_time_eq;
use crate::state::AppState;
use crate::time::now_ms;

/// A worker is live when its heartbeat is at most this old.
const WORKER_LIVENESS: Duration = Duration::from_secs(30);

/// Liveness: answers without touching the database, so a slow database never gets the
/// process restarted.
pub(crate) async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "version": state.config.version}))
}

/// Readiness: database, results storage and queue; 503 with each component's status when
/// any fails. Causes go to the log, not to this unauthenticated response.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let (database, results, queue) = tokio::join!(
        state.store.ping(),
        state.results.check_writable(),
        state.store.queue_depth()
    );
    let mut healthy = true;
    let mut component = |name: &str, outcome: Result<Value, String>| match outcome {
        Ok(extra) => {
            let mut status = json!({"status": "ok"});
            if let (Some(object), Value::Object(extra)) = (status.as_object_mut(), extra) {
                object.extend(extra);
            }
            status
        }
        Err(cause) => {
            healthy = false;
            tracing::warn!(component = name, error = %cause, "readiness check failed");
            json!({"status": "unavailable"})
        }
    };
    let mut checks = json!({
        "database": component("database", database.map(|()| json!({})).map_err(|e| e.to_string())),
        "results": component("results", results.map(|()| json!({})).map_err(|e| e.to_string())),
        "queue": component("queue", queue.map(|depth| json!({"depth": depth})).map_err(|e| e.to_string())),
    });
    // Redis is optional: while it is down every process limits on its own, so the API stays
    // ready and reports the degradation instead of failing.
    if let (Some(up), Some(object)) = (
        state.rate_limiter.shared_backend_up(),
        checks.as_object_mut(),
    ) {
        let status = if up { "ok" } else { "degraded" };
        object.insert("redis".to_owned(), json!({"status": status}));
    }
    let (status, word) = if healthy {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(json!({"status": word, "version": state.config.version, "checks": checks})),
    )
        .into_response()
}

/// Prometheus text exposition; only for allowed client addresses or the metrics token.
pub(crate) async fn metrics(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    if !metrics_access_allowed(&state, &request) {
        return Err(ApiError::Forbidden(
            "metrics are not available to this client".to_owned(),
        ));
    }
    record_queue_gauges(&state).await;
    crate::metrics::refresh_active_users_if_due(&state.active_users, &state.store, now_ms()).await;
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

fn metrics_access_allowed(state: &AppState, request: &Request) -> bool {
    let config = &state.config;
    if let Some(expected) = config
        .metrics
        .bearer_token
        .as_ref()
        .map(|t| t.expose_secret())
    {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        if presented.is_some_and(|token| constant_time_eq(token.as_bytes(), expected.as_bytes())) {
            return true;
        }
    }
    // The TCP peer, never X-Forwarded-For: a header is whatever the client wants it to be.
    // Behind a reverse proxy, use the bearer token.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    peer.is_some_and(|ip| config.metrics.allow.iter().any(|net| net.contains(&ip)))
}

/// Queue and worker gauges are read from the database at scrape time, so every API process
/// reports the installation's state, whichever process the workers run in.
async fn record_queue_gauges(state: &AppState) {
    let now = now_ms();
    let (depth, oldest, workers) = tokio::join!(
        state.store.queue_depth(),
        state.store.oldest_queued_age_ms(now),
        state.store.list_live_workers(WORKER_LIVENESS, now),
    );
    match depth {
        Ok(depth) => {
            for run_state in ["queued", "running"] {
                let count = depth.get(run_state).copied().unwrap_or(0);
                metrics::gauge!("selextract_queue_depth", "state" => run_state).set(count as f64);
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: could not read queue depth"),
    }
    match oldest {
        Ok(age) => {
            metrics::gauge!("selextract_queue_oldest_age_seconds")
                .set(age.unwrap_or(0) as f64 / 1000.0);
        }
        Err(error) => tracing::warn!(%error, "metrics: could not read queue age"),
    }
    match workers {
        Ok(workers) => metrics::gauge!("selextract_workers_live").set(workers.len() as f64),
        Err(error) => tracing::warn!(%error, "metrics: could not read workers"),
    }
}

pub(crate) async fn openapi_document() -> Json<Value> {
    Json(crate::openapi::openapi())
}
