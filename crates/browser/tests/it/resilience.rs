//! Crashed renderers, hung pages and cancellation: the run goes on, browsers are restarted,
//! and no Chromium process is left behind.

use std::time::{Duration, Instant};

use selextract_engine::{PageOutcome, StopReason};
use selextract_fetch::{Fetcher, RenderOptions};
use selextract_spec::{BrowserSpec, WaitCondition};
use selextract_testkit::FixtureSite;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{self, product_fields, require_chromium};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_killed_mid_render_is_restarted_and_only_its_page_retried() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    // The products appear only after 4 s, so the crash below always lands while the first
    // attempt is still waiting for them, however loaded the machine is.
    let request = support::request(&site.url("/js/catalog?page=1&delay=4000"));
    let options = RenderOptions {
        browser: BrowserSpec {
            wait_conditions: vec![WaitCondition::Element {
                selector: "#done".to_owned(),
                timeout_ms: 15000,
            }],
            ..BrowserSpec::default()
        },
        ..RenderOptions::default()
    };
    let fetcher = pool.fetcher();
    let rendering = tokio::spawn(async move {
        fetcher
            .render(&request, &options, &CancellationToken::new())
            .await
    });
    // Once the page is open (and waiting 4 s for its products), the browser dies the hard
    // way: SIGKILL to its whole process group, as the OOM killer or a crash would.
    let mut opened = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if pool.pool.stats().await.pages_open > 0 {
            opened = true;
            break;
        }
    }
    assert!(opened, "a page was opened");
    let first_pgids = pool.pool.browser_pgids().await;
    assert_eq!(first_pgids.len(), 1);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", first_pgids[0])])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    let rendered = rendering.await.expect("joins").expect("the retry renders");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert_eq!(body.matches("class=\"product\"").count(), 10);
    let stats = pool.pool.stats().await;
    assert!(stats.restarts >= 1, "{stats:?}");
    assert!(stats.launches >= 2, "{stats:?}");
    let mut pgids = first_pgids;
    pgids.extend(pool.pool.browser_pgids().await);
    pool.shutdown_and_assert_no_leftovers(&pgids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_page_fails_alone_and_its_browser_is_restarted() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |c| c.max_browsers = 1).await;
    let task = support::spec(json!({
        "start_urls": [
            site.url("/js/never-loads"),
            site.url("/js/catalog?page=1&delay=0"),
            site.url("/js/catalog?page=2&delay=0")
        ],
        "mode": "browser",
        "item_selector": "div.product",
        "fields": product_fields(),
        "timeout_ms": 2000,
        "max_retries": 0,
        "browser": {"wait_conditions": [{"type": "element", "selector": "#done", "timeout_ms": 3000}]}
    }));
    let mut options = support::options(&site, Some(&pool));
    options.concurrency = 1;

    let run = support::run(task, options, CancellationToken::new()).await;

    let hung = run
        .pages
        .iter()
        .find(|p| p.key.start_index == 0)
        .expect("hung page reported");
    assert!(
        matches!(&hung.outcome, PageOutcome::Error { class, .. } if class == "timeout"),
        "{:?}",
        hung.outcome
    );
    let ok: Vec<_> = run.pages.iter().filter(|p| p.outcome.is_ok()).collect();
    assert_eq!(ok.len(), 2, "the other pages are extracted");
    assert!(ok.iter().all(|p| p.records.len() == 10));
    assert!(pool.pool.stats().await.restarts >= 1);
    let pgids = pool.pool.browser_pgids().await;
    pool.shutdown_and_assert_no_leftovers(&pgids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_mid_render_ends_the_run_promptly_and_leaves_no_process() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let task = support::spec(json!({
        "start_urls": [site.url("/js/never-loads")],
        "mode": "browser",
        "fields": product_fields(),
        "timeout_ms": 60000
    }));
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let pool_for_watch = pool.pool.clone();
    tokio::spawn(async move {
        // Cancel once the page is actually rendering.
        for _ in 0..100 {
            if pool_for_watch.stats().await.pages_open > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        canceller.cancel();
    });
    let started = Instant::now();

    let run = support::run(task, support::options(&site, Some(&pool)), cancel).await;

    let elapsed = started.elapsed();
    assert_eq!(run.summary.stop, StopReason::Cancelled);
    // The page would hang for 60 s; cancellation must end it long before.
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    assert_eq!(pool.pool.stats().await.pages_open, 0);
    let pgids = pool.pool.browser_pgids().await;
    pool.shutdown_and_assert_no_leftovers(&pgids).await;
}

/// `/js/crash` allocates until V8 gives up and its renderer dies (CDP
/// `Inspector.targetCrashed`), as a hostile page would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_renderer_fails_its_page_alone_and_its_browser_is_restarted() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |c| c.max_browsers = 1).await;
    let task = support::spec(json!({
        "start_urls": [
            site.url("/js/crash"),
            site.url("/js/catalog?page=1&delay=0"),
            site.url("/js/catalog?page=2&delay=0")
        ],
        "mode": "browser",
        "item_selector": "div.product",
        "fields": product_fields(),
        "timeout_ms": 30000,
        "max_retries": 2,
        "browser": {"wait_conditions": [{"type": "element", "selector": "#done", "timeout_ms": 20000}]}
    }));
    let mut options = support::options(&site, Some(&pool));
    options.concurrency = 1;

    let run = support::run(task, options, CancellationToken::new()).await;

    let crashed = run
        .pages
        .iter()
        .find(|p| p.key.start_index == 0)
        .expect("crashed page reported");
    assert!(
        matches!(&crashed.outcome, PageOutcome::Error { class, .. } if class == "browser_crashed"),
        "{:?}",
        crashed.outcome
    );
    let ok: Vec<_> = run.pages.iter().filter(|p| p.outcome.is_ok()).collect();
    assert_eq!(ok.len(), 2, "the other pages are extracted");
    assert!(ok.iter().all(|p| p.records.len() == 10));
    let stats = pool.pool.stats().await;
    // The crash page is tried in two browsers (the pool's one retry) and then not again: the
    // engine does not retry a browser crash despite max_retries. One more browser serves
    // the other two pages.
    assert_eq!(stats.restarts, 2, "{stats:?}");
    assert_eq!(stats.launches, 3, "{stats:?}");
    let pgids = pool.pool.browser_pgids().await;
    pool.shutdown_and_assert_no_leftovers(&pgids).await;
}
