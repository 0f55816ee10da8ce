//! Tenant isolation: another user's ids are "not found" on every route that takes an id,
//! and lists only ever show the caller's own rows.

use axum::http::{Method, StatusCode};
use selextract_server::served_routes;
use serde_json::json;

use crate::support::{TestApp, both_backends, catalogue_spec};

both_backends!(every_route_with_an_id_answers_404_for_another_users_id);
async fn every_route_with_an_id_answers_404_for_another_users_id() {
    let app = TestApp::new().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (task_id, run_id) = app.started_task(&alice.key, "Alice's").await;
    let key = app
        .post(
            "/api/v1/api-keys",
            &alice.key,
            json!({"name": "k", "scopes": ["tasks:read"]}),
        )
        .await
        .json();
    let key_id = key["id"].as_str().unwrap().to_owned();

    let routes_with_ids: Vec<_> = served_routes()
        .into_iter()
        .filter(|(_, path)| path.contains("{id}"))
        .collect();
    assert!(routes_with_ids.len() >= 15, "{routes_with_ids:?}");
    for (method, template) in &routes_with_ids {
        let id = if template.starts_with("/api/v1/runs/") {
            &run_id
        } else if template.starts_with("/api/v1/api-keys/") {
            &key_id
        } else {
            &task_id
        };
        let path = template.replace("{id}", id);
        let method: Method = method.parse().unwrap();
        let body = match method {
            Method::PUT => Some(catalogue_spec("https://bob.example/")),
            Method::POST => Some(json!({})),
            _ => None,
        };
        let response = app.call(method.clone(), &path, Some(&bob.key), body).await;
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{method} {template}: {}",
            response.text()
        );
        assert_eq!(response.json()["error"], "not_found", "{method} {template}");
    }

    // Bob's attempts changed nothing of Alice's.
    let task = app
        .get(&format!("/api/v1/tasks/{task_id}"), &alice.key)
        .await
        .json();
    assert_eq!(task["name"], "Alice's");
    assert_eq!(task["latest_run"]["id"], run_id.as_str());
    assert_eq!(task["latest_run"]["state"], "queued");
    let runs = app
        .get(&format!("/api/v1/tasks/{task_id}/runs"), &alice.key)
        .await
        .json();
    assert_eq!(runs["total_count"], 1);
    let keys = app.get("/api/v1/api-keys", &alice.key).await.json();
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["revoked_at"].is_null())
    );
}

both_backends!(lists_never_show_another_users_rows);
async fn lists_never_show_another_users_rows() {
    let app = TestApp::new().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    app.started_task(&alice.key, "Shop A").await;
    app.task(&alice.key, "Shop B").await;
    for query in [
        "",
        "?name_contains=shop",
        "?status=queued",
        "?sort=name&order=asc",
        "?created_after=2000-01-01T00:00:00Z",
    ] {
        let listed = app
            .get(&format!("/api/v1/tasks{query}"), &bob.key)
            .await
            .json();
        assert_eq!(listed["total_count"], 0, "{query}: {listed}");
        assert_eq!(listed["items"], json!([]));
    }
    let keys = app.get("/api/v1/api-keys", &bob.key).await.json();
    assert_eq!(keys["total_count"], 1, "only Bob's own key");
    let alice_tasks = app.get("/api/v1/tasks", &alice.key).await.json();
    assert_eq!(alice_tasks["total_count"], 2);
}
