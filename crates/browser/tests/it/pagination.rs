//! Click ("load more") and infinite-scroll pagination inside one rendered page.

use std::collections::HashSet;

use selextract_testkit::FixtureSite;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{self, product_fields, require_chromium};

fn assert_each_product_once(titles: &[String], count: usize) {
    let unique: HashSet<&String> = titles.iter().collect();
    assert_eq!(unique.len(), titles.len(), "duplicates in {titles:?}");
    let expected: Vec<String> = (1..=count).map(|id| format!("Product {id}")).collect();
    assert_eq!(titles, expected.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicking_load_more_collects_every_item_exactly_once() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let task = support::spec(json!({
        "start_urls": [site.url("/js/load-more?batches=4&per=5")],
        "mode": "browser",
        "item_selector": "div.product",
        "fields": product_fields(),
        "pagination": {"next_selector": "button.load-more", "max_pages": 10},
        "browser": {"wait_conditions": [{"type": "element", "selector": "button.load-more", "timeout_ms": 5000}]}
    }));

    let run = support::run(
        task,
        support::options(&site, Some(&pool)),
        CancellationToken::new(),
    )
    .await;

    assert_each_product_once(&run.titles(), 20);
    assert_eq!(run.pages.len(), 4, "one page per batch");
    assert!(run.pages.iter().all(|p| p.compute_units == 5));
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_scroll_collects_every_item_exactly_once() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let task = support::spec(json!({
        "start_urls": [site.url("/js/scroll?batches=4&per=10")],
        "mode": "browser",
        "item_selector": "div.product",
        "fields": product_fields(),
        "pagination": {"scroll": true, "max_pages": 10},
        "browser": {"wait_conditions": [{"type": "element", "selector": "div.product", "timeout_ms": 5000}]}
    }));

    let run = support::run(
        task,
        support::options(&site, Some(&pool)),
        CancellationToken::new(),
    )
    .await;

    assert_each_product_once(&run.titles(), 40);
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}
