//! Shared helpers: finding Chromium (or skipping), pools in temp dirs, engine runs, and
//! process-table checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use selextract_browser::{BrowserFetcher, BrowserPool, BrowserPoolConfig, find_chromium};
use selextract_engine::{EngineEvent, EngineOptions, LogLine, PageResult, Summary};
use selextract_fetch::{FetchRequest, HttpFetcher, HttpFetcherConfig};
use selextract_spec::{Limits, ValidatedSpec, parse_task_input};
use selextract_testkit::FixtureSite;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The Chromium binary, or `None` after printing why the test is skipped. Panics instead
/// when `SELEXTRACT_REQUIRE_CHROMIUM=1`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = find_chromium() {
        return Some(path);
    }
    if std::env::var("SELEXTRACT_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1") {
        panic!(
            "SELEXTRACT_REQUIRE_CHROMIUM=1 but no Chromium was found (scripts/ensure-test-services installs it)"
        );
    }
    eprintln!(
        "SKIPPED: Chromium is not installed (apt-get install chromium-headless-shell); \
         set SELEXTRACT_REQUIRE_CHROMIUM=1 to fail instead of skipping"
    );
    None
}

/// Returns from the test when Chromium is missing (after saying so).
macro_rules! require_chromium {
    () => {
        match crate::support::chromium() {
            Some(path) => path,
            None => return,
        }
    };
}
pub(crate) use require_chromium;

pub struct TestPool {
    pub pool: Arc<BrowserPool>,
    pub dir: tempfile::TempDir,
}

impl TestPool {
    pub fn fetcher(&self) -> Arc<BrowserFetcher> {
        Arc::new(BrowserFetcher::new(self.pool.clone()))
    }

    pub fn runtime_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Shuts the pool down and asserts that no Chromium process of it is left.
    pub async fn shutdown_and_assert_no_leftovers(&self, pgids: &[i32]) {
        self.pool.shutdown().await;
        assert_no_leftovers(self.runtime_dir(), pgids);
    }
}

/// A pool whose guard allows only the fixture site's own address.
pub async fn pool(
    chromium: &Path,
    site: &FixtureSite,
    tweak: impl FnOnce(&mut BrowserPoolConfig),
) -> TestPool {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = BrowserPoolConfig::new(chromium, dir.path());
    config.guard.allowed_private_addrs = vec![site.addr()];
    tweak(&mut config);
    let pool = BrowserPool::start(config).await.expect("pool starts");
    TestPool { pool, dir }
}

pub fn assert_no_leftovers(runtime_dir: &Path, pgids: &[i32]) {
    let named = selextract_browser::processes_mentioning(&runtime_dir.display().to_string());
    assert!(
        named.is_empty(),
        "Chromium processes of the pool survive: {named:?}"
    );
    for &pgid in pgids {
        let members = selextract_browser::group_members(pgid);
        assert!(
            members.is_empty(),
            "processes of browser group {pgid} survive (zombies included): {members:?}"
        );
    }
}

pub fn spec(value: Value) -> Arc<ValidatedSpec> {
    match parse_task_input(&value, &Limits::default()) {
        Ok(input) => Arc::new(input.spec),
        Err(errors) => panic!("invalid test spec: {errors}"),
    }
}

pub fn http_fetcher(site: &FixtureSite) -> Arc<HttpFetcher> {
    let config = HttpFetcherConfig {
        allowed_private_addrs: vec![site.addr()],
        ..HttpFetcherConfig::default()
    };
    Arc::new(HttpFetcher::new(config).expect("fetcher builds"))
}

pub fn options(site: &FixtureSite, browser: Option<&TestPool>) -> EngineOptions {
    let mut options = EngineOptions::new(http_fetcher(site));
    options.browser = browser.map(|p| p.fetcher() as Arc<dyn selextract_fetch::Fetcher>);
    options
}

pub struct Run {
    pub pages: Vec<PageResult>,
    #[allow(dead_code)] // kept for tests that assert on the run log
    pub logs: Vec<LogLine>,
    pub summary: Summary,
}

impl Run {
    pub fn records(&self) -> Vec<&serde_json::Map<String, Value>> {
        self.pages.iter().flat_map(|p| p.records.iter()).collect()
    }

    /// The `title` field of every record, in page order.
    pub fn titles(&self) -> Vec<String> {
        let mut pages: Vec<&PageResult> = self.pages.iter().collect();
        pages.sort_by_key(|p| p.key);
        pages
            .iter()
            .flat_map(|p| p.records.iter())
            .filter_map(|r| r.get("title").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }
}

pub async fn run(
    spec: Arc<ValidatedSpec>,
    options: EngineOptions,
    cancel: CancellationToken,
) -> Run {
    let mut rx = selextract_engine::start(spec, options, cancel).expect("engine starts");
    let mut pages = Vec::new();
    let mut logs = Vec::new();
    let mut summary = None;
    while let Some(event) = rx.recv().await {
        match event {
            EngineEvent::Page(page) => pages.push(*page),
            EngineEvent::Log(line) => logs.push(line),
            EngineEvent::Done(done) => summary = Some(done),
            EngineEvent::Progress(_) => {}
        }
    }
    Run {
        pages,
        logs,
        summary: summary.expect("a Done event ends every run"),
    }
}

pub fn request(url: &str) -> FetchRequest {
    let mut request = FetchRequest::new(url.parse().expect("valid URL"));
    request.timeout = Duration::from_secs(20);
    request
}

/// The products fields used by most tests.
pub fn product_fields() -> Value {
    serde_json::json!([
        {"name": "title", "selector": "h2 a"},
        {"name": "url", "selector": "h2 a", "type": "link"}
    ])
}
