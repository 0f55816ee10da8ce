//! HTTP metrics (`http_requests_total`, `http_request_duration_seconds`) labelled by the
//! matched route template — never the raw path, which would make one series per task id —
//! and the Prometheus recorder the CLI installs; the account metrics (registrations, logins
//! by method, active users) that the account handlers record.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use selextract_store::Store;

/// Buckets for request durations, in seconds: 1 ms to 10 s.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus recorder and its handle, not installed: the CLI installs the recorder
/// globally (`metrics::set_global_recorder`) and gives the handle to [`crate::AppState`];
/// tests can build as many as they like.
pub fn build_metrics_recorder() -> (PrometheusRecorder, PrometheusHandle) {
    // Only an empty bucket list is refused, and ours is a non-empty constant.
    let builder = PrometheusBuilder::new()
        .set_buckets(DURATION_BUCKETS)
        .unwrap_or_else(|_| PrometheusBuilder::new());
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    (recorder, handle)
}

pub(crate) async fn record_http_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        // Unknown paths share one label, so scanners cannot create series.
        None => "unmatched".to_owned(),
    };
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Accounts created (sign-up, invitation, OIDC first login, `user create` through the API).
pub(crate) const USER_REGISTRATIONS_TOTAL: &str = "selextract_user_registrations_total";
/// Successful logins by method: `password`, `oidc`, `refresh` (a refresh-token exchange).
pub(crate) const USER_LOGINS_TOTAL: &str = "selextract_user_logins_total";
/// Enabled users active in the last 24 hours (see [`refresh_active_users_if_due`]).
pub(crate) const ACTIVE_USERS: &str = "selextract_active_users";

/// The login methods, each exported at 0 from the start so that `rate()` sees a series
/// before the first login of its kind.
const LOGIN_METHODS: [&str; 3] = ["password", "oidc", "refresh"];
/// What "active" means for `selextract_active_users`.
const ACTIVE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// The active-user count is a query over users, keys and sessions: recomputed at most this
/// often per process, however often `/metrics` is scraped.
const ACTIVE_USERS_REFRESH_MS: i64 = 30_000;

/// When this server last recomputed `selextract_active_users` (ms since the epoch; 0:
/// never). One per [`crate::AppState`], so a new server (a test's) counts at its first
/// scrape.
#[derive(Debug, Default)]
pub(crate) struct ActiveUsersGauge {
    refreshed_at_ms: AtomicI64,
}

/// Registers help texts for the server's own metrics and exports the account counters at
/// 0; call once after installing a recorder.
pub fn describe_server_metrics() {
    metrics::describe_counter!(
        USER_REGISTRATIONS_TOTAL,
        "Accounts created (sign-up, invitation, first OpenID Connect login)."
    );
    metrics::describe_counter!(
        USER_LOGINS_TOTAL,
        "Successful logins by method (password, oidc, refresh)."
    );
    metrics::describe_gauge!(
        ACTIVE_USERS,
        "Enabled users with a session or refresh token used, or an API key used, in the last 24 hours."
    );
    metrics::counter!(USER_REGISTRATIONS_TOTAL).increment(0);
    for method in LOGIN_METHODS {
        metrics::counter!(USER_LOGINS_TOTAL, "method" => method).increment(0);
    }
}

/// Counts one new account.
pub(crate) fn user_registered() {
    metrics::counter!(USER_REGISTRATIONS_TOTAL).increment(1);
}

/// Counts one successful login; `method` is `password`, `oidc` or `refresh` (a bounded set:
/// never a user-supplied string).
pub(crate) fn user_logged_in(method: &'static str) {
    metrics::counter!(USER_LOGINS_TOTAL, "method" => method).increment(1);
}

/// Recomputes `selextract_active_users` from the store when the last computation by this
/// server is older than [`ACTIVE_USERS_REFRESH_MS`] (the compare-exchange lets one scrape of
/// many do it). Like the queue gauges it is read from the database, so every API process
/// reports the whole installation. A failed read keeps the previous value.
pub(crate) async fn refresh_active_users_if_due(state: &ActiveUsersGauge, store: &Store, now: i64) {
    let refreshed_at = &state.refreshed_at_ms;
    let last = refreshed_at.load(Ordering::Acquire);
    if last != 0 && now.saturating_sub(last) < ACTIVE_USERS_REFRESH_MS {
        return;
    }
    if refreshed_at
        .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    match store
        .count_active_users(now.saturating_sub(ACTIVE_WINDOW_MS), now)
        .await
    {
        Ok(count) => metrics::gauge!(ACTIVE_USERS).set(count as f64),
        Err(error) => {
            // Try again at the next scrape rather than in 30 s.
            refreshed_at.store(last, Ordering::Release);
            tracing::warn!(%error, "metrics: could not count active users");
        }
    }
}
