//! A NUL byte in an id of the path: PostgreSQL refuses NUL in text parameters, so an id that
//! reached a query unchecked was a 500 there (and a 404 on SQLite). Every route with an id
//! answers 404 on both backends, and the service keeps serving.

use axum::http::{Method, StatusCode};

use crate::support::{TestApp, both_backends, request};

both_backends!(a_nul_byte_in_any_path_id_is_a_404_on_both_backends);
async fn a_nul_byte_in_any_path_id_is_a_404_on_both_backends() {
    let app = TestApp::new().await;
    let user = app.user("nul@example.com").await;
    let (task_id, _run_id) = app.started_task(&user.key, "real").await;
    let nul = "%00";
    let tail = "a%00b";
    let routes = [
        (Method::GET, format!("/api/v1/tasks/{nul}")),
        (Method::GET, format!("/api/v1/tasks/{tail}/runs")),
        (Method::POST, format!("/api/v1/tasks/{nul}/runs")),
        (Method::GET, format!("/api/v1/tasks/{nul}/logs")),
        (Method::GET, format!("/api/v1/tasks/{nul}/schedule")),
        (Method::POST, format!("/api/v1/tasks/{nul}/schedule/pause")),
        (Method::GET, format!("/api/v1/tasks/{nul}/changes")),
        (Method::GET, format!("/api/v1/tasks/{nul}/feed-tokens")),
        (Method::POST, format!("/api/v1/tasks/{nul}/feed-tokens")),
        (
            Method::DELETE,
            format!("/api/v1/tasks/{task_id}/feed-tokens/{nul}"),
        ),
        (Method::GET, format!("/api/v1/tasks/{nul}/notify/targets")),
        (Method::GET, format!("/api/v1/runs/{nul}")),
        (Method::GET, format!("/api/v1/runs/{nul}/logs")),
        (Method::GET, format!("/api/v1/runs/{nul}/changes")),
        (Method::GET, format!("/api/v1/runs/{nul}/records")),
        (Method::POST, format!("/api/v1/tasks/{nul}/cancel")),
        (Method::POST, format!("/api/v1/tasks/{nul}/retry")),
        (Method::GET, format!("/api/v1/tasks/{nul}/results")),
        (Method::GET, format!("/api/v1/runs/{nul}/results")),
        (Method::DELETE, format!("/api/v1/tasks/{nul}")),
        (Method::GET, format!("/api/v1/deliveries/{nul}")),
        (Method::POST, format!("/api/v1/deliveries/{tail}/redeliver")),
        (Method::DELETE, format!("/api/v1/api-keys/{nul}")),
    ];
    let mut answers = Vec::new();
    for (method, path) in &routes {
        let response = app
            .send(request(method.clone(), path, Some(&user.key), None))
            .await;
        answers.push((method.clone(), path.clone(), response.status));
    }
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(_, _, status)| *status != StatusCode::NOT_FOUND)
        .collect();
    assert!(wrong.is_empty(), "not 404: {wrong:?}");
    // The feed, which takes no key: a NUL in the task id or the token.
    let feed = app
        .send(request(
            Method::GET,
            &format!("/api/v1/tasks/{nul}/changes.atom?token=feed_x%00"),
            None,
            None,
        ))
        .await;
    assert_eq!(feed.status, StatusCode::NOT_FOUND);
    // A NUL inside a query parameter or a JSON string is the caller's error, never a 500.
    let listed = app.get("/api/v1/deliveries?task_id=a%00b", &user.key).await;
    assert_ne!(listed.status, StatusCode::INTERNAL_SERVER_ERROR);
    let mut spec = crate::support::catalogue_spec("http://127.0.0.1:9/");
    spec["name"] = serde_json::Value::String("nul \u{0} inside".to_owned());
    spec["start"] = serde_json::Value::Bool(false);
    let created = app.post("/api/v1/tasks", &user.key, spec).await;
    assert!(
        created.status == StatusCode::CREATED || created.status == StatusCode::BAD_REQUEST,
        "{} {}",
        created.status,
        created.text()
    );
    let alive = app
        .get(&format!("/api/v1/tasks/{task_id}"), &user.key)
        .await;
    assert_eq!(alive.status, StatusCode::OK);
}
