//! API keys on requests: presence, validity, revocation, expiry, scopes and rate limits.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use selextract_server::ServerConfig;
use serde_json::json;

use crate::support::{TestApp, both_backends, catalogue_spec, request, send_via};

both_backends!(a_request_without_a_key_is_unauthorized);
async fn a_request_without_a_key_is_unauthorized() {
    let app = TestApp::new().await;
    let response = app.call(Method::GET, "/api/v1/tasks", None, None).await;
    response.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
}

both_backends!(unknown_and_malformed_keys_are_rejected);
async fn unknown_and_malformed_keys_are_rejected() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    // Same public id, wrong secret.
    let (prefix, _) = user.key.rsplit_once('_').unwrap();
    let wrong_secret = format!("{prefix}_{}", "x".repeat(32));
    for key in [
        wrong_secret.as_str(),
        "sk_000000000000_00000000000000000000000000000000",
        "sk_short",
        "garbage",
    ] {
        app.get("/api/v1/tasks", key)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_eq!(
        app.get("/api/v1/tasks", &user.key).await.status,
        StatusCode::OK
    );
}

both_backends!(the_key_may_come_in_the_x_api_key_header);
async fn the_key_may_come_in_the_x_api_key_header() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let request = Request::builder()
        .uri("/api/v1/tasks")
        .header("x-api-key", &user.key)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::OK);
}

both_backends!(a_read_only_key_cannot_write_and_the_error_names_the_scope);
async fn a_read_only_key_cannot_write_and_the_error_names_the_scope() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let reader = app.key_for(&user.id, &["tasks:read"], None).await;
    let response = app
        .post(
            "/api/v1/tasks",
            &reader,
            catalogue_spec("https://shop.example/"),
        )
        .await;
    let error = response.assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
    assert!(
        error["message"].as_str().unwrap().contains("tasks:write"),
        "{error}"
    );
    assert_eq!(
        app.get("/api/v1/tasks", &reader).await.status,
        StatusCode::OK
    );
    // Reading records needs results:read, which this key lacks.
    let (_, run_id) = app.started_task(&user.key, "t").await;
    app.get(&format!("/api/v1/runs/{run_id}/records"), &reader)
        .await
        .assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
    app.get("/api/v1/api-keys", &reader)
        .await
        .assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
}

both_backends!(a_revoked_key_is_refused_from_the_next_request_on);
async fn a_revoked_key_is_refused_from_the_next_request_on() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let created = app
        .post(
            "/api/v1/api-keys",
            &user.key,
            json!({"name": "ci", "scopes": ["tasks:read"]}),
        )
        .await
        .json();
    let key = created["key"].as_str().unwrap();
    // Used once, so it sits in the verified-key cache.
    assert_eq!(app.get("/api/v1/tasks", key).await.status, StatusCode::OK);
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", created["id"].as_str().unwrap()),
            Some(&user.key),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/tasks", key)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

both_backends!(an_expired_key_is_refused);
async fn an_expired_key_is_refused() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let expired = app.key_for(&user.id, &["tasks:read"], Some(1_000)).await;
    app.get("/api/v1/tasks", &expired)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

both_backends!(a_disabled_account_is_refused);
async fn a_disabled_account_is_refused() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    app.store.set_user_disabled(&user.id, true).await.unwrap();
    app.get("/api/v1/tasks", &user.key)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

both_backends!(a_revocation_or_a_disabled_account_reaches_every_process);
/// Two API processes on one database: a key that process B has verified and cached stops
/// working on B as soon as it is revoked through process A, or its owner is disabled from
/// the shell (the store directly, as `selextract user disable` does), and works again when
/// the owner is enabled. The credential revision is compared on every request here
/// (interval 0); by default once a second.
async fn a_revocation_or_a_disabled_account_reaches_every_process() {
    let config = ServerConfig {
        credential_check_interval: std::time::Duration::ZERO,
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config.clone()).await;
    let other = app.sibling(config);
    let user = app.user("a@example.com").await;
    let bystander = app.user("b@example.com").await;
    let on_other = |key: &str| {
        let request = request(Method::GET, "/api/v1/tasks", Some(key), None);
        let other = other.clone();
        async move { send_via(&other, request).await }
    };
    assert_eq!(on_other(&user.key).await.status, StatusCode::OK);
    assert_eq!(on_other(&bystander.key).await.status, StatusCode::OK);

    app.store.set_user_disabled(&user.id, true).await.unwrap();
    on_other(&user.key)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(on_other(&bystander.key).await.status, StatusCode::OK);
    app.store.set_user_disabled(&user.id, false).await.unwrap();
    assert_eq!(on_other(&user.key).await.status, StatusCode::OK);

    let keys = app.get("/api/v1/api-keys", &user.key).await.json();
    let key_id = keys["items"][0]["id"]
        .as_str()
        .expect("the key's id")
        .to_owned();
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{key_id}"),
            Some(&user.key),
            None,
        )
        .await;
    assert!(revoked.status.is_success(), "revoking: {}", revoked.text());
    on_other(&user.key)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(on_other(&bystander.key).await.status, StatusCode::OK);
}

both_backends!(authenticated_responses_carry_rate_limit_headers_and_the_limit_answers_429);
async fn authenticated_responses_carry_rate_limit_headers_and_the_limit_answers_429() {
    let config = ServerConfig {
        rate_limit_per_minute: 3,
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let user = app.user("a@example.com").await;
    let other = app.user("b@example.com").await;
    for remaining in ["2", "1", "0"] {
        let response = app.get("/api/v1/tasks", &user.key).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(response.header("x-ratelimit-remaining"), Some(remaining));
        let reset: u64 = response
            .header("x-ratelimit-reset")
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    let limited = app.get("/api/v1/tasks", &user.key).await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    // The limit is per key: another key is unaffected.
    assert_eq!(
        app.get("/api/v1/tasks", &other.key).await.status,
        StatusCode::OK
    );
}

both_backends!(unauthenticated_system_routes_carry_no_rate_limit_headers);
async fn unauthenticated_system_routes_carry_no_rate_limit_headers() {
    let app = TestApp::new().await;
    let response = app.send(request(Method::GET, "/health", None, None)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.header("x-ratelimit-limit").is_none());
}
