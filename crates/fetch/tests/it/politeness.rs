//! A task's politeness: request rate, delay and concurrency, shared by its concurrent fetches.

use std::time::Duration;

use selextract_fetch::politeness::start_interval;
use selextract_fetch::{HostLimits, LocalPoliteness, Politeness, Turn};
use selextract_spec::RateLimit;
use selextract_testkit::FixtureSite;

use crate::support::{arrivals, assert_spaced_at_least, fetch, fetcher_for, gaps, request};

fn rate(requests_per_minute: Option<u32>, delay_ms: u64, concurrency_per_domain: u32) -> RateLimit {
    RateLimit {
        requests_per_minute,
        delay_ms,
        jitter_ms: 0,
        concurrency_per_domain,
    }
}

#[tokio::test]
async fn requests_per_minute_spaces_concurrent_fetches_evenly() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    let requests: Vec<_> = (1..=5)
        .map(|page| {
            let mut req = request(&site.url(&format!("/catalog?page={page}")));
            req.rate_limit = rate(Some(120), 0, 8);
            req
        })
        .collect();
    for result in futures::future::join_all(requests.iter().map(|req| fetch(&fetcher, req))).await {
        assert_eq!(result.unwrap().status, 200);
    }
    let times = arrivals(&site, "/catalog");
    assert_eq!(times.len(), 5);
    // 120 per minute is one start every 500 ms; arrival times carry a little scheduling noise.
    assert_spaced_at_least(
        &times,
        Duration::from_millis(500),
        Duration::from_millis(50),
    );
}

#[tokio::test]
async fn a_fixed_delay_spaces_request_starts() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    let requests: Vec<_> = (1..=3)
        .map(|page| {
            let mut req = request(&site.url(&format!("/item/{page}")));
            req.rate_limit = rate(None, 300, 8);
            req
        })
        .collect();
    for result in futures::future::join_all(requests.iter().map(|req| fetch(&fetcher, req))).await {
        assert_eq!(result.unwrap().status, 200);
    }
    let mut times: Vec<_> = (1..=3)
        .flat_map(|id| arrivals(&site, &format!("/item/{id}")))
        .collect();
    times.sort();
    let spacing = gaps(&times);
    assert!(
        spacing.iter().all(|gap| *gap >= Duration::from_millis(250)),
        "{spacing:?}"
    );
}

#[tokio::test]
async fn concurrency_per_domain_of_one_never_has_two_requests_in_flight() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    let requests: Vec<_> = (0..4)
        .map(|n| {
            let mut req = request(&site.url(&format!("/concurrency-probe?ms=150&n={n}")));
            req.rate_limit = rate(None, 0, 1);
            req
        })
        .collect();
    for result in futures::future::join_all(requests.iter().map(|req| fetch(&fetcher, req))).await {
        assert_eq!(result.unwrap().status, 200);
    }
    assert_eq!(site.hits("/concurrency-probe"), 4);
    assert_eq!(site.max_concurrent(), 1);
}

#[tokio::test]
async fn a_higher_concurrency_per_domain_lets_requests_overlap() {
    // The control for the test above: the probe does see overlapping requests.
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    let requests: Vec<_> = (0..4)
        .map(|n| {
            let mut req = request(&site.url(&format!("/concurrency-probe?ms=800&n={n}")));
            req.rate_limit = rate(None, 0, 8);
            req
        })
        .collect();
    for result in futures::future::join_all(requests.iter().map(|req| fetch(&fetcher, req))).await {
        assert_eq!(result.unwrap().status, 200);
    }
    assert!(
        site.max_concurrent() >= 2,
        "max concurrent {}",
        site.max_concurrent()
    );
}

#[tokio::test]
async fn a_second_permit_waits_until_the_first_is_released() {
    let politeness = LocalPoliteness::new();
    let limit = rate(None, 0, 1);
    let limits = HostLimits::default();
    let on = |host| Turn {
        host,
        scope: None,
        rate: &limit,
        crawl_delay: None,
        limits: &limits,
    };
    let first = politeness.acquire(&on("example.com")).await.unwrap();
    let turn = on("example.com");
    let second = politeness.acquire(&turn);
    tokio::pin!(second);
    assert!(futures::poll!(second.as_mut()).is_pending());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        futures::poll!(second.as_mut()).is_pending(),
        "still waiting while the first permit is held"
    );
    let other_host = politeness.acquire(&on("example.org")).await.unwrap();
    drop(other_host);
    drop(first);
    let _second = second.await.unwrap();
}

#[test]
fn the_start_interval_is_the_largest_of_rate_delay_and_crawl_delay() {
    assert_eq!(
        start_interval(&rate(Some(120), 0, 8), None),
        Duration::from_millis(500)
    );
    assert_eq!(
        start_interval(&rate(Some(120), 800, 8), None),
        Duration::from_millis(800)
    );
    assert_eq!(
        start_interval(&rate(None, 0, 8), Some(Duration::from_secs(3))),
        Duration::from_secs(3)
    );
    assert_eq!(start_interval(&RateLimit::default(), None), Duration::ZERO);
    let jittered = RateLimit {
        jitter_ms: 100,
        ..rate(None, 200, 8)
    };
    for _ in 0..20 {
        let interval = start_interval(&jittered, None);
        assert!(
            interval >= Duration::from_millis(200) && interval <= Duration::from_millis(300),
            "{interval:?}"
        );
    }
}
