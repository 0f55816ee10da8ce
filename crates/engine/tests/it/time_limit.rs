//! `limits.max_run_seconds`: the run stops fetching when it has lasted that long; pages
//! already fetched are still extracted and emitted. Tokio's clock is paused, so the fake
//! fetcher's delays and the limit are exact and no test waits in real time.

use std::sync::Arc;
use std::time::Duration;

use selextract_engine::{Reason, StopReason, Verdict};
use selextract_spec::Limits;
use selextract_testkit::{FakeFetcher, Script};
use serde_json::json;

use crate::fake::{options, product_page, product_spec, run, titles};
use crate::{Limited, spec_with_limits};

fn limits(max_run_seconds: u64) -> Limits {
    Limits {
        max_run_seconds,
        ..Limits::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_time_limit_stops_fetching_and_ends_partial() {
    let quick = "https://shop.example/quick";
    let slow = "https://shop.example/slow";
    let http = Arc::new(FakeFetcher::new());
    http.script(
        quick,
        Script::html(product_page(&["Quick"])).with_delay(Duration::from_secs(3)),
    );
    http.script(
        slow,
        Script::html(product_page(&["Slow"])).with_delay(Duration::from_secs(30)),
    );
    let budget = Limited::new(100);
    let started = tokio::time::Instant::now();

    let (pages, summary, log) = run(
        spec_with_limits(product_spec(&[quick, slow], "http"), &limits(10)),
        options(&http, None, budget.clone()),
    )
    .await;

    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(30),
        "the run ended at {elapsed:?} of tokio's clock"
    );
    assert_eq!(pages.len(), 1);
    assert_eq!(titles(&pages[0]), ["Quick"]);
    assert_eq!(http.fetches(), 2);
    assert_eq!(
        http.cancelled(),
        1,
        "the slow fetch was stopped, not waited for"
    );
    assert_eq!(budget.left(), 99, "the stopped fetch is refunded");
    assert_eq!(summary.stop, StopReason::TimeLimit);
    assert_eq!(summary.verdict(), Verdict::Partial(Reason::TimeLimit));
    assert_eq!(summary.verdict().reason().as_str(), "time_limit");
    assert!(
        log.iter()
            .any(|line| line == "the run reached its time limit of 10 s; fetching stops"),
        "{log:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn pages_fetched_before_the_limit_are_extracted_and_the_chain_goes_no_further() {
    let http = Arc::new(FakeFetcher::new());
    for page in 1..=5 {
        let next = format!(r#"<a class="next" href="/list?page={}">next</a>"#, page + 1);
        let body =
            product_page(&[&format!("Page {page}")]).replace("</body>", &format!("{next}</body>"));
        http.script(
            &format!("https://shop.example/list?page={page}"),
            Script::html(body).with_delay(Duration::from_secs(4)),
        );
    }
    let value = json!({
        "start_urls": ["https://shop.example/list?page=1"],
        "mode": "http",
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2"}],
        "pagination": {"next_selector": "a.next", "max_pages": 5},
        "max_retries": 0
    });

    // Pages answer at 4 s and 8 s; the third would answer at 12 s, after the limit.
    let (pages, summary, _) = run(
        spec_with_limits(value, &limits(10)),
        options(&http, None, Limited::new(100)),
    )
    .await;

    let page_titles: Vec<&str> = pages.iter().flat_map(titles).collect();
    assert_eq!(page_titles, ["Page 1", "Page 2"]);
    assert_eq!(http.fetches(), 3);
    assert_eq!(http.cancelled(), 1);
    assert_eq!(summary.verdict(), Verdict::Partial(Reason::TimeLimit));
}

#[tokio::test(start_paused = true)]
async fn a_run_that_fetched_nothing_before_its_time_limit_fails() {
    let url = "https://shop.example/slow";
    let http = Arc::new(FakeFetcher::new());
    http.script(
        url,
        Script::html(product_page(&["Slow"])).with_delay(Duration::from_secs(3_600)),
    );

    let (pages, summary, _) = run(
        spec_with_limits(product_spec(&[url], "http"), &limits(10)),
        options(&http, None, Limited::new(100)),
    )
    .await;

    assert!(pages.is_empty());
    assert_eq!(summary.verdict(), Verdict::Failed(Reason::TimeLimit));
}

#[tokio::test(start_paused = true)]
async fn a_time_limit_of_zero_seconds_fetches_nothing() {
    let url = "https://shop.example/list";
    let http = Arc::new(FakeFetcher::new());
    http.script(url, Script::html(product_page(&["One"])));

    let (pages, summary, _) = run(
        spec_with_limits(product_spec(&[url], "http"), &limits(0)),
        options(&http, None, Limited::new(100)),
    )
    .await;

    assert!(pages.is_empty());
    assert_eq!(http.fetches(), 0);
    assert_eq!(summary.verdict(), Verdict::Failed(Reason::TimeLimit));
}

#[tokio::test(start_paused = true)]
async fn the_largest_time_limit_lets_a_run_finish_normally() {
    let url = "https://shop.example/list";
    let http = Arc::new(FakeFetcher::new());
    http.script(
        url,
        Script::html(product_page(&["One"])).with_delay(Duration::from_secs(1)),
    );

    let (pages, summary, _) = run(
        spec_with_limits(product_spec(&[url], "http"), &limits(u64::MAX)),
        options(&http, None, Limited::new(100)),
    )
    .await;

    assert_eq!(pages.len(), 1);
    assert_eq!(summary.stop, StopReason::Finished);
    assert_eq!(summary.verdict(), Verdict::Completed);
}
