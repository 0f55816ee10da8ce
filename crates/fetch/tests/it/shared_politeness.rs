//! Politeness shared through Redis: several fetchers (standing for several worker
//! processes) on one Redis space their requests to one host as one; without Redis each
//! falls back to its own spacing and says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use selextract_fetch::{HostLimits, HttpFetcher, Politeness, RedisPoliteness, Turn};
use selextract_spec::RateLimit;
use selextract_testkit::FixtureSite;

use crate::support::{arrivals, assert_spaced_at_least, config_for, fetch, request};
use selextract_testkit::{TestRedis, free_port};

fn every(requests_per_minute: u32) -> RateLimit {
    RateLimit {
        requests_per_minute: Some(requests_per_minute),
        delay_ms: 0,
        jitter_ms: 0,
        concurrency_per_domain: 8,
    }
}

/// Takes a turn for the anonymous scope on `host` and gives it back at once.
async fn take_turn(politeness: &RedisPoliteness, host: &str, rate: &RateLimit) {
    let limits = HostLimits::default();
    let turn = Turn {
        host,
        scope: None,
        rate,
        crawl_delay: None,
        limits: &limits,
    };
    drop(politeness.acquire(&turn).await.unwrap());
}

fn fetcher_with(site: &FixtureSite, politeness: Arc<RedisPoliteness>) -> HttpFetcher {
    HttpFetcher::with_politeness(config_for(site), politeness).unwrap()
}

#[tokio::test]
async fn three_fetchers_on_one_redis_respect_one_request_rate_for_the_host() {
    let redis = TestRedis::start();
    let site = FixtureSite::start().await;
    let politeness: Vec<Arc<RedisPoliteness>> = (0..3)
        .map(|_| Arc::new(RedisPoliteness::new(&redis.url()).unwrap()))
        .collect();
    let fetchers: Vec<HttpFetcher> = politeness
        .iter()
        .map(|p| fetcher_with(&site, Arc::clone(p)))
        .collect();
    let mut jobs = Vec::new();
    for (worker, fetcher) in fetchers.iter().enumerate() {
        for page in 1..=4 {
            let mut req = request(&site.url(&format!("/catalog?worker={worker}&page={page}")));
            req.rate_limit = every(120);
            jobs.push(async move { fetch(fetcher, &req).await });
        }
    }
    for result in futures::future::join_all(jobs).await {
        assert_eq!(result.unwrap().status, 200);
    }

    let times = arrivals(&site, "/catalog");
    assert_eq!(times.len(), 12);
    // 120 per minute is one start every 500 ms across all three fetchers (unshared, they
    // would start three at a time); arrivals carry a little scheduling noise.
    assert_spaced_at_least(
        &times,
        Duration::from_millis(500),
        Duration::from_millis(50),
    );
    for p in &politeness {
        assert!(p.link().is_up());
        assert_eq!(p.link().fallbacks(), 0);
    }
}

#[tokio::test]
async fn without_redis_spacing_is_per_process_and_shared_limits_are_not_pretended() {
    // The control for the test above: two processes' politeness on a Redis that is not
    // there each allow an immediate first start, and both count the fallback.
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let a = RedisPoliteness::new(&dead).unwrap();
    let b = RedisPoliteness::new(&dead).unwrap();
    let rate = every(6);
    take_turn(&a, "example.test", &rate).await;
    let started = Instant::now();
    take_turn(&b, "example.test", &rate).await;
    // One start per 10 s if shared; falling back, b's first start does not wait for a's.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!a.link().is_up());
    assert_eq!(a.link().fallbacks(), 1);
    assert_eq!(b.link().fallbacks(), 1);
}

#[tokio::test]
async fn requests_are_still_fetched_while_redis_is_down() {
    let site = FixtureSite::start().await;
    let politeness =
        Arc::new(RedisPoliteness::new(&format!("redis://127.0.0.1:{}", free_port())).unwrap());
    let fetcher = fetcher_with(&site, Arc::clone(&politeness));
    let requests: Vec<_> = (1..=3)
        .map(|page| {
            let mut req = request(&site.url(&format!("/catalog?page={page}")));
            req.rate_limit = every(300);
            req
        })
        .collect();
    for result in futures::future::join_all(requests.iter().map(|req| fetch(&fetcher, req))).await {
        assert_eq!(result.unwrap().status, 200);
    }
    // The in-process fallback still spaces this process's requests (200 ms apart).
    assert_spaced_at_least(
        &arrivals(&site, "/catalog"),
        Duration::from_millis(200),
        Duration::from_millis(50),
    );
    assert_eq!(politeness.link().fallbacks(), 3);
    assert!(!politeness.link().is_up());
}

#[tokio::test]
async fn shared_spacing_resumes_when_redis_comes_back() {
    let mut redis = TestRedis::start();
    let port = redis.port();
    let url = redis.url();
    let a = RedisPoliteness::new(&url).unwrap();
    let b = RedisPoliteness::new(&url).unwrap();
    let rate = every(200); // 300 ms apart
    take_turn(&a, "resume.test", &rate).await;
    assert!(a.link().is_up());

    redis.stop();
    take_turn(&a, "resume.test", &rate).await;
    assert!(!a.link().is_up());
    assert_eq!(a.link().fallbacks(), 1);

    let _redis = TestRedis::start_on(port);
    // Failed links wait a second before trying again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    take_turn(&a, "resume.test", &rate).await;
    assert!(a.link().is_up());
    let started = Instant::now();
    take_turn(&b, "resume.test", &rate).await;
    // b's start was reserved after a's in the shared Redis again.
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(a.link().fallbacks(), 1);
    assert_eq!(b.link().fallbacks(), 0);
}
