//! `selextract scrape` with browser and auto tasks, in real Chromium. Without Chromium the
//! tests skip with a message, unless `SELEXTRACT_REQUIRE_CHROMIUM=1` (CI), where they fail.

use std::process::Command;

use selextract_testkit::FixtureSite;
use serde_json::{Value, json};

fn chromium_present() -> bool {
    if selextract_browser::find_chromium().is_some() {
        return true;
    }
    assert!(
        std::env::var("SELEXTRACT_REQUIRE_CHROMIUM").map_or(true, |v| v != "1"),
        "SELEXTRACT_REQUIRE_CHROMIUM=1 but no Chromium was found (scripts/ensure-test-services installs it)"
    );
    eprintln!(
        "SKIPPED: Chromium is not installed; set SELEXTRACT_REQUIRE_CHROMIUM=1 to fail instead"
    );
    false
}

fn scrape_jsonl(task: &Value) -> (i32, Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("task.json");
    std::fs::write(&path, serde_json::to_vec(task).expect("json")).expect("write");
    let out = Command::new(crate::support::binary())
        .args([
            "scrape",
            path.to_str().expect("utf-8"),
            "--format",
            "jsonl",
            "--allow-private-networks",
        ])
        .output()
        .expect("runs");
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        records,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn js_task(site: &FixtureSite, mode: &str) -> Value {
    json!({
        "start_urls": [site.url("/js/catalog?page=1")],
        "mode": mode,
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2 a"}, {"name": "url", "selector": "h2 a", "type": "link"}],
        "browser": {"wait_conditions": [{"type": "element", "selector": "#done", "timeout_ms": 10000}]}
    })
}

#[test]
fn a_browser_task_extracts_javascript_content_that_http_mode_misses() {
    if !chromium_present() {
        return;
    }
    let site = FixtureSite::start_blocking();
    let (code, records, stderr) = scrape_jsonl(&js_task(&site, "browser"));
    assert_eq!(code, 0, "{stderr}");
    let titles: Vec<&str> = records.iter().filter_map(|r| r["title"].as_str()).collect();
    let expected: Vec<String> = (1..=10).map(|id| format!("Product {id}")).collect();
    assert_eq!(titles, expected);
    assert!(
        stderr.contains("5 compute units"),
        "a rendered page costs 5 CU: {stderr}"
    );

    let (code, records, _) = scrape_jsonl(&js_task(&site, "http"));
    assert_eq!(code, 0);
    assert!(
        records.is_empty(),
        "plain HTTP sees no products: {records:?}"
    );
}

#[test]
fn an_auto_task_renders_only_the_page_that_needs_it() {
    if !chromium_present() {
        return;
    }
    let site = FixtureSite::start_blocking();
    let mut task = js_task(&site, "auto");
    task["start_urls"] = json!([site.url("/js/catalog?page=1"), site.url("/catalog?page=1")]);
    let (code, records, stderr) = scrape_jsonl(&task);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(records.len(), 20, "10 rendered + 10 static products");
    // HTTP for both pages (2 CU) plus one render (5 CU).
    assert!(stderr.contains("7 compute units"), "{stderr}");
}
