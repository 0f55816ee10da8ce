//! Tenant isolation: another user's ids are "not found" on every route that takes an id,
//! and lists only ever show the caller's own rows.

use axum::http::{Method, StatusCode};
use selextract_server::served_routes;
use serde_json::{Value, json};

use crate::login_support::{
    Browser, PASSWORD, accounts_config, login, token_login, user_with_password,
};
use crate::support::{TestApp, TestResponse, both_backends, catalogue_spec};

/// How Bob proves who he is in the sweep: each of the three credentials the API accepts.
enum Credential {
    ApiKey(String),
    Session(Browser),
    Jwt(String),
}

impl Credential {
    async fn call(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> TestResponse {
        match self {
            Credential::ApiKey(token) | Credential::Jwt(token) => {
                app.call(method, path, Some(token), body).await
            }
            // With the CSRF token, so that what is tested is the ownership check.
            Credential::Session(browser) => browser.send(app, method, path, body).await,
        }
    }
}

both_backends!(every_route_with_an_id_answers_404_for_another_users_id);
async fn every_route_with_an_id_answers_404_for_another_users_id() {
    let app = TestApp::with_config(accounts_config()).await;
    let alice = app.user("alice@example.com").await;
    let bob_id = user_with_password(&app, "bob@example.com", PASSWORD).await;
    let bob_key = app.key_for(&bob_id, crate::support::ALL_SCOPES, None).await;
    let bob_session = login(&app, "bob@example.com", PASSWORD).await;
    let (bob_jwt, _) = token_login(&app, "bob@example.com", PASSWORD).await;
    let credentials = [
        Credential::ApiKey(bob_key),
        Credential::Session(bob_session),
        Credential::Jwt(bob_jwt),
    ];
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
        // Administrators' routes refuse a non-administrator (403) before any lookup; that
        // refusal is tested with them (admin_users.rs).
        .filter(|(_, path)| !path.starts_with("/api/v1/admin/"))
        .collect();
    assert!(routes_with_ids.len() >= 15, "{routes_with_ids:?}");
    for ((method, template), bob) in routes_with_ids
        .iter()
        .flat_map(|route| credentials.iter().map(move |bob| (route, bob)))
    {
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
        let response = bob.call(&app, method.clone(), &path, body).await;
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
