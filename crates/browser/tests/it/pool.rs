//! Many pages through a small recycled pool: bounded processes, flat memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use selextract_testkit::FixtureSite;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{self, product_fields, require_chromium};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_pages_through_two_recycled_browsers_stay_within_limits() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |c| {
        c.max_browsers = 2;
        c.pages_per_browser = 2;
        c.recycle_after_pages = 50;
    })
    .await;
    let needle = pool.runtime_dir().display().to_string();
    let most_browsers = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let most = most_browsers.clone();
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                let live = selextract_browser::process_groups_mentioning(&needle).len();
                most.fetch_max(live, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // The pool's memory at its peak during each run: a reading taken after a run may find
    // every browser just retired (0) or one alive, which says nothing about growth.
    let peak_memory = Arc::new(AtomicU64::new(0));
    let memory_sampler = {
        let peak = peak_memory.clone();
        let sampling = sampling.clone();
        let pool = Arc::clone(&pool.pool);
        tokio::spawn(async move {
            while sampling.load(Ordering::SeqCst) {
                peak.fetch_max(pool.memory_bytes().await, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let run_pages = |count: usize, offset: usize| {
        let urls: Vec<String> = (0..count)
            .map(|i| {
                site.url(&format!(
                    "/js/catalog?page={}&per=2&delay=0",
                    offset + i + 1
                ))
            })
            .collect();
        support::spec(json!({
            "start_urls": urls,
            "mode": "browser",
            "item_selector": "div.product",
            "fields": product_fields(),
            "browser": {"wait_conditions": [{"type": "element", "selector": "#done", "timeout_ms": 5000}]}
        }))
    };
    let mut memory = Vec::new();
    let mut pgids = Vec::new();
    for (index, count) in [500usize, 100, 100].into_iter().enumerate() {
        let mut options = support::options(&site, Some(&pool));
        options.concurrency = 4;
        let run = support::run(
            run_pages(count, index * 1000),
            options,
            CancellationToken::new(),
        )
        .await;
        assert_eq!(run.pages.len(), count);
        assert!(
            run.pages
                .iter()
                .all(|p| p.outcome.is_ok() && p.records.len() == 2),
            "run {index}: every page extracted"
        );
        memory.push(peak_memory.swap(0, Ordering::SeqCst));
        pgids.extend(pool.pool.browser_pgids().await);
    }
    sampling.store(false, Ordering::SeqCst);
    sampler.join().expect("sampler joins");
    memory_sampler.await.expect("memory sampler joins");

    let most = most_browsers.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "live browsers peaked at {most}");
    let stats = pool.pool.stats().await;
    assert!(
        stats.recycles >= 10,
        "700 pages at 50 per browser: {stats:?}"
    );
    // Generous: recycling must keep the pool's memory from growing run over run.
    assert!(
        memory.iter().all(|&peak| peak > 0),
        "no browser seen: {memory:?}"
    );
    assert!(
        memory[2] < memory[0] * 2 + (200 << 20),
        "pool memory grew: {memory:?}"
    );
    pool.shutdown_and_assert_no_leftovers(&pgids).await;
}
