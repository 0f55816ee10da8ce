//! `POST /preview` against the fixture site on 127.0.0.1.

use axum::http::StatusCode;
use selextract_fetch::HttpFetcherConfig;
use selextract_server::ServerConfig;
use selextract_testkit::FixtureSite;
use serde_json::json;

use crate::support::{TestApp, both_backends, catalogue_spec};

both_backends!(preview_extracts_the_first_page_only_and_reports_diagnostics);
async fn preview_extracts_the_first_page_only_and_reports_diagnostics() {
    let site = FixtureSite::start().await;
    let fetcher = HttpFetcherConfig {
        allowed_private_addrs: vec![site.addr()],
        ..HttpFetcherConfig::default()
    };
    let app = TestApp::build(ServerConfig::default(), fetcher).await;
    let user = app.user("a@example.com").await;
    let mut spec = catalogue_spec(&site.url("/catalog?page=1"));
    spec["start_urls"] = json!([site.url("/catalog?page=1"), site.url("/catalog?page=3")]);
    spec["pagination"] = json!({"next_selector": "a.next", "max_pages": 5});

    let response = app.post("/api/v1/preview", &user.key, spec).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let preview = response.json();
    let records = preview["records"].as_array().expect("records");
    assert_eq!(records.len(), 10, "{preview}");
    assert!(
        records[0]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Product")),
        "{preview}"
    );
    assert_eq!(preview["page"]["status"], 200);
    assert_eq!(preview["page"]["outcome"], "ok");
    assert_eq!(preview["compute_units"], 1);
    assert_eq!(preview["diagnostics"]["items_matched"], 10);
    // One page of the first start URL, nothing else.
    assert_eq!(site.hits("/catalog"), 1);
    let listed = app.get("/api/v1/tasks", &user.key).await.json();
    assert_eq!(listed["total_count"], 0, "a preview saves nothing");
    // The fetched page is metered like any other page.
    let used = app
        .store
        .compute_units_used(&user.id, 0)
        .await
        .expect("ledger reads");
    assert_eq!(used, 1);
}

both_backends!(preview_validates_its_spec_like_task_creation);
async fn preview_validates_its_spec_like_task_creation() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let response = app
        .post(
            "/api/v1/preview",
            &user.key,
            json!({"start_urls": [], "fields": []}),
        )
        .await;
    let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        error["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["field"] == "start_urls"),
        "{error}"
    );
}

both_backends!(preview_refuses_private_addresses_without_sending_anything);
async fn preview_refuses_private_addresses_without_sending_anything() {
    // The default fetcher guards against private networks. 127.0.0.1:9 (discard) would be
    // harmless even if the guard were broken.
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let response = app
        .post(
            "/api/v1/preview",
            &user.key,
            catalogue_spec("http://127.0.0.1:9/"),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let preview = response.json();
    assert_eq!(preview["page"]["outcome"], "blocked_address", "{preview}");
    assert_eq!(preview["records"], json!([]));
}
