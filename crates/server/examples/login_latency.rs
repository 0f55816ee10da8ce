//! Password hashing cost and login latency (docs/BENCHMARKS.md): argon2id at the configured
//! cost (OWASP by default), then 100 `POST /api/v1/auth/login` through the real router on a
//! SQLite store in a temp dir, with p50 and p99.
//!
//! `cargo run -p selextract-server --example login_latency --release`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use selextract_accounts::PasswordConfig;
use selextract_accounts::password::{hash_password, verify_password};
use selextract_fetch::{HttpFetcher, HttpFetcherConfig};
use selextract_results::ResultStore;
use selextract_server::{AppState, ServerConfig, build_metrics_recorder, router};
use selextract_store::{NewUser, Store};
use tower::ServiceExt;

const LOGINS: usize = 100;
const PASSWORD: &str = "correct horse battery staple";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let cost = PasswordConfig::default();
    let mut hashes = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let hash = hash_password(&cost, PASSWORD).unwrap();
        hashes.push(started.elapsed());
        let started = Instant::now();
        assert!(verify_password(PASSWORD, &hash).unwrap());
        hashes.push(started.elapsed());
    }
    hashes.sort();
    println!(
        "argon2id m={} KiB t={} p={}: hash/verify p50 {:.1} ms, max {:.1} ms",
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        ms(percentile(&hashes, 50.0)),
        ms(percentile(&hashes, 100.0)),
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(dir.path().join("bench.db").to_str().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
        .create_user(NewUser {
            email: "bench@example.com".to_owned(),
            password_hash: Some(hash_password(&cost, PASSWORD).unwrap()),
            is_admin: false,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs: 8,
        })
        .await
        .unwrap();
    let mut config = ServerConfig::default();
    config.auth.password = cost;
    // Lockout off, so that 100 wrong passwords keep doing the full verification.
    config.auth.lockout.max_failures = 0;
    let (_, metrics) = build_metrics_recorder();
    let state = AppState::new(
        store,
        ResultStore::local(&dir.path().join("results")).unwrap(),
        Arc::new(HttpFetcher::new(HttpFetcherConfig::default()).unwrap()),
        Arc::new(tokio::sync::Notify::new()),
        config,
        metrics,
    );
    let app = router(state);
    let body = serde_json::json!({"email": "bench@example.com", "password": PASSWORD}).to_string();
    let login = |body: String| {
        Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    // One warm-up login (the signing secret is generated on first use).
    let response = app.clone().oneshot(login(body.clone())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut latencies = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let started = Instant::now();
        let response = app.clone().oneshot(login(body.clone())).await.unwrap();
        latencies.push(started.elapsed());
        assert_eq!(response.status(), StatusCode::OK);
    }
    let unknown =
        serde_json::json!({"email": "nobody@example.com", "password": PASSWORD}).to_string();
    let mut refused = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let started = Instant::now();
        let response = app.clone().oneshot(login(unknown.clone())).await.unwrap();
        refused.push(started.elapsed());
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let wrong = serde_json::json!({"email": "bench@example.com", "password": "wrong password!"})
        .to_string();
    let mut wrong_password = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let started = Instant::now();
        let response = app.clone().oneshot(login(wrong.clone())).await.unwrap();
        wrong_password.push(started.elapsed());
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    latencies.sort();
    refused.sort();
    wrong_password.sort();
    println!(
        "{LOGINS} logins (SQLite): p50 {:.1} ms, p99 {:.1} ms; unknown e-mail: p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&refused, 50.0)),
        ms(percentile(&refused, 99.0)),
    );
    println!(
        "wrong password: p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&wrong_password, 50.0)),
        ms(percentile(&wrong_password, 99.0)),
    );
}
