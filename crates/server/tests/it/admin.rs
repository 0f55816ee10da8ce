//! Admin routes: the live workers and the queue for admin users; `403 forbidden` for others.

use axum::http::StatusCode;
use selextract_store::{NewUser, WorkerHeartbeat};

use crate::support::{ALL_SCOPES, TestApp, both_backends};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn admin_key(app: &TestApp) -> String {
    let admin = app
        .store
        .create_user(NewUser {
            email: "root@example.com".to_owned(),
            password_hash: None,
            is_admin: true,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs: 8,
        })
        .await
        .unwrap();
    app.key_for(&admin.id, ALL_SCOPES, None).await
}

async fn heartbeat(app: &TestApp, id: &str, age_ms: i64) {
    let now = now_ms();
    app.store
        .upsert_worker_heartbeat(&WorkerHeartbeat {
            id: id.to_owned(),
            host: "box-1".to_owned(),
            pid: 4242,
            started_at_ms: now - 60_000,
            heartbeat_at_ms: now - age_ms,
            active_runs: 2,
            processed: 17,
        })
        .await
        .unwrap();
}

both_backends!(an_admin_sees_the_live_workers_and_not_the_dead_ones);
async fn an_admin_sees_the_live_workers_and_not_the_dead_ones() {
    let app = TestApp::new().await;
    let key = admin_key(&app).await;
    heartbeat(&app, "worker-live", 1_000).await;
    heartbeat(&app, "worker-gone", 10 * 60_000).await;

    let response = app.get("/api/v1/admin/workers", &key).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let json = response.json();
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{json}");
    let worker = &items[0];
    assert_eq!(worker["id"], "worker-live");
    assert_eq!(worker["host"], "box-1");
    assert_eq!(worker["active_runs"], 2);
    assert_eq!(worker["processed"], 17);
    let age = worker["heartbeat_age_seconds"].as_f64().unwrap();
    assert!((1.0..30.0).contains(&age), "{age}");
}

both_backends!(an_admin_sees_the_queue_by_state);
async fn an_admin_sees_the_queue_by_state() {
    let app = TestApp::new().await;
    let key = admin_key(&app).await;
    app.started_task(&key, "one").await;
    app.started_task(&key, "two").await;

    let response = app.get("/api/v1/admin/queue", &key).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let json = response.json();
    assert_eq!(json["depth"]["queued"], 2, "{json}");
    assert_eq!(json["depth"]["running"], 0, "{json}");
    assert!(json["oldest_queued_age_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(json["last_hour"]["finished_total"], 0);
    assert!(json["last_hour"]["success_rate"].is_null());
    assert_eq!(json["compute_units_today"], 0);
}

both_backends!(a_user_who_is_not_an_admin_is_refused_the_admin_routes);
async fn a_user_who_is_not_an_admin_is_refused_the_admin_routes() {
    let app = TestApp::new().await;
    let user = app.user("someone@example.com").await;
    heartbeat(&app, "worker-live", 1_000).await;
    for path in ["/api/v1/admin/workers", "/api/v1/admin/queue"] {
        let response = app.get(path, &user.key).await;
        let json = response.assert_error(StatusCode::FORBIDDEN, "forbidden");
        assert!(!json.to_string().contains("worker-live"));
    }
}

both_backends!(the_admin_routes_need_an_api_key);
async fn the_admin_routes_need_an_api_key() {
    let app = TestApp::new().await;
    let response = app
        .call(axum::http::Method::GET, "/api/v1/admin/queue", None, None)
        .await;
    response.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}
