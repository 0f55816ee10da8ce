//! Engine tests: against the testkit fixture site on 127.0.0.1, and against the scripted
//! fake fetcher (auto mode, compute-unit reservations, the time limit, oversized records)
//! without network or Chromium.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auto_mode;
mod fake;
mod records_too_large;
mod reservation;
mod time_limit;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use selextract_engine::{
    Budget, EngineEvent, EngineOptions, PageOutcome, PageResult, Reason, StopReason, Summary,
    Verdict,
};
use selextract_fetch::{HttpFetcher, HttpFetcherConfig};
use selextract_spec::{Limits, ValidatedSpec, parse_task_input};
use selextract_testkit::FixtureSite;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn spec(value: Value) -> Arc<ValidatedSpec> {
    spec_with_limits(value, &Limits::default())
}

fn spec_with_limits(value: Value, limits: &Limits) -> Arc<ValidatedSpec> {
    match parse_task_input(&value, limits) {
        Ok(input) => Arc::new(input.spec),
        Err(errors) => panic!("invalid test spec: {errors}"),
    }
}

fn fetcher(site: &FixtureSite) -> Arc<HttpFetcher> {
    let config = HttpFetcherConfig {
        allowed_private_addrs: vec![site.addr()],
        ..HttpFetcherConfig::default()
    };
    Arc::new(HttpFetcher::new(config).expect("fetcher builds"))
}

fn catalogue_spec(site: &FixtureSite, max_pages: u32) -> Value {
    json!({
        "name": "catalogue",
        "start_urls": [site.url("/catalog?page=1")],
        "item_selector": "div.product",
        "fields": [
            {"name": "title", "selector": "h2 a"},
            {"name": "url", "selector": "h2 a", "type": "link"}
        ],
        "pagination": {"next_selector": "a.next", "max_pages": max_pages},
        "retry_delay_ms": 10
    })
}

pub(crate) async fn collect(
    spec: Arc<ValidatedSpec>,
    options: EngineOptions,
    cancel: CancellationToken,
) -> (Vec<PageResult>, Summary) {
    let mut rx = selextract_engine::start(spec, options, cancel).expect("engine starts");
    let mut pages = Vec::new();
    let mut summary = None;
    while let Some(event) = rx.recv().await {
        match event {
            EngineEvent::Page(page) => pages.push(*page),
            EngineEvent::Done(done) => summary = Some(done),
            EngineEvent::Progress(_) | EngineEvent::Log(_) => {}
        }
    }
    (pages, summary.expect("a Done event ends every run"))
}

#[tokio::test]
async fn follows_next_links_through_the_whole_catalogue_in_page_order() {
    let site = FixtureSite::start().await;
    let (pages, summary) = collect(
        spec(catalogue_spec(&site, 50)),
        EngineOptions::new(fetcher(&site)),
        CancellationToken::new(),
    )
    .await;
    let keys: Vec<String> = pages.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(keys, ["s0-p0", "s0-p1", "s0-p2", "s0-p3", "s0-p4"]);
    assert!(pages.iter().all(|p| p.outcome == PageOutcome::Ok));
    assert!(pages.iter().all(|p| p.records.len() == 10));
    assert_eq!(summary.progress.records, 50);
    assert_eq!(summary.progress.pages_done, 5);
    assert_eq!(summary.progress.compute_units, 5);
    assert_eq!(summary.stop, StopReason::Finished);
    assert_eq!(summary.verdict(), Verdict::Completed);
    let first = &pages[0].records[0];
    assert!(
        first["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&site.url("/item/")))
    );
}

#[tokio::test]
async fn max_pages_bounds_the_chain() {
    let site = FixtureSite::start().await;
    let (pages, summary) = collect(
        spec(catalogue_spec(&site, 2)),
        EngineOptions::new(fetcher(&site)),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(pages.len(), 2);
    assert_eq!(summary.progress.records, 20);
}

#[tokio::test]
async fn stop_selector_ends_pagination_after_the_matching_page() {
    let site = FixtureSite::start().await;
    let mut value = catalogue_spec(&site, 50);
    // The catalogue's first page has a next link; stop on any page with one.
    value["pagination"]["stop_selector"] = json!("a.next");
    let (pages, _) = collect(
        spec(value),
        EngineOptions::new(fetcher(&site)),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(pages.len(), 1);
}

#[tokio::test]
async fn many_start_urls_run_concurrently_and_each_page_is_emitted_once() {
    let site = FixtureSite::start().await;
    let urls: Vec<String> = (1..=5)
        .map(|p| site.url(&format!("/catalog?page={p}")))
        .collect();
    let value = json!({
        "start_urls": urls,
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2 a"}]
    });
    let mut options = EngineOptions::new(fetcher(&site));
    options.concurrency = 3;
    let (pages, summary) = collect(spec(value), options, CancellationToken::new()).await;
    let mut starts: Vec<u32> = pages.iter().map(|p| p.key.start_index).collect();
    starts.sort_unstable();
    assert_eq!(starts, [0, 1, 2, 3, 4]);
    assert!(pages.iter().all(|p| p.key.page_index == 0));
    assert_eq!(summary.progress.records, 50);
}

#[tokio::test]
async fn failed_pages_are_reported_with_their_outcome_and_the_run_is_partial() {
    let site = FixtureSite::start().await;
    let value = json!({
        "start_urls": [site.url("/catalog?page=1"), site.url("/status/404"), site.url("/status/500")],
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2 a"}],
        "max_retries": 1,
        "retry_delay_ms": 10
    });
    let (pages, summary) = collect(
        spec(value),
        EngineOptions::new(fetcher(&site)),
        CancellationToken::new(),
    )
    .await;
    let mut outcomes: Vec<String> = pages.iter().map(|p| p.outcome.label()).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["http_404", "http_500", "ok"]);
    assert_eq!(summary.verdict(), Verdict::Partial(Reason::FetchErrors));
    // Pages that answered are charged even when the answer was an error status.
    assert_eq!(summary.progress.compute_units, 3);
}

#[tokio::test]
async fn a_refused_address_is_an_error_outcome_without_charge() {
    let site = FixtureSite::start().await;
    // Port 1 on loopback is not the allowed fixture address: the guard refuses it.
    let value = json!({"start_urls": ["http://127.0.0.1:1/"], "fields": [{"name": "t", "selector": "title"}]});
    let (pages, summary) = collect(
        spec(value),
        EngineOptions::new(fetcher(&site)),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].outcome.label(), "blocked_address");
    assert_eq!(summary.progress.compute_units, 0);
    assert_eq!(summary.verdict(), Verdict::Failed(Reason::FetchErrors));
}

/// A budget of a fixed number of units; `left` tells what is still unspent.
pub(crate) struct Limited(AtomicU64);

impl Limited {
    pub(crate) fn new(units: u64) -> Arc<Limited> {
        Arc::new(Limited(AtomicU64::new(units)))
    }

    pub(crate) fn left(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Budget for Limited {
    fn try_reserve(&self, units: u64) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(units)
            })
            .is_ok()
    }
    fn refund(&self, units: u64) {
        self.0.fetch_add(units, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn an_exhausted_budget_stops_the_run_as_partial() {
    let site = FixtureSite::start().await;
    let mut options = EngineOptions::new(fetcher(&site));
    options.budget = Arc::new(Limited(AtomicU64::new(3)));
    let (pages, summary) = collect(
        spec(catalogue_spec(&site, 50)),
        options,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(pages.len(), 3);
    assert_eq!(summary.stop, StopReason::BudgetExhausted);
    assert_eq!(
        summary.verdict(),
        Verdict::Partial(Reason::InsufficientComputeUnits)
    );
    assert_eq!(summary.progress.compute_units, 3);
}

#[tokio::test]
async fn cancellation_stops_a_slow_run_promptly() {
    let site = FixtureSite::start().await;
    let urls: Vec<String> = (0..20)
        .map(|i| site.url(&format!("/slow?ms=5000&i={i}")))
        .collect();
    let value = json!({"start_urls": urls, "fields": [{"name": "t", "selector": "title"}], "max_retries": 0});
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = std::time::Instant::now();
    let (pages, summary) = collect(spec(value), EngineOptions::new(fetcher(&site)), cancel).await;
    assert_eq!(summary.stop, StopReason::Cancelled);
    assert_eq!(summary.verdict(), Verdict::Cancelled);
    // Nothing had answered when the run was cancelled, and the slow pages were abandoned
    // rather than waited for (each takes 5 s; twenty of them at concurrency 8 take 15 s).
    assert!(pages.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn browser_mode_without_a_browser_is_refused_up_front() {
    let site = FixtureSite::start().await;
    let value = json!({"start_urls": [site.url("/catalog?page=1")], "mode": "browser", "fields": [{"name": "t", "selector": "title"}]});
    let result = selextract_engine::start(
        spec(value),
        EngineOptions::new(fetcher(&site)),
        CancellationToken::new(),
    );
    assert!(result.is_err());
}
