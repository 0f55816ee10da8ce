//! The platform as a user runs it: `selextract serve` on an empty data directory, the key it
//! prints, tasks over the REST API, workers as separate processes killed with SIGKILL.

use std::collections::HashSet;
use std::time::Duration;

use selextract_testkit::{FixtureOptions, FixtureSite};
use serde_json::{Value, json};

use crate::support::{Api, run_ok, start_server, start_worker};

fn catalogue_task(site: &FixtureSite, delay_ms: u64) -> Value {
    json!({
        "name": "catalogue",
        "start_urls": [site.url("/catalog?page=1")],
        "item_selector": "div.product",
        "fields": [
            {"name": "title", "selector": "h2 a"},
            {"name": "url", "selector": "h2 a", "type": "link"},
            {"name": "price", "selector": ".price", "transform": [{"regex": "[0-9.]+"}, "number"]}
        ],
        "pagination": {"next_selector": "a.next", "max_pages": 100},
        "rate_limit": {"delay_ms": delay_ms}
    })
}

/// Follow the task's SSE stream until the `done` event; returns the event names seen.
async fn follow_events(api: &Api, task_id: &str) -> Vec<String> {
    use futures::StreamExt;
    let response = api
        .client
        .get(format!("{}/api/v1/tasks/{task_id}/events", api.base))
        .bearer_auth(&api.key)
        .send()
        .await
        .expect("events request");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    );
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut names = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next()).await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(name) = event.lines().find_map(|l| l.strip_prefix("event:")) {
                names.push(name.trim().to_owned());
            }
        }
        if names.iter().any(|n| n == "done") {
            break;
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_works_with_the_printed_key() {
    let site = FixtureSite::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_server(data.path(), &["--allow-private-networks"]);
    let key = server
        .key
        .clone()
        .expect("the first start prints an API key");
    let api = Api::new(&server.base, &key);

    let (status, task) = api
        .post_json("/api/v1/tasks", &catalogue_task(&site, 0))
        .await;
    assert_eq!(status, 201, "{task}");
    let task_id = task["id"].as_str().expect("task id").to_owned();
    let events = follow_events(&api, &task_id).await;
    assert!(events.iter().any(|e| e == "progress"), "events: {events:?}");
    assert_eq!(
        events.last().map(String::as_str),
        Some("done"),
        "events: {events:?}"
    );

    let runs = api.get_json(&format!("/api/v1/tasks/{task_id}/runs")).await;
    let run = &runs["items"][0];
    assert_eq!(run["state"], "completed", "{run}");
    let run_id = run["id"].as_str().expect("run id");

    let (status, csv_bytes) = api
        .get(&format!("/api/v1/tasks/{task_id}/results?format=csv"))
        .await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(&csv_bytes[..]);
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        ["title", "url", "price"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 50);
    let titles: Vec<String> = rows.iter().map(|r| r[0].to_owned()).collect();
    let expected: Vec<String> = (1..=50).map(|id| format!("Product {id}")).collect();
    assert_eq!(
        titles, expected,
        "records in page order, none missing, none twice"
    );
    assert_eq!(&rows[0][1], site.url("/item/1"));
    assert_eq!(&rows[0][2], "11.24");

    let (status, xlsx) = api
        .get(&format!("/api/v1/runs/{run_id}/results?format=xlsx"))
        .await;
    assert_eq!(status, 200);
    let path = data.path().join("download.xlsx");
    std::fs::write(&path, &xlsx).expect("write xlsx");
    let rows = crate::scrape::xlsx_rows(&path);
    assert_eq!(rows.len(), 51);
    assert_eq!(rows[1][0], "Product 1");
    assert_eq!(rows[50][0], "Product 50");

    // The key is printed once: a restart on the same data directory prints none.
    drop(server);
    let again = start_server(data.path(), &[]);
    assert!(again.key.is_none());
}

/// Start a run, SIGKILL the worker after `kill_after_pages` committed pages, let a second
/// worker finish it, and check records and charges.
async fn kill_worker_mid_run(kill_after_pages: u64) {
    let site = FixtureSite::start_with(FixtureOptions {
        catalogue_pages: 10,
        ..FixtureOptions::default()
    })
    .await;
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_server(data.path(), &["--no-worker"]);
    let api = Api::new(&server.base, server.key.as_deref().expect("key"));
    let (status, task) = api
        .post_json("/api/v1/tasks", &catalogue_task(&site, 150))
        .await;
    assert_eq!(status, 201, "{task}");
    let run_id = task["latest_run"]["id"]
        .as_str()
        .expect("first run")
        .to_owned();

    let first = start_worker(data.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = api.get_json(&format!("/api/v1/runs/{run_id}")).await;
        if run["progress"]["pages_done"].as_u64().unwrap_or(0) >= kill_after_pages {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first worker made no progress: {run}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first); // SIGKILL
    let second = start_worker(data.path());
    let run = api.wait_terminal(&run_id, Duration::from_secs(90)).await;
    drop(second);
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["attempt"], 2, "the run was reclaimed once: {run}");

    let records = api.all_records(&run_id).await;
    let titles: Vec<String> = records
        .iter()
        .map(|r| r["title"].as_str().unwrap_or_default().to_owned())
        .collect();
    let expected: HashSet<String> = (1..=100).map(|id| format!("Product {id}")).collect();
    assert_eq!(titles.len(), 100, "no duplicates and no gaps");
    assert_eq!(titles.iter().cloned().collect::<HashSet<_>>(), expected);

    let store = selextract_store::Store::connect(&format!(
        "sqlite://{}",
        data.path().join("selextract.db").display()
    ))
    .await
    .expect("store opens");
    let ledger = selextract_store::testing::ledger_entries_of_run_id(&store, &run_id)
        .await
        .expect("ledger");
    let mut keys: Vec<String> = ledger.iter().map(|e| e.idempotency_key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        ledger.len(),
        10,
        "each of the 10 pages charged exactly once: {ledger:?}"
    );
    assert_eq!(keys.len(), 10);
    assert_eq!(ledger.iter().map(|e| e.amount).sum::<u64>(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_the_first_page_loses_nothing() {
    kill_worker_mid_run(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_nothing() {
    kill_worker_mid_run(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_near_the_end_loses_nothing() {
    kill_worker_mid_run(8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_a_million_records_to_csv_keeps_the_server_under_150_mb() {
    use selextract_store::{PageCommit, PageOutcome, Progress, RunState, Store};
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_server(data.path(), &["--no-worker"]);
    let api = Api::new(&server.base, server.key.as_deref().expect("key"));
    let task = json!({"start_urls": ["https://example.com/"], "fields": [{"name": "id", "selector": "p"}, {"name": "text", "selector": "q"}], "start": false});
    let (status, task) = api.post_json("/api/v1/tasks", &task).await;
    assert_eq!(status, 201, "{task}");

    // Fill a run with 1,000 pages of 1,000 records straight through the storage crates,
    // as a worker would.
    let store = Store::connect(&format!(
        "sqlite://{}",
        data.path().join("selextract.db").display()
    ))
    .await
    .expect("store");
    let results =
        selextract_results::ResultStore::local(&data.path().join("results")).expect("results");
    let user = store
        .find_user_by_email("admin@localhost")
        .await
        .expect("query")
        .expect("admin exists");
    let run = store
        .enqueue_run(
            &user.id,
            task["id"].as_str().expect("id"),
            &task["spec"],
            5,
            3,
        )
        .await
        .expect("enqueue");
    let claimed = store
        .claim_next_run("filler", Duration::from_secs(600), crate::support_now())
        .await
        .expect("claim");
    assert_eq!(claimed.map(|r| r.id), Some(run.id.clone()));
    for page in 0..1000u64 {
        let records: Vec<serde_json::Map<String, Value>> = (0..1000u64)
            .map(|i| {
                let mut m = serde_json::Map::new();
                m.insert("id".into(), json!(page * 1000 + i));
                m.insert(
                    "text".into(),
                    json!(format!(
                        "record {} with some text to make it realistic",
                        page * 1000 + i
                    )),
                );
                m
            })
            .collect();
        let key = format!("s0-p{page}");
        let object = results
            .put_page(&run.id, &key, &records)
            .await
            .expect("put page");
        store
            .commit_page(PageCommit {
                run_id: run.id.clone(),
                user_id: user.id.clone(),
                worker_id: "filler".into(),
                page_key: key,
                url: "https://example.com/".into(),
                status: Some(200),
                outcome: PageOutcome::Ok,
                records: object.records,
                bytes: object.bytes,
                object_key: Some(object.key),
                charge: 1,
                mode: "http".into(),
            })
            .await
            .expect("commit");
    }
    let progress = Progress {
        pages_done: 1000,
        records: 1_000_000,
        ..Progress::default()
    };
    store
        .finish_run(
            &run.id,
            "filler",
            RunState::Completed,
            "ok",
            None,
            &progress,
            crate::support_now(),
        )
        .await
        .expect("finish");

    let before = server.proc.peak_rss_bytes();
    let response = api
        .client
        .get(format!(
            "{}/api/v1/runs/{}/results?format=csv",
            api.base, run.id
        ))
        .bearer_auth(&api.key)
        .send()
        .await
        .expect("export request");
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = response.bytes_stream();
    let mut lines = 0u64;
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        lines += chunk
            .expect("chunk")
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
    }
    assert_eq!(lines, 1_000_001, "header plus every record");
    let peak = server.proc.peak_rss_bytes();
    assert!(peak > 0 && before > 0, "VmHWM readable");
    assert!(
        peak < 150 * 1024 * 1024,
        "server peak RSS {} MB during a 1,000,000-record export",
        peak / (1024 * 1024)
    );
}

#[test]
fn user_and_key_commands_create_working_credentials() {
    let data = tempfile::tempdir().expect("tempdir");
    run_ok(data.path(), &["migrate"]);
    let out = run_ok(
        data.path(),
        &["user", "create", "--email", "ana@example.com"],
    );
    assert!(out.contains("ana@example.com"));
    let key = run_ok(
        data.path(),
        &[
            "key",
            "create",
            "--email",
            "ana@example.com",
            "--scopes",
            "tasks:read",
        ],
    );
    assert!(key.trim().starts_with("sk_"), "{key}");
    let config = run_ok(data.path(), &["config", "print"]);
    assert!(config.contains("[worker]"), "{config}");
}
