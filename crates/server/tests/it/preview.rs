//! `POST /preview` against the fixture site on 127.0.0.1.

use axum::http::StatusCode;
use selextract_fetch::HttpFetcherConfig;
use selextract_server::ServerConfig;
use selextract_testkit::{FixtureSite, HostileSite};
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

fn exploding_spec(url: &str, doublings: usize) -> serde_json::Value {
    json!({
        "start_urls": [url],
        "fields": [{
            "name": "title",
            "selector": "h1.title",
            "transform": vec![json!({"replace": ["a", "aa"]}); doublings]
        }],
        "respect_robots_txt": false
    })
}

async fn hostile_app(config: ServerConfig) -> TestApp {
    let fetcher = HttpFetcherConfig {
        allow_private_networks: true,
        ..HttpFetcherConfig::default()
    };
    TestApp::build(config, fetcher).await
}

both_backends!(
    a_preview_whose_value_exceeds_the_cap_answers_200_with_the_page_class_records_too_large
);
async fn a_preview_whose_value_exceeds_the_cap_answers_200_with_the_page_class_records_too_large() {
    let site = HostileSite::start().await;
    let app = hostile_app(ServerConfig::default()).await;
    let user = app.user("a@example.com").await;
    // Four `a` doubled 20 times: 4 MiB, past the default 1 MiB per value.
    let response = app
        .post(
            "/api/v1/preview",
            &user.key,
            exploding_spec(&site.url("/aaaa"), 20),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let preview = response.json();
    assert_eq!(preview["page"]["outcome"], "records_too_large", "{preview}");
    assert!(preview["page"]["error"].is_string(), "{preview}");
    assert_eq!(preview["records"], json!([]));
    // The API process is unharmed.
    let health = app.get("/health", &user.key).await;
    assert_eq!(health.status, StatusCode::OK);
}

both_backends!(a_preview_runs_under_the_configured_value_cap_not_the_default);
async fn a_preview_runs_under_the_configured_value_cap_not_the_default() {
    let site = HostileSite::start().await;
    // Four `a` doubled 5 times is 128 bytes: fine by default, too large under a 64-byte cap.
    let spec = exploding_spec(&site.url("/aaaa"), 5);
    let roomy = hostile_app(ServerConfig::default()).await;
    let user = roomy.user("a@example.com").await;
    let fine = roomy.post("/api/v1/preview", &user.key, spec.clone()).await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.text());
    let fine = fine.json();
    assert_eq!(fine["page"]["outcome"], "ok", "{fine}");
    assert_eq!(fine["records"][0]["title"], "a".repeat(128));

    let mut config = ServerConfig::default();
    config.limits.max_value_bytes = 64;
    let strict = hostile_app(config).await;
    let user = strict.user("a@example.com").await;
    let refused = strict.post("/api/v1/preview", &user.key, spec).await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.text());
    let refused = refused.json();
    assert_eq!(refused["page"]["outcome"], "records_too_large", "{refused}");
}

both_backends!(preview_and_task_creation_validate_against_the_configured_limits);
async fn preview_and_task_creation_validate_against_the_configured_limits() {
    let mut config = ServerConfig::default();
    config.limits.max_transforms = 2;
    config.limits.max_fields = 60;
    let app = TestApp::with_config(config).await;
    let user = app.user("a@example.com").await;
    // Lowered: three transforms are one too many, for a preview and for a task alike.
    let three = exploding_spec("https://shop.example/", 3);
    for path in ["/api/v1/preview", "/api/v1/tasks"] {
        let response = app.post(path, &user.key, three.clone()).await;
        let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(
            error["details"][0]["field"], "fields[0].transform",
            "{path}: {error}"
        );
    }
    // Raised: 55 fields pass although the default allows 50.
    let mut wide = catalogue_spec("https://shop.example/");
    wide["start"] = json!(false);
    wide["fields"] = (0..55)
        .map(|i| json!({"name": format!("f{i}"), "selector": "h2", "type": "text"}))
        .collect();
    let created = app.post("/api/v1/tasks", &user.key, wide).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
}
