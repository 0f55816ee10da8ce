//! `/health`, `/ready`, `/metrics` and the OpenAPI document.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use selextract_server::{MetricsConfig, ServerConfig, openapi, served_routes};

use crate::support::{TestApp, both_backends, from_peer, request};

both_backends!(health_answers_ok_with_the_version);
async fn health_answers_ok_with_the_version() {
    let app = TestApp::new().await;
    let response = app.send(request(Method::GET, "/health", None, None)).await;
    assert_eq!(response.status, StatusCode::OK);
    let json = response.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
}

both_backends!(ready_checks_database_results_and_queue);
async fn ready_checks_database_results_and_queue() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    app.started_task(&user.key, "queued").await;
    let response = app.send(request(Method::GET, "/ready", None, None)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let json = response.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["checks"]["database"]["status"], "ok");
    assert_eq!(json["checks"]["results"]["status"], "ok");
    assert_eq!(json["checks"]["queue"]["status"], "ok");
    assert_eq!(json["checks"]["queue"]["depth"]["queued"], 1);
}

both_backends!(metrics_are_refused_to_a_disallowed_address_and_a_wrong_token);
async fn metrics_are_refused_to_a_disallowed_address_and_a_wrong_token() {
    let config = ServerConfig {
        metrics: MetricsConfig {
            bearer_token: Some("s3cret-token".into()),
            ..MetricsConfig::default()
        },
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config).await;
    // Only the ConnectInfo extension is set: no packet goes anywhere.
    let outsider = from_peer(
        request(Method::GET, "/metrics", None, None),
        "203.0.113.7:5000",
    );
    app.send(outsider)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let wrong = from_peer(
        request(Method::GET, "/metrics", Some("wrong-token"), None),
        "203.0.113.7:5000",
    );
    app.send(wrong)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let no_peer = request(Method::GET, "/metrics", None, None);
    app.send(no_peer)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");

    let right = from_peer(
        request(Method::GET, "/metrics", Some("s3cret-token"), None),
        "203.0.113.7:5000",
    );
    let response = app.send(right).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let loopback = from_peer(
        request(Method::GET, "/metrics", None, None),
        "127.0.0.1:5000",
    );
    assert_eq!(app.send(loopback).await.status, StatusCode::OK);
    let mapped = from_peer(
        request(Method::GET, "/metrics", None, None),
        "[::ffff:127.0.0.1]:5000",
    );
    assert_eq!(app.send(mapped).await.status, StatusCode::OK);
}

both_backends!(http_metrics_are_labelled_by_route_template_never_by_raw_path);
async fn http_metrics_are_labelled_by_route_template_never_by_raw_path() {
    let app = TestApp::new().await;
    let user = app.user("metrics@example.com").await;
    let task_id = app.task(&user.key, "measured").await;
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{task_id}"), &user.key)
            .await
            .status,
        StatusCode::OK
    );
    let response = app
        .send(from_peer(
            request(Method::GET, "/metrics", None, None),
            "127.0.0.1:1",
        ))
        .await;
    let text = response.text();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains("route=\"/api/v1/tasks/{id}\"")
            && l.contains("method=\"GET\"")
            && l.contains("status=\"200\"")),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds"), "{text}");
    assert!(text.contains("selextract_queue_depth"), "{text}");
    assert!(!text.contains(&task_id), "no raw ids in labels");
}

both_backends!(the_openapi_document_lists_exactly_the_served_routes);
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let app = TestApp::new().await;
    let response = app
        .send(request(Method::GET, "/api/v1/openapi.json", None, None))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let document = response.json();
    assert_eq!(document, openapi());
    assert_eq!(document["openapi"], "3.1.0");

    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["operationId"].is_string(), "{method} {path}");
            documented.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<_> = served_routes().into_iter().collect();
    assert_eq!(documented, served);

    // The brief's routes, written out independently of the route table.
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/api/v1/tasks"),
        ("POST", "/api/v1/tasks"),
        ("GET", "/api/v1/tasks/{id}"),
        ("PUT", "/api/v1/tasks/{id}"),
        ("DELETE", "/api/v1/tasks/{id}"),
        ("POST", "/api/v1/tasks/{id}/runs"),
        ("POST", "/api/v1/tasks/{id}/cancel"),
        ("POST", "/api/v1/tasks/{id}/retry"),
        // Schedules (issue 12).
        ("GET", "/api/v1/tasks/{id}/schedule"),
        ("POST", "/api/v1/tasks/{id}/schedule/pause"),
        ("POST", "/api/v1/tasks/{id}/schedule/resume"),
        ("GET", "/api/v1/tasks/{id}/logs"),
        ("GET", "/api/v1/tasks/{id}/results"),
        ("GET", "/api/v1/tasks/{id}/download"),
        ("GET", "/api/v1/tasks/{id}/events"),
        ("GET", "/api/v1/tasks/{id}/runs"),
        ("GET", "/api/v1/runs/{id}"),
        ("DELETE", "/api/v1/runs/{id}"),
        ("GET", "/api/v1/runs/{id}/records"),
        ("GET", "/api/v1/runs/{id}/results"),
        ("GET", "/api/v1/runs/{id}/logs"),
        // Change detection and its feed (issue 12).
        ("GET", "/api/v1/runs/{id}/changes"),
        ("GET", "/api/v1/tasks/{id}/changes"),
        ("GET", "/api/v1/tasks/{id}/changes.atom"),
        ("GET", "/api/v1/tasks/{id}/feed-tokens"),
        ("POST", "/api/v1/tasks/{id}/feed-tokens"),
        ("DELETE", "/api/v1/tasks/{id}/feed-tokens/{token_id}"),
        ("POST", "/api/v1/preview"),
        ("GET", "/api/v1/api-keys"),
        ("POST", "/api/v1/api-keys"),
        ("DELETE", "/api/v1/api-keys/{id}"),
        ("GET", "/api/v1/admin/workers"),
        ("GET", "/api/v1/admin/queue"),
        ("GET", "/api/v1/admin/users"),
        ("GET", "/api/v1/admin/users/{id}"),
        ("PUT", "/api/v1/admin/users/{id}"),
        ("GET", "/api/v1/admin/audit"),
        ("GET", "/api/v1/auth/audit"),
        ("GET", "/api/v1/deliveries"),
        ("GET", "/api/v1/deliveries/{id}"),
        ("POST", "/api/v1/deliveries/{id}/redeliver"),
        ("GET", "/api/v1/account/webhook-secret"),
        ("POST", "/api/v1/account/webhook-secret/rotate"),
        ("GET", "/api/v1/tasks/{id}/notify/targets"),
        ("POST", "/api/v1/tasks/{id}/notify/targets/enable"),
        ("GET", "/api/v1/analytics/usage"),
        ("GET", "/api/v1/analytics/dashboard"),
        ("GET", "/api/v1/billing/plans"),
        ("GET", "/api/v1/billing/subscription"),
        ("POST", "/api/v1/billing/create-checkout"),
        ("PUT", "/api/v1/billing/subscription"),
        ("POST", "/api/v1/billing/subscription/cancel"),
        ("POST", "/api/v1/billing/subscription/resume"),
        ("POST", "/api/v1/billing/portal"),
        ("GET", "/api/v1/billing/invoices"),
        ("GET", "/api/v1/billing/usage"),
        ("POST", "/api/v1/billing/webhooks/lemon-squeezy"),
        ("POST", "/api/v1/auth/signup"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/me"),
        ("PUT", "/api/v1/auth/me"),
        ("DELETE", "/api/v1/auth/account"),
        ("POST", "/api/v1/auth/password-reset"),
        ("POST", "/api/v1/auth/password-reset/confirm"),
        ("POST", "/api/v1/auth/verify-email/request"),
        ("POST", "/api/v1/auth/verify-email/confirm"),
        ("POST", "/api/v1/admin/invitations"),
        ("GET", "/account/reset-password"),
        ("POST", "/account/reset-password"),
        ("GET", "/account/verify-email"),
        ("POST", "/account/verify-email"),
        ("GET", "/account/accept-invitation"),
        ("POST", "/account/accept-invitation"),
        ("GET", "/api/v1/auth/oidc"),
        ("GET", "/api/v1/auth/oidc/{provider}"),
        ("GET", "/api/v1/auth/oidc/{provider}/callback"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(documented, expected);

    // Every documented operation is really routed: none falls through to the fallback
    // ("no route") or is refused as a wrong method.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        let response = app
            .send(request(method.parse().unwrap(), &concrete, None, None))
            .await;
        assert_ne!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if response.status == StatusCode::NOT_FOUND {
            assert!(
                !response.text().contains("no route"),
                "{method} {path} is not routed"
            );
        }
    }
    // And a route outside the document is not served.
    let response = app
        .send(request(Method::GET, "/api/v1/runs", None, None))
        .await;
    assert!(response.text().contains("no route"));
}
