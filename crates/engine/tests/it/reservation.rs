//! Compute units are reserved before a browser render starts, for every snapshot it may
//! return: the render is capped to what the budget granted, what it did not use is
//! refunded, and nothing is charged twice.

use std::sync::Arc;

use selextract_engine::{Budget, FetchMode, Reason, StopReason, Verdict};
use selextract_testkit::{FakeFetcher, RequestKind, Script};
use serde_json::{Value, json};

use crate::fake::{options, product_page, run, titles};
use crate::{Limited, spec};

const URL: &str = "https://shop.example/feed";

/// Browser mode with a "load more" button: up to `max_pages` snapshots of one URL.
fn load_more_spec(urls: &[&str], max_pages: u32) -> Value {
    json!({
        "start_urls": urls,
        "mode": "browser",
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2"}],
        "pagination": {"next_selector": "button.more", "max_pages": max_pages},
        "max_retries": 0
    })
}

/// `count` snapshots, the n-th holding product `n`.
fn snapshots(count: usize) -> Script {
    Script::snapshots((1..=count).map(|n| product_page(&[&format!("Product {n}")])))
}

fn charged(pages: &[selextract_engine::PageResult]) -> u64 {
    pages.iter().map(|page| page.compute_units).sum()
}

#[tokio::test]
async fn a_render_is_capped_to_the_snapshots_the_budget_granted_before_it_started() {
    let http = Arc::new(FakeFetcher::new());
    let browser = Arc::new(FakeFetcher::new());
    browser.script(URL, snapshots(10));
    // Three browser pages (5 each) fit in 17 units, a fourth does not.
    let budget = Limited::new(17);

    let (pages, summary, log) = run(
        spec(load_more_spec(&[URL], 10)),
        options(&http, Some(&browser), budget.clone()),
    )
    .await;

    assert_eq!(
        browser.requests()[0].kind,
        RequestKind::Render { max_pages: 3 }
    );
    assert_eq!(browser.renders(), 1);
    let keys: Vec<String> = pages.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(keys, ["s0-p0", "s0-p1", "s0-p2"]);
    assert_eq!(titles(&pages[2]), ["Product 3"]);
    assert!(pages.iter().all(|page| page.compute_units == 5));
    assert!(pages.iter().all(|page| page.mode == FetchMode::Browser));
    assert_eq!(charged(&pages), 15);
    assert_eq!(
        budget.left(),
        2,
        "what was charged is exactly what left the budget"
    );
    assert_eq!(summary.stop, StopReason::BudgetExhausted);
    assert_eq!(
        summary.verdict(),
        Verdict::Partial(Reason::InsufficientComputeUnits)
    );
    assert_eq!(
        log.iter()
            .filter(|line| *line == "compute units exhausted; the run stops")
            .count(),
        1
    );
}

#[tokio::test]
async fn snapshots_the_render_did_not_return_are_refunded() {
    let http = Arc::new(FakeFetcher::new());
    let browser = Arc::new(FakeFetcher::new());
    // The button disappears after four snapshots.
    browser.script(URL, snapshots(4));
    let budget = Limited::new(100);

    let (pages, summary, _) = run(
        spec(load_more_spec(&[URL], 10)),
        options(&http, Some(&browser), budget.clone()),
    )
    .await;

    assert_eq!(
        browser.requests()[0].kind,
        RequestKind::Render { max_pages: 10 }
    );
    assert_eq!(pages.len(), 4);
    assert_eq!(charged(&pages), 20);
    assert_eq!(budget.left(), 80);
    assert_eq!(summary.verdict(), Verdict::Completed);
}

#[tokio::test]
async fn a_budget_below_one_browser_page_starts_no_render() {
    let http = Arc::new(FakeFetcher::new());
    let browser = Arc::new(FakeFetcher::new());
    browser.script(URL, snapshots(10));
    let budget = Limited::new(4);

    let (pages, summary, _) = run(
        spec(load_more_spec(&[URL], 10)),
        options(&http, Some(&browser), budget.clone()),
    )
    .await;

    assert!(pages.is_empty());
    assert_eq!(browser.renders(), 0);
    assert_eq!(budget.left(), 4);
    assert_eq!(
        summary.verdict(),
        Verdict::Failed(Reason::InsufficientComputeUnits)
    );
}

#[tokio::test]
async fn a_failed_render_is_a_failed_page_and_refunds_its_whole_reservation() {
    let http = Arc::new(FakeFetcher::new());
    let browser = Arc::new(FakeFetcher::new());
    browser.script(URL, Script::error("timeout"));
    let budget = Limited::new(100);

    let (pages, summary, _) = run(
        spec(load_more_spec(&[URL], 10)),
        options(&http, Some(&browser), budget.clone()),
    )
    .await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].outcome.label(), "timeout");
    assert_eq!(pages[0].compute_units, 0);
    assert_eq!(budget.left(), 100);
    assert_eq!(summary.verdict(), Verdict::Failed(Reason::FetchErrors));
}

#[tokio::test]
async fn concurrent_renders_never_spend_more_than_the_budget_and_charge_each_unit_once() {
    let urls: Vec<String> = (0..6)
        .map(|i| format!("https://shop.example/feed/{i}"))
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let http = Arc::new(FakeFetcher::new());
    let browser = Arc::new(FakeFetcher::new());
    for url in &urls {
        browser.script(url, snapshots(10));
    }
    // 37 units: seven browser pages at most, shared by six chains rendering at once.
    let budget = Limited::new(37);
    let mut engine_options = options(&http, Some(&browser), budget.clone());
    engine_options.concurrency = 6;

    let (pages, summary, _) = run(spec(load_more_spec(&urls, 10)), engine_options).await;

    // Which chains got the units depends on scheduling; how many does not: renders under
    // way when another chain's reservation is refused still deliver what they paid for.
    assert_eq!(pages.len(), 7);
    assert_eq!(charged(&pages), 35);
    assert_eq!(budget.left(), 2, "no unit charged twice or lost");
    assert_eq!(browser.snapshots_returned(), 7);
    assert_eq!(summary.progress.compute_units, 35);
    assert_eq!(summary.stop, StopReason::BudgetExhausted);
}

#[test]
fn reserving_pages_grants_as_many_as_the_budget_covers_in_few_calls() {
    let budget = Limited::new(17);
    assert_eq!(budget.reserve_pages(5, 10), 3);
    assert_eq!(budget.left(), 2);
    assert_eq!(budget.reserve_pages(5, 10), 0);
    assert_eq!(budget.reserve_pages(1, u32::MAX), 2);
    assert_eq!(budget.left(), 0);
    // A price times a page count past u64 saturates and is refused, never wrapped.
    let budget = Limited::new(u64::MAX - 1);
    assert_eq!(budget.reserve_pages(u64::MAX, 2), 0);
    assert_eq!(budget.left(), u64::MAX - 1);
}
