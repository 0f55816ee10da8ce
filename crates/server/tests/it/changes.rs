//! Change summaries, their detail pages and the Atom feed: isolation, paging, feed-token
//! scope and revocation, hostile record values escaped in the feed.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use selextract_changes::{ChangeOptions, detect_changes};
use selextract_spec::TaskSpec;
use selextract_store::{PageCommit, PageOutcome, Progress, RunState};
use serde_json::{Map, Value, json};

use crate::support::{TestApp, TestUser, both_backends, catalogue_spec, request, send_via};

/// Creates a monitor task (key field `title`) without starting it; returns (id, spec).
async fn monitor_task(app: &TestApp, user: &TestUser, name: &str) -> (String, Value) {
    let mut spec = catalogue_spec("http://shop.invalid/catalog");
    spec["name"] = json!(name);
    spec["start"] = json!(false);
    spec["schedule"] = json!({"cron": "0 0 * * *", "key_field": "title"});
    let response = app.post("/api/v1/tasks", &user.key, spec.clone()).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let id = response.json()["id"].as_str().unwrap().to_owned();
    spec.as_object_mut().unwrap().remove("start");
    (id, spec)
}

/// Runs the task once as a worker would: commits `records` on one page, detects changes
/// and finishes the run with its summary. Returns the run id.
async fn monitor_run(
    app: &TestApp,
    user: &TestUser,
    task_id: &str,
    spec: &Value,
    records: &[Value],
) -> String {
    let run = app
        .store
        .enqueue_run(&user.id, task_id, spec, 5, 3)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let claimed = app
        .store
        .claim_next_run("w1", Duration::from_secs(60), now)
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(claimed.id, run.id);
    let records: Vec<Map<String, Value>> = records
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect();
    let object = app
        .results
        .put_page(&run.id, "s0-p0", &records)
        .await
        .unwrap();
    app.store
        .commit_page(PageCommit {
            run_id: run.id.clone(),
            user_id: user.id.clone(),
            worker_id: "w1".to_owned(),
            page_key: "s0-p0".to_owned(),
            url: "https://shop.example/".to_owned(),
            status: Some(200),
            outcome: PageOutcome::Ok,
            records: records.len() as u64,
            bytes: object.bytes,
            object_key: Some(object.key),
            charge: 1,
            mode: "http".to_owned(),
        })
        .await
        .unwrap();
    let task_spec: TaskSpec = serde_json::from_value(spec.clone()).unwrap();
    let options = ChangeOptions {
        detail_chunk_size: 3,
        ..ChangeOptions::default()
    };
    let changes = detect_changes(
        &app.results,
        &app.store,
        &claimed,
        &task_spec,
        &options,
        now,
    )
    .await
    .unwrap();
    let progress = Progress {
        pages_done: 1,
        records: records.len() as u64,
        ..Progress::default()
    };
    let finished = app
        .store
        .finish_run_with_outcome(
            &run.id,
            "w1",
            RunState::Completed,
            "ok",
            None,
            &progress,
            now + 1,
            Some(&changes),
            &[],
        )
        .await
        .unwrap();
    assert!(finished);
    run.id
}

fn product(title: &str, price: &str) -> Value {
    json!({"title": title, "price": price})
}

both_backends!(a_monitor_runs_changes_are_summarised_and_paged_by_kind);
async fn a_monitor_runs_changes_are_summarised_and_paged_by_kind() {
    let app = TestApp::new().await;
    let alice = app.user("alice@example.com").await;
    let (task, spec) = monitor_task(&app, &alice, "Prices").await;
    let first: Vec<Value> = (0..8).map(|i| product(&format!("p{i}"), "1")).collect();
    let baseline = monitor_run(&app, &alice, &task, &spec, &first).await;
    let mut second: Vec<Value> = (2..8)
        .map(|i| product(&format!("p{i}"), if i < 5 { "2" } else { "1" }))
        .collect();
    second.push(product("new", "9"));
    let run = monitor_run(&app, &alice, &task, &spec, &second).await;

    let base = app
        .get(&format!("/api/v1/runs/{baseline}/changes"), &alice.key)
        .await;
    assert_eq!(base.status, StatusCode::OK, "{}", base.text());
    let summary = &base.json()["summary"];
    assert_eq!(summary["previous_run_id"], Value::Null);
    assert_eq!(
        (
            summary["added"].as_u64(),
            summary["passed_threshold"].as_bool()
        ),
        (Some(8), Some(false))
    );

    let response = app
        .get(&format!("/api/v1/runs/{run}/changes?limit=2"), &alice.key)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let json = response.json();
    let summary = &json["summary"];
    assert_eq!(summary["previous_run_id"], baseline.as_str());
    assert_eq!(
        [
            &summary["added"],
            &summary["removed"],
            &summary["changed"],
            &summary["unchanged"]
        ],
        [&json!(1), &json!(2), &json!(3), &json!(3)]
    );
    assert_eq!(summary["passed_threshold"], true);
    assert_eq!(json["items"].as_array().unwrap().len(), 2);
    assert_eq!(json["items"][0]["kind"], "added");
    assert_eq!(json["items"][0]["record"], product("new", "9"));

    // Every page in turn: 6 entries, then no cursor.
    let mut kinds = Vec::new();
    let mut cursor = json["next_cursor"].as_str().map(str::to_owned);
    kinds.extend(
        json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned()),
    );
    while let Some(next) = cursor {
        let page = app
            .get(
                &format!("/api/v1/runs/{run}/changes?limit=2&cursor={next}"),
                &alice.key,
            )
            .await
            .json();
        kinds.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["kind"].as_str().unwrap().to_owned()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        kinds,
        [
            "added", "removed", "removed", "changed", "changed", "changed"
        ]
    );

    let changed = app
        .get(
            &format!("/api/v1/runs/{run}/changes?kind=changed"),
            &alice.key,
        )
        .await
        .json();
    assert_eq!(changed["items"].as_array().unwrap().len(), 3);
    assert_eq!(changed["items"][0]["key"], "\"p2\"");
    assert_eq!(
        changed["items"][0]["fields"],
        json!([{"field": "price", "old": "1", "new": "2"}])
    );
    assert_eq!(changed["next_cursor"], Value::Null);

    let listed = app
        .get(&format!("/api/v1/tasks/{task}/changes"), &alice.key)
        .await
        .json();
    let runs: Vec<_> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(runs, [run.clone(), baseline.clone()]);

    app.get(
        &format!("/api/v1/runs/{run}/changes?kind=moved"),
        &alice.key,
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get(&format!("/api/v1/runs/{run}/changes?limit=501"), &alice.key)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

both_backends!(another_users_run_changes_and_a_run_without_a_summary_are_not_found);
async fn another_users_run_changes_and_a_run_without_a_summary_are_not_found() {
    let app = TestApp::new().await;
    let alice = app.user("alice@example.com").await;
    let mallory = app.user("mallory@example.com").await;
    let (task, spec) = monitor_task(&app, &alice, "Prices").await;
    let run = monitor_run(&app, &alice, &task, &spec, &[product("a", "1")]).await;
    app.get(&format!("/api/v1/runs/{run}/changes"), &mallory.key)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/api/v1/tasks/{task}/changes"), &mallory.key)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.post(
        &format!("/api/v1/tasks/{task}/feed-tokens"),
        &mallory.key,
        json!({}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");

    let (_plain, plain_run) = app.started_task(&alice.key, "Plain").await;
    let missing = app
        .get(&format!("/api/v1/runs/{plain_run}/changes"), &alice.key)
        .await;
    let body = missing.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no change summary"),
        "{body}"
    );
}

both_backends!(a_feed_token_reads_its_tasks_feed_only_and_stops_when_revoked);
async fn a_feed_token_reads_its_tasks_feed_only_and_stops_when_revoked() {
    let app = TestApp::new().await;
    let alice = app.user("alice@example.com").await;
    let (task, spec) = monitor_task(&app, &alice, "Prices").await;
    let (other_task, _) = monitor_task(&app, &alice, "Other").await;
    monitor_run(&app, &alice, &task, &spec, &[product("a", "1")]).await;
    let run = monitor_run(
        &app,
        &alice,
        &task,
        &spec,
        &[product("a", "2"), product("b", "1")],
    )
    .await;

    let created = app
        .post(
            &format!("/api/v1/tasks/{task}/feed-tokens"),
            &alice.key,
            json!({}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let created = created.json();
    let token = created["token"].as_str().unwrap().to_owned();
    let feed_url = created["feed_url"].as_str().unwrap();
    assert!(
        feed_url.ends_with(&format!("/api/v1/tasks/{task}/changes.atom?token={token}")),
        "{feed_url}"
    );
    let listed = app
        .get(&format!("/api/v1/tasks/{task}/feed-tokens"), &alice.key)
        .await;
    assert!(!listed.text().contains(&token));
    assert_eq!(listed.json()["items"][0]["id"], created["id"]);

    let feed_path = format!("/api/v1/tasks/{task}/changes.atom?token={token}");
    let feed = send_via(&app.router, request(Method::GET, &feed_path, None, None)).await;
    assert_eq!(feed.status, StatusCode::OK, "{}", feed.text());
    assert_eq!(
        feed.header("content-type"),
        Some("application/atom+xml; charset=utf-8")
    );
    let text = feed.text();
    assert!(
        text.contains(&format!("<id>urn:selextract:run:{run}</id>")),
        "{text}"
    );
    assert!(
        text.contains("<title>1 added, 0 removed, 1 changed</title>"),
        "{text}"
    );
    // The baseline run (everything added, no previous run) has changes too and is listed.
    assert_eq!(text.matches("<entry>").count(), 2);

    // The token is no API key, session or bearer token anywhere else.
    for path in [
        format!("/api/v1/tasks/{task}"),
        format!("/api/v1/runs/{run}/changes"),
        format!("/api/v1/tasks/{task}/changes"),
    ] {
        app.get(&path, &token)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // Nor for another task's feed, nor without a token.
    let other = send_via(
        &app.router,
        request(
            Method::GET,
            &format!("/api/v1/tasks/{other_task}/changes.atom?token={token}"),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let bare = send_via(
        &app.router,
        request(
            Method::GET,
            &format!("/api/v1/tasks/{task}/changes.atom"),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(bare.status, StatusCode::NOT_FOUND);
    // An API key is no feed token either.
    let with_key = send_via(
        &app.router,
        request(
            Method::GET,
            &format!("/api/v1/tasks/{task}/changes.atom?token={}", alice.key),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(with_key.status, StatusCode::NOT_FOUND);

    let token_id = created["id"].as_str().unwrap();
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tasks/{task}/feed-tokens/{token_id}"),
            Some(&alice.key),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = send_via(&app.router, request(Method::GET, &feed_path, None, None)).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    let again = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tasks/{task}/feed-tokens/{token_id}"),
            Some(&alice.key),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let listed = app
        .get(&format!("/api/v1/tasks/{task}/feed-tokens"), &alice.key)
        .await
        .json();
    assert!(listed["items"][0]["revoked_at"].is_string());
}

both_backends!(hostile_record_values_are_escaped_in_the_feed);
async fn hostile_record_values_are_escaped_in_the_feed() {
    let app = TestApp::new().await;
    let alice = app.user("alice@example.com").await;
    let (task, spec) = monitor_task(&app, &alice, "Hostile <b>&</b>").await;
    let hostile = "]]><script>alert(1)</script>\u{0}\u{1b}&amp;\"'";
    monitor_run(&app, &alice, &task, &spec, &[product("x", "1")]).await;
    monitor_run(
        &app,
        &alice,
        &task,
        &spec,
        &[product("x", hostile), product(hostile, "2")],
    )
    .await;
    let token = app
        .post(
            &format!("/api/v1/tasks/{task}/feed-tokens"),
            &alice.key,
            json!({}),
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let feed = send_via(
        &app.router,
        request(
            Method::GET,
            &format!("/api/v1/tasks/{task}/changes.atom?token={token}"),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(feed.status, StatusCode::OK);
    let text = feed.text();
    assert!(!text.contains("<script>"), "{text}");
    assert!(!text.contains("]]>"), "{text}");
    assert!(!text.contains("<b>"), "{text}");
    assert!(!text.contains('\u{0}') && !text.contains('\u{1b}'));
    assert!(text.contains("&lt;script&gt;"), "{text}");
    assert!(
        text.contains("Hostile &lt;b&gt;&amp;&lt;/b&gt;: changes"),
        "{text}"
    );
    // Every `&` starts a reference.
    for (index, _) in text.match_indices('&') {
        let rest = &text[index..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|r| rest.starts_with(r)),
            "bare & at {index}"
        );
    }
}
