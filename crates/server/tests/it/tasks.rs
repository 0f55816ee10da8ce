//! Task creation in every shape, listing, reading, replacing, deleting, runs, cancel, retry.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestApp, both_backends, catalogue_spec};

both_backends!(creating_a_canonical_task_returns_the_canonical_spec_and_a_queued_first_run);
async fn creating_a_canonical_task_returns_the_canonical_spec_and_a_queued_first_run() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let response = app
        .post(
            "/api/v1/tasks",
            &user.key,
            catalogue_spec("https://shop.example/catalog"),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let task = response.json();
    assert_eq!(task["input_shape"], "canonical");
    assert_eq!(task["name"], "Catalogue");
    assert_eq!(task["priority"], 5);
    assert_eq!(
        task["spec"]["start_urls"],
        json!(["https://shop.example/catalog"])
    );
    // Defaults are filled in: the stored spec is the full canonical form.
    assert_eq!(task["spec"]["mode"], "http");
    assert_eq!(task["spec"]["timeout_ms"], 30000);
    assert_eq!(task["latest_run"]["state"], "queued");
    assert_eq!(task["latest_run"]["task_id"], task["id"]);
    assert!(
        task["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{task}"
    );
}

both_backends!(creating_a_task_in_the_original_api_shape_answers_with_the_canonical_spec);
async fn creating_a_task_in_the_original_api_shape_answers_with_the_canonical_spec() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let body = json!({
        "name": "Legacy",
        "task_type": "simple_scraping",
        "priority": 7,
        "config": {"urls": ["https://shop.example/a"], "selectors": {"title": "h1", "price": ".price"}}
    });
    let response = app.post("/api/v1/tasks", &user.key, body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let task = response.json();
    assert_eq!(task["input_shape"], "original_api");
    assert_eq!(task["priority"], 7);
    assert_eq!(
        task["spec"]["start_urls"],
        json!(["https://shop.example/a"])
    );
    let names: Vec<_> = task["spec"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("title"), json!("price")]);
    assert!(
        task["spec"].get("config").is_none(),
        "no compatibility keys in the canonical form"
    );
}

both_backends!(creating_a_task_in_the_original_worker_shape_answers_with_the_canonical_spec);
async fn creating_a_task_in_the_original_worker_shape_answers_with_the_canonical_spec() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let body = json!({
        "url": "https://shop.example/list",
        "fields": [{"name": "title", "selector": "h2"}],
        "pagination": {"enabled": true, "next_selector": "a.next", "max_pages": 3}
    });
    let response = app.post("/api/v1/tasks", &user.key, body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let task = response.json();
    assert_eq!(task["input_shape"], "original_worker");
    assert_eq!(
        task["spec"]["start_urls"],
        json!(["https://shop.example/list"])
    );
    assert_eq!(task["spec"]["pagination"]["max_pages"], 3);
    assert!(task["spec"].get("url").is_none());
}

both_backends!(validation_errors_name_the_json_path_of_each_bad_value);
async fn validation_errors_name_the_json_path_of_each_bad_value() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let mut spec = catalogue_spec("not a url");
    spec["fields"][1]["selector"] = json!("div[[[");
    let response = app.post("/api/v1/tasks", &user.key, spec).await;
    let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = error["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(fields.contains(&"start_urls[0]"), "{error}");
    assert!(fields.contains(&"fields[1].selector"), "{error}");
    let listed = app.get("/api/v1/tasks", &user.key).await.json();
    assert_eq!(
        listed["total_count"], 0,
        "nothing is created on a validation error"
    );
}

both_backends!(a_priority_outside_one_to_ten_is_a_validation_error);
async fn a_priority_outside_one_to_ten_is_a_validation_error() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let mut spec = catalogue_spec("https://shop.example/");
    spec["priority"] = json!(11);
    let response = app.post("/api/v1/tasks", &user.key, spec).await;
    let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["details"][0]["field"], "priority");
}

both_backends!(start_false_creates_the_task_without_a_run);
async fn start_false_creates_the_task_without_a_run() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let mut spec = catalogue_spec("https://shop.example/");
    spec["start"] = json!(false);
    let task = app.post("/api/v1/tasks", &user.key, spec).await.json();
    assert!(task["latest_run"].is_null(), "{task}");
    let runs = app
        .get(
            &format!("/api/v1/tasks/{}/runs", task["id"].as_str().unwrap()),
            &user.key,
        )
        .await
        .json();
    assert_eq!(runs["total_count"], 0);
}

both_backends!(creating_a_task_wakes_the_queue_waker);
async fn creating_a_task_wakes_the_queue_waker() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    app.started_task(&user.key, "wake").await;
    // notify_one stores a permit when nobody waits yet, so this returns at once only if
    // the enqueue notified.
    tokio::time::timeout(Duration::from_secs(1), app.waker.notified())
        .await
        .expect("the waker was notified");
}

both_backends!(billing_enabled_with_zero_balance_answers_402_and_a_grant_lifts_it);
async fn billing_enabled_with_zero_balance_answers_402_and_a_grant_lifts_it() {
    let mut config = selextract_server::ServerConfig::default();
    config.plans.billing_enabled = true;
    let app = TestApp::with_config(config).await;
    let user = app.user_on_plan("poor@example.com", "free").await;
    let response = app
        .post(
            "/api/v1/tasks",
            &user.key,
            catalogue_spec("https://shop.example/"),
        )
        .await;
    let error = response.assert_error(StatusCode::PAYMENT_REQUIRED, "insufficient_compute_units");
    assert!(
        error["message"].as_str().unwrap().contains("1 needed"),
        "{error}"
    );
    // A browser task costs 5: a balance of 3 covers HTTP but not browser.
    app.store
        .grant_compute_units(&user.id, 3, "grant:test")
        .await
        .expect("grant");
    let mut browser = catalogue_spec("https://shop.example/");
    browser["mode"] = json!("browser");
    app.post("/api/v1/tasks", &user.key, browser)
        .await
        .assert_error(StatusCode::PAYMENT_REQUIRED, "insufficient_compute_units");
    let response = app
        .post(
            "/api/v1/tasks",
            &user.key,
            catalogue_spec("https://shop.example/"),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
}

both_backends!(listing_filters_sorts_and_pages_tasks);
async fn listing_filters_sorts_and_pages_tasks() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    for name in ["Alpha shop", "beta shop", "Gamma news"] {
        app.task(&user.key, name).await;
    }
    app.started_task(&user.key, "Delta shop").await;

    let page = app
        .get(
            "/api/v1/tasks?page=1&page_size=2&sort=name&order=asc",
            &user.key,
        )
        .await
        .json();
    let names: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Alpha shop", "beta shop"]);
    assert_eq!(page["total_count"], 4);
    assert_eq!(page["page"], 1);
    assert_eq!(page["page_size"], 2);
    assert_eq!(page["total_pages"], 2);
    assert_eq!(page["has_next"], true);
    assert_eq!(page["has_prev"], false);

    let second = app
        .get(
            "/api/v1/tasks?page=2&page_size=2&sort=name&order=asc",
            &user.key,
        )
        .await
        .json();
    let names: Vec<_> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Delta shop", "Gamma news"]);
    assert_eq!(second["has_next"], false);
    assert_eq!(second["has_prev"], true);

    let shops = app
        .get("/api/v1/tasks?name_contains=SHOP", &user.key)
        .await
        .json();
    assert_eq!(shops["total_count"], 3);

    let queued = app
        .get("/api/v1/tasks?status=queued", &user.key)
        .await
        .json();
    assert_eq!(queued["total_count"], 1);
    assert_eq!(queued["items"][0]["name"], "Delta shop");
    assert_eq!(queued["items"][0]["status"], "queued");

    let future = app
        .get(
            "/api/v1/tasks?created_after=2999-01-01T00:00:00Z",
            &user.key,
        )
        .await
        .json();
    assert_eq!(future["total_count"], 0);
    let past = app
        .get(
            "/api/v1/tasks?created_before=2999-01-01T00:00:00%2B02:00",
            &user.key,
        )
        .await
        .json();
    assert_eq!(past["total_count"], 4);
}

both_backends!(an_unknown_sort_or_bad_paging_is_a_validation_error_naming_the_parameter);
async fn an_unknown_sort_or_bad_paging_is_a_validation_error_naming_the_parameter() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let response = app.get("/api/v1/tasks?sort=priority", &user.key).await;
    let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["details"][0]["field"], "sort");
    let response = app
        .get(
            "/api/v1/tasks?page_size=101&created_after=yesterday",
            &user.key,
        )
        .await;
    let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<_> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["page_size", "created_after"]);
}

both_backends!(a_task_can_be_read_replaced_and_deleted);
async fn a_task_can_be_read_replaced_and_deleted() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let id = app.task(&user.key, "Original").await;
    let path = format!("/api/v1/tasks/{id}");

    let task = app.get(&path, &user.key).await.json();
    assert_eq!(task["name"], "Original");
    assert!(task.get("input_shape").is_none());

    let mut replacement = catalogue_spec("https://other.example/");
    replacement["name"] = json!("Replaced");
    replacement["priority"] = json!(9);
    let response = app
        .call(Method::PUT, &path, Some(&user.key), Some(replacement))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let task = app.get(&path, &user.key).await.json();
    assert_eq!(task["name"], "Replaced");
    assert_eq!(task["priority"], 9);
    assert_eq!(
        task["spec"]["start_urls"],
        json!(["https://other.example/"])
    );

    let response = app.call(Method::DELETE, &path, Some(&user.key), None).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    app.get(&path, &user.key)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::DELETE, &path, Some(&user.key), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

both_backends!(starting_cancelling_and_retrying_runs);
async fn starting_cancelling_and_retrying_runs() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let id = app.task(&user.key, "Runs").await;

    // Nothing to cancel or retry yet.
    app.post(&format!("/api/v1/tasks/{id}/cancel"), &user.key, json!({}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    app.post(&format!("/api/v1/tasks/{id}/retry"), &user.key, json!({}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");

    let response = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{id}/runs"),
            Some(&user.key),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let run = response.json();
    assert_eq!(run["state"], "queued");
    assert_eq!(run["priority"], 5);
    assert_eq!(run["progress"]["pages_done"], 0);

    let response = app
        .post(
            &format!("/api/v1/tasks/{id}/runs"),
            &user.key,
            json!({"priority": 0}),
        )
        .await;
    assert_eq!(
        response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["details"][0]
            ["field"],
        "priority"
    );

    let cancelled = app
        .post(&format!("/api/v1/tasks/{id}/cancel"), &user.key, json!({}))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text());
    let cancelled = cancelled.json();
    assert_eq!(cancelled["id"], run["id"]);
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["reason"], "cancelled_by_user");

    let retried = app
        .post(&format!("/api/v1/tasks/{id}/retry"), &user.key, json!({}))
        .await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.text());
    let retried = retried.json();
    assert_ne!(retried["id"], run["id"]);
    assert_eq!(retried["state"], "queued");

    let runs = app
        .get(&format!("/api/v1/tasks/{id}/runs"), &user.key)
        .await
        .json();
    assert_eq!(runs["total_count"], 2);
    assert_eq!(runs["items"][0]["id"], retried["id"], "newest first");
    let fetched = app
        .get(
            &format!("/api/v1/runs/{}", run["id"].as_str().unwrap()),
            &user.key,
        )
        .await
        .json();
    assert_eq!(fetched["state"], "cancelled");
    assert!(fetched["finished_at"].is_string());
}
