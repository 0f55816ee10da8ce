//! The error envelope for malformed input and unknown routes, and request ids.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use selextract_server::ServerConfig;

use crate::support::{TestApp, both_backends, catalogue_spec, request};

both_backends!(an_oversized_body_is_413_in_the_envelope);
async fn an_oversized_body_is_413_in_the_envelope() {
    let config = ServerConfig {
        request_body_limit: 1024,
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let user = app.user("a@example.com").await;
    let mut spec = catalogue_spec("https://shop.example/");
    spec["name"] = serde_json::json!("x".repeat(4096));
    let response = app.post("/api/v1/tasks", &user.key, spec).await;
    response.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

both_backends!(the_default_body_limit_is_two_mebibytes);
async fn the_default_body_limit_is_two_mebibytes() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let mut spec = catalogue_spec("https://shop.example/");
    spec["name"] = serde_json::json!("x".repeat(2 * 1024 * 1024 + 1));
    app.post("/api/v1/tasks", &user.key, spec)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

both_backends!(malformed_json_is_400_invalid_request_in_the_envelope);
async fn malformed_json_is_400_invalid_request_in_the_envelope() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/tasks")
        .header("authorization", format!("Bearer {}", user.key))
        .header("content-type", "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    let response = app.send(request).await;
    let error = response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON"),
        "{error}"
    );
}

both_backends!(every_response_has_a_request_id_and_a_valid_incoming_one_is_echoed);
async fn every_response_has_a_request_id_and_a_valid_incoming_one_is_echoed() {
    let app = TestApp::new().await;
    let generated = app.send(request(Method::GET, "/health", None, None)).await;
    let id = generated.header("x-request-id").expect("generated id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let echoed = Request::builder()
        .uri("/health")
        .header("x-request-id", "client-abc.123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.send(echoed).await.header("x-request-id"),
        Some("client-abc.123")
    );

    let error = Request::builder()
        .uri("/api/v1/tasks")
        .header("x-request-id", "trace-42")
        .body(Body::empty())
        .unwrap();
    let response = app.send(error).await;
    assert_eq!(response.header("x-request-id"), Some("trace-42"));
    assert_eq!(response.json()["request_id"], "trace-42");

    // An id with unsafe characters is replaced, not echoed.
    let unsafe_id = Request::builder()
        .uri("/health")
        .header("x-request-id", "a b<script>")
        .body(Body::empty())
        .unwrap();
    let replaced = app.send(unsafe_id).await;
    assert_ne!(replaced.header("x-request-id"), Some("a b<script>"));
    assert!(replaced.header("x-request-id").is_some());
}

both_backends!(unknown_routes_and_methods_answer_in_the_envelope);
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let app = TestApp::new().await;
    let response = app
        .send(request(Method::GET, "/api/v1/nothing-here", None, None))
        .await;
    let error = response.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(error["message"].as_str().unwrap().contains("no route"));
    let response = app
        .send(request(Method::PATCH, "/api/v1/tasks", None, None))
        .await;
    response.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

both_backends!(each_error_variant_maps_to_its_stable_code_and_status);
async fn each_error_variant_maps_to_its_stable_code_and_status() {
    use axum::response::IntoResponse;
    use selextract_server::ApiError;
    let cases = [
        (ApiError::Validation(vec![]), 422, "validation_failed"),
        (ApiError::InvalidRequest("x".into()), 400, "invalid_request"),
        (ApiError::Unauthorized("x".into()), 401, "unauthorized"),
        (
            ApiError::InsufficientScope("tasks:write"),
            403,
            "insufficient_scope",
        ),
        (ApiError::NotFound("x".into()), 404, "not_found"),
        (ApiError::Conflict("x".into()), 409, "conflict"),
        (
            ApiError::PayloadTooLarge("x".into()),
            413,
            "payload_too_large",
        ),
        (
            ApiError::InsufficientComputeUnits {
                needed: 1,
                available: 0,
            },
            402,
            "insufficient_compute_units",
        ),
        (
            ApiError::RateLimited {
                retry_after_secs: 7,
            },
            429,
            "rate_limited",
        ),
        (
            ApiError::TooManyStreams("x".into()),
            429,
            "too_many_streams",
        ),
        (ApiError::Maintenance("x".into()), 503, "maintenance"),
        (ApiError::Unavailable("x".into()), 503, "unavailable"),
        (ApiError::internal("x"), 500, "internal"),
    ];
    for (error, status, code) in cases {
        let (actual_status, actual_code) = error.status_and_code();
        assert_eq!((actual_status.as_u16(), actual_code), (status, code));
    }
    let unavailable = ApiError::Unavailable("database is locked".into()).into_response();
    assert_eq!(unavailable.headers()["retry-after"], "5");
    let limited = ApiError::RateLimited {
        retry_after_secs: 7,
    }
    .into_response();
    assert_eq!(limited.headers()["retry-after"], "7");
    let streams = ApiError::TooManyStreams("x".into()).into_response();
    assert_eq!(streams.headers()["retry-after"], "10");
}

both_backends!(a_500_never_shows_its_cause);
async fn a_500_never_shows_its_cause() {
    use axum::response::IntoResponse;
    let response =
        selextract_server::ApiError::internal("password=hunter2 in /etc/secret").into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("\"error\":\"internal\""), "{text}");
}
