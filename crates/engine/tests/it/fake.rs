//! Shared setup for the tests on the scripted fake fetcher: product pages, engine options
//! over fakes, and a run collected with its log.

use std::sync::Arc;

use selextract_engine::{Budget, EngineEvent, EngineOptions, PageResult, Summary};
use selextract_spec::ValidatedSpec;
use selextract_testkit::FakeFetcher;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// An HTML page with one `div.product` (title in `h2`) per title.
pub fn product_page(titles: &[&str]) -> String {
    let products: String = titles
        .iter()
        .map(|title| format!(r#"<div class="product"><h2>{title}</h2></div>"#))
        .collect();
    format!("<html><body>{products}</body></html>")
}

/// A spec over `urls` in `mode` reading `div.product` titles.
pub fn product_spec(urls: &[&str], mode: &str) -> Value {
    json!({
        "start_urls": urls,
        "mode": mode,
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2"}],
        "max_retries": 0
    })
}

/// Engine options over fake fetchers, with `budget`.
pub fn options(
    http: &Arc<FakeFetcher>,
    browser: Option<&Arc<FakeFetcher>>,
    budget: Arc<dyn Budget>,
) -> EngineOptions {
    let mut options = EngineOptions::new(http.clone());
    options.browser = browser.map(|b| b.clone() as Arc<dyn selextract_fetch::Fetcher>);
    options.budget = budget;
    options
}

/// The run's pages, summary and log messages.
pub async fn run(
    spec: Arc<ValidatedSpec>,
    options: EngineOptions,
) -> (Vec<PageResult>, Summary, Vec<String>) {
    let mut rx =
        selextract_engine::start(spec, options, CancellationToken::new()).expect("engine starts");
    let (mut pages, mut summary, mut log) = (Vec::new(), None, Vec::new());
    while let Some(event) = rx.recv().await {
        match event {
            EngineEvent::Page(page) => pages.push(*page),
            EngineEvent::Done(done) => summary = Some(done),
            EngineEvent::Log(line) => log.push(line.message),
            EngineEvent::Progress(_) => {}
        }
    }
    (pages, summary.expect("a Done event ends every run"), log)
}

pub fn titles(page: &PageResult) -> Vec<&str> {
    page.records
        .iter()
        .filter_map(|record| record.get("title").and_then(Value::as_str))
        .collect()
}
