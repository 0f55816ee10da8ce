//! `selextract scrape` and `selextract validate` against the testkit fixture site.

use std::path::Path;
use std::process::{Command, Output};

use selextract_testkit::FixtureSite;
use serde_json::{Value, json};

fn selextract(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_selextract"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn write_task(dir: &Path, task: &Value) -> String {
    let path = dir.join("task.json");
    std::fs::write(&path, serde_json::to_vec_pretty(task).expect("serialises")).expect("writes");
    path.to_string_lossy().into_owned()
}

/// Every row of the first worksheet as strings.
pub fn xlsx_rows(path: &Path) -> Vec<Vec<String>> {
    use calamine::Reader;
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook(path).expect("workbook opens");
    let sheet = workbook
        .sheet_names()
        .first()
        .cloned()
        .expect("a worksheet");
    let range = workbook.worksheet_range(&sheet).expect("worksheet reads");
    range
        .rows()
        .map(|row| row.iter().map(ToString::to_string).collect())
        .collect()
}

fn catalogue_task(site: &FixtureSite) -> Value {
    json!({
        "name": "catalogue",
        "start_urls": [site.url("/catalog?page=1")],
        "item_selector": "div.product",
        "fields": [
            {"name": "title", "selector": "h2 a"},
            {"name": "url", "selector": "h2 a", "type": "link"},
            {"name": "price", "selector": ".price", "transform": [{"regex": "[0-9.]+"}, "number"]},
            {"name": "tags", "selector": ".tag", "multiple": true, "required": false}
        ],
        "pagination": {"next_selector": "a.next", "max_pages": 50}
    })
}

#[test]
fn scrape_writes_every_record_of_the_catalogue_as_jsonl() {
    let site = FixtureSite::start_blocking();
    let dir = tempfile::tempdir().expect("tempdir");
    let task = write_task(dir.path(), &catalogue_task(&site));
    let out = selextract(&[
        "scrape",
        &task,
        "--format",
        "jsonl",
        "--allow-private-networks",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(records.len(), 50);
    let titles: std::collections::HashSet<&str> =
        records.iter().filter_map(|r| r["title"].as_str()).collect();
    assert_eq!(titles.len(), 50, "no duplicates");
    assert!(
        records
            .iter()
            .all(|r| r["price"].is_f64() || r["price"].is_u64())
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("completed"), "summary line: {summary}");
    assert!(summary.contains("50 records"), "summary line: {summary}");
}

#[test]
fn scrape_without_the_flag_refuses_the_loopback_fixture() {
    let site = FixtureSite::start_blocking();
    let dir = tempfile::tempdir().expect("tempdir");
    let task = write_task(dir.path(), &catalogue_task(&site));
    let out = selextract(&["scrape", &task, "--format", "jsonl"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a run where no page succeeded exits 3"
    );
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("blocked_address"));
    assert_eq!(site.hits("/catalog"), 0, "nothing reached the site");
}

/// Scrape the fixture catalogue into `dir/name` (format from the extension); asserts success.
fn scrape_catalogue_to_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let site = FixtureSite::start_blocking();
    let task = write_task(dir, &catalogue_task(&site));
    let path = dir.join(name);
    let out = selextract(&[
        "scrape",
        &task,
        "-o",
        path.to_str().expect("utf-8"),
        "--allow-private-networks",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn scrape_to_a_csv_file_infers_the_format_and_writes_a_complete_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv_path = scrape_catalogue_to_file(dir.path(), "out.csv");
    let mut reader = csv::Reader::from_path(&csv_path).expect("csv opens");
    let headers: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(headers, ["title", "url", "price", "tags"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row parses")).collect();
    assert_eq!(rows.len(), 50);
    assert!(
        rows.iter()
            .all(|row| row.iter().take(3).all(|cell| !cell.is_empty()))
    );
}

#[test]
fn scrape_to_an_xlsx_file_writes_a_workbook_with_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xlsx_path = scrape_catalogue_to_file(dir.path(), "out.xlsx");
    let bytes = std::fs::read(&xlsx_path).expect("xlsx written");
    assert_eq!(&bytes[..2], b"PK", "an XLSX file is a zip archive");
    let rows = xlsx_rows(&xlsx_path);
    assert_eq!(rows.len(), 51, "header plus 50 records");
    assert_eq!(rows[0], ["title", "url", "price", "tags"]);
}

#[test]
fn quick_form_scrapes_without_a_task_file() {
    let site = FixtureSite::start_blocking();
    let url = site.url("/catalog?page=1");
    let out = selextract(&[
        "scrape",
        "--url",
        &url,
        "--item",
        "div.product",
        "--field",
        "title=h2 a",
        "--field",
        "link=h2 a@href",
        "--field",
        "rating=.stars@data-rating",
        "--next",
        "a.next",
        "--max-pages",
        "2",
        "--format",
        "jsonl",
        "--allow-private-networks",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 20);
    assert!(
        records[0]["link"]
            .as_str()
            .is_some_and(|l| l.starts_with("http://127.0.0.1:"))
    );
    assert!(records[0]["rating"].is_string());
}

#[test]
fn a_run_with_some_failed_pages_exits_2() {
    let site = FixtureSite::start_blocking();
    let dir = tempfile::tempdir().expect("tempdir");
    let task = json!({
        "start_urls": [site.url("/catalog?page=1"), site.url("/status/404")],
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2 a"}]
    });
    let task = write_task(dir.path(), &task);
    let out = selextract(&[
        "scrape",
        &task,
        "--format",
        "json",
        "--allow-private-networks",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let records: Value = serde_json::from_slice(&out.stdout).expect("a JSON array");
    assert_eq!(records.as_array().map(Vec::len), Some(10));
}

#[test]
fn an_invalid_task_exits_1_and_names_the_json_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let task = json!({"start_urls": ["https://example.com/"], "fields": [{"name": "a", "selector": "h2 a"}, {"name": "b", "selector": "p[[["}]});
    let task = write_task(dir.path(), &task);
    for command in ["scrape", "validate"] {
        let out = selextract(&[command, &task]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("fields[1].selector"), "{command}: {stderr}");
    }
}

#[test]
fn validate_prints_the_normalised_spec_of_a_compatibility_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let task = json!({"url": "https://shop.example/list", "fields": [{"name": "title", "selector": "h2", "type": "text"}],
                      "pagination": {"enabled": true, "next_selector": "a.next", "max_pages": 3}});
    let task = write_task(dir.path(), &task);
    let out = selextract(&["validate", &task]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec: Value = serde_json::from_slice(&out.stdout).expect("prints JSON");
    assert_eq!(spec["start_urls"], json!(["https://shop.example/list"]));
    assert_eq!(spec["pagination"]["next_selector"], "a.next");
    assert_eq!(spec["respect_robots_txt"], true);
}

#[test]
fn ctrl_c_stops_the_run_and_keeps_a_valid_file_with_what_was_written() {
    let site = FixtureSite::start_blocking();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut urls = vec![site.url("/catalog?page=1")];
    urls.extend((0..4).map(|i| site.url(&format!("/slow?ms=30000&i={i}"))));
    let task = json!({
        "start_urls": urls,
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2 a"}],
        "max_retries": 0,
        "timeout_ms": 60000
    });
    let task = write_task(dir.path(), &task);
    let out_path = dir.path().join("out.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_selextract"))
        .args([
            "scrape",
            &task,
            "-o",
            out_path.to_str().expect("utf-8"),
            "--allow-private-networks",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    // Wait until the fast page's records are on disk, while the slow pages are in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&out_path).map_or(0, |s| s.matches("Product").count()) < 10 {
        assert!(std::time::Instant::now() < deadline, "no records written");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(130));
    let records: Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).expect("output kept"))
            .expect("the output is closed as a valid JSON array");
    assert_eq!(records.as_array().map(Vec::len), Some(10));
}

#[test]
fn validate_and_scrape_obey_the_configured_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let task = write_task(
        dir.path(),
        &json!({
            "name": "two fields",
            "start_urls": ["http://127.0.0.1:9/"],
            "fields": [
                {"name": "a", "selector": "h1"},
                {"name": "b", "selector": ":not(:not(:not(p)))"}
            ]
        }),
    );
    // Within the built-in limits the task is valid.
    let out = selextract(&["validate", &task]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A configuration file with tighter limits applies to validate and to scrape alike.
    let config = dir.path().join("tight.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_fields = 1\nmax_selector_depth = 2\n",
    )
    .expect("writes");
    for command in ["validate", "scrape"] {
        let out = selextract(&[command, &task, "--config", config.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("fields: at most 1 fields allowed"),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("fields[1].selector"), "{command}: {stderr}");
    }
}
