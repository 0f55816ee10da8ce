//! Records paging across page objects, and streamed exports in every format.

use std::time::Duration;

use axum::http::StatusCode;
use selextract_store::{PageCommit, PageOutcome};
use serde_json::{Map, Value, json};

use crate::support::{TestApp, TestUser, both_backends};

fn record(n: u64) -> Map<String, Value> {
    let value = json!({"title": format!("Item {n}"), "price": n as f64 + 0.5});
    value.as_object().cloned().unwrap()
}

/// A running run with three committed pages: 4 records, none, 5 records (9 in all).
async fn seeded_run(app: &TestApp, user: &TestUser) -> (String, String) {
    let (task_id, run_id) = app.started_task(&user.key, "Seeded").await;
    let now = chrono::Utc::now().timestamp_millis();
    let claimed = app
        .store
        .claim_next_run("w1", Duration::from_secs(60), now)
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(claimed.id, run_id);
    let mut next = 0;
    for (key, count) in [("s0-p0", 4), ("s0-p1", 0), ("s0-p2", 5)] {
        let records: Vec<_> = (next..next + count).map(record).collect();
        next += count;
        let object = if records.is_empty() {
            None
        } else {
            Some(app.results.put_page(&run_id, key, &records).await.unwrap())
        };
        app.store
            .commit_page(PageCommit {
                run_id: run_id.clone(),
                user_id: user.id.clone(),
                worker_id: "w1".to_owned(),
                page_key: key.to_owned(),
                url: format!("https://shop.example/{key}"),
                status: Some(200),
                outcome: PageOutcome::Ok,
                records: count,
                bytes: object.as_ref().map_or(0, |o| o.bytes),
                object_key: object.map(|o| o.key),
                charge: 1,
                mode: "http".to_owned(),
            })
            .await
            .unwrap();
    }
    (task_id, run_id)
}

fn titles(json: &Value) -> Vec<String> {
    json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_owned())
        .collect()
}

both_backends!(records_are_paged_across_page_boundaries);
async fn records_are_paged_across_page_boundaries() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let (_, run_id) = seeded_run(&app, &user).await;

    let page = app
        .get(
            &format!("/api/v1/runs/{run_id}/records?offset=2&limit=5"),
            &user.key,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let page = page.json();
    assert_eq!(
        titles(&page),
        ["Item 2", "Item 3", "Item 4", "Item 5", "Item 6"]
    );
    assert_eq!(page["offset"], 2);
    assert_eq!(page["limit"], 5);
    assert_eq!(page["total_count"], 9);

    let all = app
        .get(
            &format!("/api/v1/runs/{run_id}/records?limit=1000"),
            &user.key,
        )
        .await
        .json();
    let expected: Vec<_> = (0..9).map(|n| format!("Item {n}")).collect();
    assert_eq!(titles(&all), expected);

    let tail = app
        .get(
            &format!("/api/v1/runs/{run_id}/records?offset=8&limit=10"),
            &user.key,
        )
        .await
        .json();
    assert_eq!(titles(&tail), ["Item 8"]);
    let beyond = app
        .get(
            &format!("/api/v1/runs/{run_id}/records?offset=50"),
            &user.key,
        )
        .await
        .json();
    assert_eq!(beyond["items"], json!([]));
    assert_eq!(beyond["total_count"], 9);
}

both_backends!(a_record_limit_above_1000_is_a_validation_error);
async fn a_record_limit_above_1000_is_a_validation_error() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let (_, run_id) = seeded_run(&app, &user).await;
    let response = app
        .get(
            &format!("/api/v1/runs/{run_id}/records?limit=1001"),
            &user.key,
        )
        .await;
    let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["details"][0]["field"], "limit");
}

both_backends!(results_export_in_every_format_with_its_content_type_and_file_name);
async fn results_export_in_every_format_with_its_content_type_and_file_name() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let (task_id, run_id) = seeded_run(&app, &user).await;

    let json = app
        .get(
            &format!("/api/v1/runs/{run_id}/results?format=json"),
            &user.key,
        )
        .await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.text());
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(
        json.header("content-disposition"),
        Some(format!("attachment; filename=\"run-{run_id}.json\"").as_str())
    );
    let array: Vec<Value> = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(array.len(), 9);
    assert_eq!(array[4]["title"], "Item 4");

    let jsonl = app
        .get(
            &format!("/api/v1/runs/{run_id}/results?format=jsonl"),
            &user.key,
        )
        .await;
    assert_eq!(jsonl.header("content-type"), Some("application/jsonl"));
    let lines: Vec<Value> = jsonl
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[8]["title"], "Item 8");

    let csv = app
        .get(
            &format!("/api/v1/runs/{run_id}/results?format=csv"),
            &user.key,
        )
        .await;
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(
        csv.header("content-disposition")
            .unwrap()
            .ends_with(".csv\"")
    );
    let text = csv.text();
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some("title,price"),
        "columns are the spec's field names in order"
    );
    assert_eq!(rows.next(), Some("Item 0,0.5"));
    assert_eq!(rows.count(), 8);

    let xlsx = app
        .get(
            &format!("/api/v1/runs/{run_id}/results?format=xlsx"),
            &user.key,
        )
        .await;
    assert_eq!(
        xlsx.header("content-type"),
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    );
    assert!(xlsx.body.starts_with(b"PK"), "an XLSX file is a zip");

    // The task routes export the latest run; download is an alias; the default format is
    // the spec's output_format (json).
    for route in ["results", "download"] {
        let response = app
            .get(&format!("/api/v1/tasks/{task_id}/{route}"), &user.key)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{route}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{route}"
        );
        assert_eq!(response.body, json.body, "{route}");
    }

    let bad = app
        .get(
            &format!("/api/v1/runs/{run_id}/results?format=pdf"),
            &user.key,
        )
        .await;
    assert_eq!(
        bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["details"][0]["field"],
        "format"
    );
}

both_backends!(a_task_that_never_ran_has_no_results_to_download);
async fn a_task_that_never_ran_has_no_results_to_download() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let task_id = app.task(&user.key, "idle").await;
    app.get(&format!("/api/v1/tasks/{task_id}/results"), &user.key)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

both_backends!(run_and_task_logs_are_paged);
async fn run_and_task_logs_are_paged() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let (task_id, run_id) = seeded_run(&app, &user).await;
    let lines: Vec<_> = (0..5)
        .map(|n| selextract_store::LogLine {
            ts_ms: 1_700_000_000_000 + n,
            level: "info".to_owned(),
            message: format!("line {n}"),
            fields: json!({"n": n}),
        })
        .collect();
    app.store.append_run_logs(&run_id, &lines).await.unwrap();
    let page = app
        .get(
            &format!("/api/v1/runs/{run_id}/logs?page=2&page_size=2"),
            &user.key,
        )
        .await
        .json();
    let messages: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["line 2", "line 3"]);
    assert_eq!(page["total_count"], 5);
    assert_eq!(page["total_pages"], 3);
    assert_eq!(page["items"][0]["time"], "2023-11-14T22:13:20.002Z");
    let task_logs = app
        .get(&format!("/api/v1/tasks/{task_id}/logs"), &user.key)
        .await
        .json();
    assert_eq!(task_logs["total_count"], 5);
}
