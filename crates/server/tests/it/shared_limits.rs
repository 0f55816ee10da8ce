//! API rate limits shared through Redis: two API instances (two routers over one store, each
//! with its own caches and limiter, as two processes would have) enforce one budget per key;
//! without Redis each limits on its own and the fallback is counted.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use selextract_fetch::{HttpFetcher, HttpFetcherConfig};
use selextract_server::{
    AppState, InMemoryRateLimiter, RateLimiter, RedisRateLimiter, ServerConfig, router,
};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::support::{TestApp, from_peer, request};
use selextract_testkit::{TestRedis, free_port};

fn ten_per_minute() -> ServerConfig {
    ServerConfig {
        rate_limit_per_minute: 10,
        ..ServerConfig::default()
    }
}

/// A second API instance over the app's store: fresh key cache, its own limiter.
fn another_instance(app: &TestApp, limiter: Arc<dyn RateLimiter>) -> Router {
    let state = AppState::new(
        app.store.clone(),
        app.results.clone(),
        Arc::new(HttpFetcher::new(HttpFetcherConfig::default()).unwrap()),
        Arc::new(Notify::new()),
        ten_per_minute(),
        app.state.metrics.clone(),
    )
    .with_rate_limiter(limiter);
    router(state)
}

/// Sends `count` authenticated reads through `instance`; returns their statuses.
async fn list_tasks(instance: &Router, key: &str, count: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        let response = instance
            .clone()
            .oneshot(request(Method::GET, "/api/v1/tasks", Some(key), None))
            .await
            .unwrap();
        statuses.push(response.status());
    }
    statuses
}

fn too_many(statuses: &[StatusCode]) -> usize {
    statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count()
}

#[tokio::test]
async fn two_api_instances_on_one_redis_enforce_one_budget_per_key() {
    let redis = TestRedis::start();
    let app = TestApp::with_config(ten_per_minute()).await;
    let user = app.user("shared@example.com").await;
    let limiter_a = Arc::new(RedisRateLimiter::new(&redis.url()).unwrap());
    let limiter_b = Arc::new(RedisRateLimiter::new(&redis.url()).unwrap());
    let a = another_instance(&app, limiter_a.clone());
    let b = another_instance(&app, limiter_b.clone());

    let via_a = list_tasks(&a, &user.key, 6).await;
    let via_b = list_tasks(&b, &user.key, 6).await;

    assert_eq!(too_many(&via_a), 0, "{via_a:?}");
    assert_eq!(too_many(&via_b), 2, "{via_b:?}");
    assert!(via_b[..4].iter().all(|s| *s == StatusCode::OK), "{via_b:?}");
    assert!(limiter_a.link().is_up() && limiter_b.link().is_up());
    assert_eq!(
        limiter_a.link().fallbacks() + limiter_b.link().fallbacks(),
        0
    );

    // The headers tell the shared story too: the key's budget is spent, whoever asks.
    let response = a
        .clone()
        .oneshot(request(Method::GET, "/api/v1/tasks", Some(&user.key), None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn without_redis_each_instance_limits_on_its_own() {
    // The control for the test above: in-memory limiters do not share a budget.
    let app = TestApp::with_config(ten_per_minute()).await;
    let user = app.user("local@example.com").await;
    let a = another_instance(&app, Arc::new(InMemoryRateLimiter::default()));
    let b = another_instance(&app, Arc::new(InMemoryRateLimiter::default()));
    let via_a = list_tasks(&a, &user.key, 6).await;
    let via_b = list_tasks(&b, &user.key, 6).await;
    assert_eq!(too_many(&via_a) + too_many(&via_b), 0);
}

#[tokio::test]
async fn requests_are_served_while_redis_is_down_and_the_fallback_is_counted() {
    let app = TestApp::with_config(ten_per_minute()).await;
    let user = app.user("fallback@example.com").await;
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let limiter = Arc::new(RedisRateLimiter::new(&dead).unwrap());
    let instance = another_instance(&app, limiter.clone());

    let statuses = list_tasks(&instance, &user.key, 12).await;
    // Served, and still limited: by this process's own window.
    assert_eq!(too_many(&statuses), 2, "{statuses:?}");
    assert_eq!(limiter.link().fallbacks(), 12);
    assert!(!limiter.link().is_up());

    let metrics = instance
        .clone()
        .oneshot(from_peer(
            request(Method::GET, "/metrics", None, None),
            "127.0.0.1:40000",
        ))
        .await
        .unwrap();
    let body = axum::body::to_bytes(metrics.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    let fallback_line = text
        .lines()
        .find(|line| line.starts_with("selextract_redis_fallback_total{component=\"rate_limit\"}"))
        .unwrap_or_else(|| panic!("no fallback counter in:\n{text}"));
    let value: f64 = fallback_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= 12.0, "{fallback_line}");
    assert!(
        text.contains("selextract_redis_up{component=\"rate_limit\"}"),
        "{text}"
    );

    // Still ready (limits fall back to this process), and the degradation is reported.
    let ready = instance
        .clone()
        .oneshot(request(Method::GET, "/ready", None, None))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body = axum::body::to_bytes(ready.into_body(), usize::MAX)
        .await
        .unwrap();
    let ready: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ready["checks"]["redis"]["status"], "degraded", "{ready}");
}

#[tokio::test]
async fn shared_limits_resume_when_redis_comes_back() {
    let mut redis = TestRedis::start();
    let port = redis.port();
    let app = TestApp::with_config(ten_per_minute()).await;
    let user = app.user("resume@example.com").await;
    let limiter = Arc::new(RedisRateLimiter::new(&redis.url()).unwrap());
    let instance = another_instance(&app, limiter.clone());

    assert_eq!(list_tasks(&instance, &user.key, 1).await, [StatusCode::OK]);
    assert!(limiter.link().is_up());
    redis.stop();
    assert_eq!(list_tasks(&instance, &user.key, 1).await, [StatusCode::OK]);
    assert!(!limiter.link().is_up());

    let redis = TestRedis::start_on(port);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(list_tasks(&instance, &user.key, 1).await, [StatusCode::OK]);
    assert!(limiter.link().is_up());
    // The request was counted in Redis again (a fresh server: the first of its window).
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("selextract:rate:*")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let count: u64 = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(count, 1);
}
