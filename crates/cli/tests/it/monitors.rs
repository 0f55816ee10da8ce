//! Change detection end to end (issue 12 proof): a monitor task (a schedule with
//! `key_field`) on a page whose content the test changes between two runs, run by a real
//! `serve` with its embedded worker. The second run's `GET /runs/{id}/changes` names the
//! exact records added, removed and changed (with the changed fields' old and new values),
//! and the task's Atom feed, read with its feed token, parses with Python's `feedparser`
//! (from PyPI, installed by scripts/ensure-test-services) into the expected entries.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Api, run_ok, start_server};

/// A page on 127.0.0.1 whose HTML the test replaces between runs.
pub(crate) struct ChangingPage {
    pub(crate) url: String,
    html: Arc<Mutex<String>>,
}

impl ChangingPage {
    pub(crate) fn start(html: &str) -> ChangingPage {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!(
            "http://{}/products",
            listener.local_addr().expect("address")
        );
        let html = Arc::new(Mutex::new(html.to_owned()));
        let served = html.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut line = String::new();
                // Read the request head up to its blank line; the body (none) is ignored.
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    line.clear();
                }
                let body = served.lock().expect("page lock").clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
        });
        ChangingPage { url, html }
    }

    pub(crate) fn set(&self, html: &str) {
        *self.html.lock().expect("page lock") = html.to_owned();
    }
}

/// The product list as HTML: one `li.item` per (title, price, stock).
pub(crate) fn page(items: &[(&str, &str, &str)]) -> String {
    let items: String = items
        .iter()
        .map(|(title, price, stock)| {
            let title = title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            format!(
                "<li class=\"item\"><span class=\"name\">{title}</span><span class=\"price\">{price}</span><span class=\"stock\">{stock}</span></li>"
            )
        })
        .collect();
    format!("<!doctype html><html><body><ul>{items}</ul></body></html>")
}

fn feedparser_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("target/test-services/feedparser/bin/python");
    assert!(
        python.exists(),
        "feedparser is not installed at {}: run scripts/ensure-test-services",
        python.display()
    );
    python
}

/// The feed as feedparser reads it: well-formedness, version and the entries.
fn parse_feed(atom: &[u8]) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("changes.atom");
    std::fs::write(&path, atom).expect("feed written");
    let script = r#"
import json, sys, feedparser
d = feedparser.parse(open(sys.argv[1], 'rb').read())
print(json.dumps({
    "bozo": bool(d.bozo), "bozo_exception": str(d.get("bozo_exception", "")),
    "version": d.version, "title": d.feed.get("title"), "id": d.feed.get("id"),
    "entries": [{"id": e.get("id"), "title": e.get("title"), "link": e.get("link"),
                 "updated": e.get("updated"), "summary": e.get("summary"),
                 "content": e.content[0].value if e.get("content") else None}
                for e in d.entries]}))
"#;
    let out = Command::new(feedparser_python())
        .args(["-c", script, path.to_str().expect("utf-8 path")])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "feedparser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("feedparser printed JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitor_reports_the_exact_changes_between_two_runs_and_its_feed_parses() {
    let site = ChangingPage::start(&page(&[
        ("Apple", "1.00", "in"),
        ("Banana", "2.00", "in"),
        ("Cherry", "3.00", "in"),
        ("Date", "4.00", "in"),
    ]));
    let data = tempfile::tempdir().expect("tempdir");
    run_ok(data.path(), &["migrate"]);
    run_ok(
        data.path(),
        &[
            "user",
            "create",
            "--email",
            "monitor@example.com",
            "--plan",
            "self-hosted",
        ],
    );
    let key = run_ok(
        data.path(),
        &["key", "create", "--email", "monitor@example.com"],
    )
    .trim()
    .to_owned();
    let server = start_server(data.path(), &["--allow-private-networks"]);
    let api = Api::new(&server.base, &key);

    let spec = json!({
        "name": "Fruit prices",
        "start_urls": [site.url],
        "item_selector": "li.item",
        "fields": [
            {"name": "title", "selector": ".name", "type": "text"},
            {"name": "price", "selector": ".price", "type": "text"},
            {"name": "stock", "selector": ".stock", "type": "text"}
        ],
        "respect_robots_txt": false,
        "schedule": {"cron": "0 0 1 1 *", "key_field": "title"}
    });
    let (status, task) = api.post_json("/api/v1/tasks", &spec).await;
    assert_eq!(status, 201, "{task}");
    let task_id = task["id"].as_str().expect("task id").to_owned();
    let first = task["latest_run"]["id"]
        .as_str()
        .expect("first run")
        .to_owned();
    let done = api.wait_terminal(&first, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "completed", "{done}");

    site.set(&page(&[
        ("Apple", "1.00", "in"),
        ("Banana", "2.50", "in"),
        ("Date", "4.00", "out"),
        ("E & <Friends>", "5.00", "in"),
    ]));
    let (status, run) = api
        .post_json(&format!("/api/v1/tasks/{task_id}/runs"), &json!({}))
        .await;
    assert!(status == 201 || status == 202, "{status}: {run}");
    let second = run["id"].as_str().expect("second run").to_owned();
    let done = api.wait_terminal(&second, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "completed", "{done}");

    // The baseline: everything added, no alert.
    let baseline = api.get_json(&format!("/api/v1/runs/{first}/changes")).await;
    assert_eq!(baseline["summary"]["added"], 4);
    assert_eq!(baseline["summary"]["previous_run_id"], Value::Null);
    assert_eq!(baseline["summary"]["passed_threshold"], false);

    let changes = api
        .get_json(&format!("/api/v1/runs/{second}/changes"))
        .await;
    let summary = &changes["summary"];
    assert_eq!(summary["previous_run_id"], first.as_str());
    assert_eq!(summary["key_field"], "title");
    assert_eq!(
        [
            &summary["added"],
            &summary["removed"],
            &summary["changed"],
            &summary["unchanged"]
        ],
        [&json!(1), &json!(1), &json!(2), &json!(1)],
        "{summary}"
    );
    assert_eq!(summary["passed_threshold"], true);
    let items = changes["items"].as_array().expect("items");
    assert_eq!(
        items,
        &vec![
            json!({"kind": "added", "key": "\"E & <Friends>\"", "record": {"price": "5.00", "stock": "in", "title": "E & <Friends>"}, "previous": null, "fields": []}),
            json!({"kind": "removed", "key": "\"Cherry\"", "record": null, "previous": {"price": "3.00", "stock": "in", "title": "Cherry"}, "fields": []}),
            json!({"kind": "changed", "key": "\"Banana\"", "record": {"price": "2.50", "stock": "in", "title": "Banana"}, "previous": {"price": "2.00", "stock": "in", "title": "Banana"}, "fields": [{"field": "price", "old": "2.00", "new": "2.50"}]}),
            json!({"kind": "changed", "key": "\"Date\"", "record": {"price": "4.00", "stock": "out", "title": "Date"}, "previous": {"price": "4.00", "stock": "in", "title": "Date"}, "fields": [{"field": "stock", "old": "in", "new": "out"}]}),
        ]
    );

    // The feed, with a token, as a feed reader fetches it (no API key).
    let (status, token) = api
        .post_json(&format!("/api/v1/tasks/{task_id}/feed-tokens"), &json!({}))
        .await;
    assert_eq!(status, 201, "{token}");
    let token = token["token"].as_str().expect("token").to_owned();
    let response = reqwest::get(format!(
        "{}/api/v1/tasks/{task_id}/changes.atom?token={token}",
        server.base
    ))
    .await
    .expect("feed fetched");
    assert_eq!(response.status().as_u16(), 200);
    let feed = parse_feed(&response.bytes().await.expect("feed body"));
    assert_eq!(feed["bozo"], false, "{feed}");
    assert_eq!(feed["version"], "atom10");
    assert_eq!(feed["title"], "Fruit prices: changes");
    let entries = feed["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{feed}");
    assert_eq!(entries[0]["id"], format!("urn:selextract:run:{second}"));
    assert_eq!(entries[0]["title"], "1 added, 1 removed, 2 changed");
    assert_eq!(
        entries[0]["link"],
        format!(
            "{}/api/v1/runs/{second}/changes",
            server_public_base(&feed, &second)
        )
    );
    let content = entries[0]["content"].as_str().expect("content");
    assert!(content.contains("added \"E & <Friends>\""), "{content}");
    assert!(content.contains("removed \"Cherry\""), "{content}");
    assert!(content.contains("price: \"2.00\" -> \"2.50\""), "{content}");
    assert!(content.contains("stock: \"in\" -> \"out\""), "{content}");
    assert_eq!(entries[1]["id"], format!("urn:selextract:run:{first}"));
    assert_eq!(entries[1]["title"], "4 added, 0 removed, 0 changed");

    // The token opens nothing else.
    let as_key = Api::new(&server.base, &token);
    let (status, _) = as_key.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(status, 401);
}

/// The links' base is the server's configured public URL; take it from the entry itself
/// (whatever it is, it must end with the run's changes path).
fn server_public_base(feed: &Value, run: &str) -> String {
    let link = feed["entries"][0]["link"].as_str().unwrap_or_default();
    link.strip_suffix(&format!("/api/v1/runs/{run}/changes"))
        .unwrap_or("<no such suffix>")
        .to_owned()
}
