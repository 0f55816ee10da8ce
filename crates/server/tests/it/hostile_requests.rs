//! Requests built to hurt the API process: bodies far over the limit (refused after reading
//! no more than the limit), JSON nested 100,000 deep, keys and headers of a mebibyte, and
//! paging parameters at and past their bounds. After each, the process still answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use futures::StreamExt;
use selextract_server::serve;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::support::{TestApp, both_backends, request};

const MIB: usize = 1024 * 1024;

/// Every route that reads a JSON body, with a task id substituted where the path needs one,
/// and whether it accepts any JSON value (a task spec in one of several shapes) rather than
/// one fixed shape, which serde refuses at the first unexpected token.
fn json_routes(task_id: &str) -> Vec<(Method, String, bool)> {
    vec![
        (Method::POST, "/api/v1/tasks".to_owned(), true),
        (Method::PUT, format!("/api/v1/tasks/{task_id}"), true),
        (Method::POST, format!("/api/v1/tasks/{task_id}/runs"), false),
        (Method::POST, "/api/v1/preview".to_owned(), true),
        (Method::POST, "/api/v1/api-keys".to_owned(), false),
    ]
}

fn with_body(method: Method, path: &str, key: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

/// A 50 MiB JSON-looking body produced lazily, 1 MiB at a time and without a
/// `Content-Length`, that counts how many bytes the server pulled from it.
fn fifty_mebibyte_body(pulled: Arc<AtomicUsize>) -> Body {
    let chunks = futures::stream::iter(0..50).map(move |index| {
        let chunk = if index == 0 {
            let mut first = b"{\"name\": \"".to_vec();
            first.resize(MIB, b'x');
            first
        } else {
            vec![b'x'; MIB]
        };
        pulled.fetch_add(chunk.len(), Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from(chunk))
    });
    Body::from_stream(chunks)
}

async fn assert_healthy(app: &TestApp) {
    let health = app.send(request(Method::GET, "/health", None, None)).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text());
}

both_backends!(a_fifty_mebibyte_body_is_refused_with_413_after_reading_at_most_the_limit);
async fn a_fifty_mebibyte_body_is_refused_with_413_after_reading_at_most_the_limit() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let task_id = app.task(&user.key, "target").await;
    for (method, path, _) in json_routes(&task_id) {
        let pulled = Arc::new(AtomicUsize::new(0));
        let body = fifty_mebibyte_body(Arc::clone(&pulled));
        let response = app
            .send(with_body(method.clone(), &path, &user.key, body))
            .await;
        response.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        // The default limit is 2 MiB; reading stops within one chunk past it.
        let read = pulled.load(Ordering::SeqCst);
        assert!(read <= 3 * MIB, "{method} {path} read {read} bytes");
    }
    assert_healthy(&app).await;
}

/// `depth` nested arrays: `[[[…]]]`.
fn nested_arrays(depth: usize) -> String {
    let mut text = "[".repeat(depth);
    text.push_str(&"]".repeat(depth));
    text
}

/// `depth` nested objects: `{"a":{"a":…{}…}}`.
fn nested_objects(depth: usize) -> String {
    let mut text = "{\"a\":".repeat(depth);
    text.push_str("{}");
    text.push_str(&"}".repeat(depth));
    text
}

both_backends!(json_nested_a_hundred_thousand_deep_is_a_400_on_every_json_route);
async fn json_nested_a_hundred_thousand_deep_is_a_400_on_every_json_route() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let task_id = app.task(&user.key, "target").await;
    for body in [nested_arrays(100_000), nested_objects(100_000)] {
        for (method, path, any_value) in json_routes(&task_id) {
            let response = app
                .send(with_body(
                    method.clone(),
                    &path,
                    &user.key,
                    Body::from(body.clone()),
                ))
                .await;
            let error = response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
            // Where any value is accepted, the parser goes down until its depth limit stops it.
            let message = error["message"].as_str().unwrap();
            assert!(
                !any_value || message.contains("recursion limit"),
                "{method} {path}: {error}"
            );
        }
    }
    assert_healthy(&app).await;
}

both_backends!(a_mebibyte_long_api_key_is_refused_as_invalid);
async fn a_mebibyte_long_api_key_is_refused_as_invalid() {
    let app = TestApp::new().await;
    let huge = format!("sk_{}", "a".repeat(MIB));
    let bearer = app
        .send(request(Method::GET, "/api/v1/tasks", Some(&huge), None))
        .await;
    bearer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let header = Request::builder()
        .uri("/api/v1/tasks")
        .header("x-api-key", &huge)
        .body(Body::empty())
        .unwrap();
    app.send(header)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_healthy(&app).await;
}

both_backends!(a_mebibyte_header_over_tcp_is_refused_and_the_server_keeps_serving);
async fn a_mebibyte_header_over_tcp_is_refused_and_the_server_keeps_serving() {
    let app = TestApp::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, app.state.clone(), shutdown.clone()));

    let mut attacker = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(MIB)
    );
    // The server may stop reading and close once the head is too large, so the write can
    // fail; what matters is that /health was not answered as if the header were fine.
    let _ = attacker.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), attacker.read_to_end(&mut answer))
        .await
        .expect("the server answers or closes");
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), client.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

both_backends!(paging_parameters_out_of_bounds_are_422_and_unknown_parameters_are_ignored);
async fn paging_parameters_out_of_bounds_are_422_and_unknown_parameters_are_ignored() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let (task_id, run_id) = app.started_task(&user.key, "paged").await;
    let listings = [
        "/api/v1/tasks".to_owned(),
        format!("/api/v1/tasks/{task_id}/runs"),
        format!("/api/v1/tasks/{task_id}/logs"),
        format!("/api/v1/runs/{run_id}/logs"),
        "/api/v1/api-keys".to_owned(),
    ];
    let too_long = "9".repeat(10_000);
    for listing in &listings {
        for bad in [
            "0",
            "101",
            "-1",
            "18446744073709551616",
            "1e2",
            "abc",
            &too_long,
        ] {
            let response = app
                .get(&format!("{listing}?page_size={bad}"), &user.key)
                .await;
            let error =
                response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(error["details"][0]["field"], "page_size", "{listing} {bad}");
        }
        for bad in ["0", "-1", "4294967296", &too_long] {
            let response = app.get(&format!("{listing}?page={bad}"), &user.key).await;
            let error =
                response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(error["details"][0]["field"], "page", "{listing} {bad}");
        }
        // The last page a u32 can name is far past the end, and empty rather than an overflow.
        let last = app
            .get(
                &format!("{listing}?page=4294967295&page_size=100"),
                &user.key,
            )
            .await;
        assert_eq!(last.status, StatusCode::OK, "{listing}: {}", last.text());
        assert_eq!(last.json()["items"], serde_json::json!([]), "{listing}");
        // Unknown parameters (cache busters, tracking tags) are ignored, however many.
        let unknown: String = (0..500).map(|i| format!("&utm_{i}=x")).collect();
        let ignored = app
            .get(&format!("{listing}?page_size=1{unknown}"), &user.key)
            .await;
        assert_eq!(
            ignored.status,
            StatusCode::OK,
            "{listing}: {}",
            ignored.text()
        );
        assert_eq!(ignored.json()["page_size"], 1, "{listing}");
    }
    let records = app
        .get(
            &format!("/api/v1/runs/{run_id}/records?limit=1001"),
            &user.key,
        )
        .await;
    records.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let records = app
        .get(
            &format!("/api/v1/runs/{run_id}/records?offset=-1"),
            &user.key,
        )
        .await;
    records.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let far = app
        .get(
            &format!(
                "/api/v1/runs/{run_id}/records?offset={}&limit=1000",
                u64::MAX
            ),
            &user.key,
        )
        .await;
    assert_eq!(far.status, StatusCode::OK, "{}", far.text());
    assert_eq!(far.json()["items"], serde_json::json!([]));
    assert_healthy(&app).await;
}

both_backends!(a_selector_nested_two_thousand_deep_is_a_422_for_tasks_and_previews_alike);
async fn a_selector_nested_two_thousand_deep_is_a_422_for_tasks_and_previews_alike() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let xpath = format!("{}//a{}", "(".repeat(2_000), ")".repeat(2_000));
    let css = format!("{}a", ":not(".repeat(2_000)) + &")".repeat(2_000);
    for (selector, selector_type) in [(xpath, "xpath"), (css, "css")] {
        let spec = serde_json::json!({
            "name": "deep",
            "start_urls": ["https://shop.example/"],
            "fields": [{"name": "f", "selector": selector, "selector_type": selector_type}],
            "start": false
        });
        for path in ["/api/v1/tasks", "/api/v1/preview"] {
            let response = app.post(path, &user.key, spec.clone()).await;
            let error =
                response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(
                error["details"][0]["field"], "fields[0].selector",
                "{path} {selector_type}: {error}"
            );
        }
    }
    assert_healthy(&app).await;
}
