//! Fair politeness between tenants: a task's own pacing spaces only its own scope's
//! requests; the installation's per-host rate spaces everyone's; no request waits for its
//! turn longer than the installation allows.

use std::sync::Arc;
use std::time::Duration;

use selextract_fetch::politeness::MAX_SCOPES_PER_HOST;
use selextract_fetch::{
    FetchError, FetchRequest, HostLimits, HttpFetcher, HttpFetcherConfig, LocalPoliteness,
    Politeness, RedisPoliteness, Turn,
};
use selextract_spec::RateLimit;
use selextract_testkit::{FixtureSite, TestRedis};
use tokio::time::Instant;

use crate::support::{config_for, fetch, request};

fn delay(delay_ms: u64) -> RateLimit {
    RateLimit {
        requests_per_minute: None,
        delay_ms,
        jitter_ms: 0,
        concurrency_per_domain: 8,
    }
}

fn turn<'a>(scope: Option<&'a str>, rate: &'a RateLimit, limits: &'a HostLimits) -> Turn<'a> {
    Turn {
        host: "shared.example",
        scope,
        rate,
        crawl_delay: None,
        limits,
    }
}

fn scoped(url: &str, scope: &str, rate: RateLimit) -> FetchRequest {
    let mut req = request(url);
    req.politeness_scope = Some(scope.to_owned());
    req.rate_limit = rate;
    req
}

/// How many requests for `path` carried `tag` in their query.
fn tagged(site: &FixtureSite, path: &str, tag: &str) -> usize {
    site.request_log()
        .iter()
        .filter(|(seen, _)| seen.starts_with(path) && seen.contains(tag))
        .count()
}

/// User A (scope `run-a`, one request a minute) has fetched a page and its second request
/// is waiting; user B (scope `run-b`, 1 ms apart) fetches 20 pages of the same host through `b`. All of
/// B's pages arrive while A's second request still waits.
async fn a_slow_tenant_does_not_hold_back_another(
    a: &HttpFetcher,
    b: &HttpFetcher,
    site: &FixtureSite,
) {
    let first = scoped(&site.url("/item/1?user=a"), "run-a", delay(60_000));
    assert_eq!(fetch(a, &first).await.unwrap().status, 200);
    let second = scoped(&site.url("/item/2?user=a"), "run-a", delay(60_000));
    let a_for_task = a.clone();
    let waiting = tokio::spawn(async move { fetch(&a_for_task, &second).await });

    let b_requests: Vec<FetchRequest> = (1..=20)
        // B paces itself too (1 ms), so its starts are reserved like A's, in Redis as well.
        .map(|n| scoped(&site.url(&format!("/item/{n}?user=b")), "run-b", delay(1)))
        .collect();
    let b_results = futures::future::join_all(b_requests.iter().map(|req| fetch(b, req))).await;
    for result in b_results {
        assert_eq!(result.unwrap().status, 200);
    }

    assert_eq!(tagged(site, "/item/", "user=b"), 20);
    assert_eq!(
        tagged(site, "/item/", "user=a"),
        1,
        "A's second request is still waiting for its own minute"
    );
    assert!(!waiting.is_finished());
    waiting.abort();
}

#[tokio::test]
async fn one_tenants_long_delay_never_holds_back_another_tenant_on_the_same_host() {
    let site = FixtureSite::start().await;
    let fetcher = HttpFetcher::new(config_for(&site)).unwrap();
    a_slow_tenant_does_not_hold_back_another(&fetcher, &fetcher, &site).await;
}

#[tokio::test]
async fn one_tenants_long_delay_never_holds_back_another_tenant_across_workers_on_redis() {
    let redis = TestRedis::start();
    let site = FixtureSite::start().await;
    let worker = |politeness: Arc<RedisPoliteness>| {
        HttpFetcher::with_politeness(config_for(&site), politeness).unwrap()
    };
    let politeness_a = Arc::new(RedisPoliteness::new(&redis.url()).unwrap());
    let politeness_b = Arc::new(RedisPoliteness::new(&redis.url()).unwrap());
    // A and B run on two workers that share spacing through Redis.
    let (a, b) = (
        worker(Arc::clone(&politeness_a)),
        worker(Arc::clone(&politeness_b)),
    );
    a_slow_tenant_does_not_hold_back_another(&a, &b, &site).await;
    assert!(politeness_a.link().is_up() && politeness_b.link().is_up());
    assert_eq!(
        politeness_a.link().fallbacks() + politeness_b.link().fallbacks(),
        0
    );
}

#[tokio::test]
async fn a_scopes_delay_still_spaces_its_own_requests_across_workers_on_redis() {
    // The control for the test above: the same scope on another worker does wait.
    let redis = TestRedis::start();
    let a = RedisPoliteness::new(&redis.url()).unwrap();
    let b = RedisPoliteness::new(&redis.url()).unwrap();
    let (rate, limits) = (delay(60_000), HostLimits::default());
    let _first = a
        .acquire(&turn(Some("run-a"), &rate, &limits))
        .await
        .unwrap();
    let limits = HostLimits {
        max_wait: Duration::from_secs(30),
        ..limits
    };
    let refused = b.acquire(&turn(Some("run-a"), &rate, &limits)).await;
    assert!(refused.is_err(), "run-a's next start is a minute away");
    let _other = b
        .acquire(&turn(Some("run-b"), &rate, &limits))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_scopes_delay_spaces_only_that_scope() {
    let politeness = LocalPoliteness::new();
    let limits = HostLimits::default();
    let (slow, fast) = (delay(60_000), delay(0));
    let t0 = Instant::now();
    drop(
        politeness
            .acquire(&turn(Some("run-a"), &slow, &limits))
            .await
            .unwrap(),
    );
    let turn_a = turn(Some("run-a"), &slow, &limits);
    let second_a = politeness.acquire(&turn_a);
    tokio::pin!(second_a);
    assert!(futures::poll!(second_a.as_mut()).is_pending());
    for _ in 0..20 {
        drop(
            politeness
                .acquire(&turn(Some("run-b"), &fast, &limits))
                .await
                .unwrap(),
        );
        drop(
            politeness
                .acquire(&turn(None, &fast, &limits))
                .await
                .unwrap(),
        );
    }
    assert_eq!(Instant::now(), t0, "no other scope waited at all");
    assert!(futures::poll!(second_a.as_mut()).is_pending());
    drop(second_a.await.unwrap());
    assert_eq!(Instant::now() - t0, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn the_installations_per_host_spacing_applies_across_scopes() {
    let politeness = LocalPoliteness::new();
    let limits = HostLimits {
        min_interval: Duration::from_secs(2),
        ..HostLimits::default()
    };
    let rate = delay(0);
    let t0 = Instant::now();
    let mut starts = Vec::new();
    for scope in ["run-a", "run-b", "run-c"] {
        drop(
            politeness
                .acquire(&turn(Some(scope), &rate, &limits))
                .await
                .unwrap(),
        );
        starts.push(Instant::now() - t0);
    }
    drop(
        politeness
            .acquire(&turn(None, &rate, &limits))
            .await
            .unwrap(),
    );
    starts.push(Instant::now() - t0);
    assert_eq!(
        starts,
        [0, 2, 4, 6].map(Duration::from_secs),
        "one start every 2 s on the host, whichever scope asks"
    );
}

#[tokio::test(start_paused = true)]
async fn a_robots_crawl_delay_spaces_every_scope_on_the_host() {
    let politeness = LocalPoliteness::new();
    let limits = HostLimits::default();
    let rate = delay(0);
    let t0 = Instant::now();
    for scope in ["run-a", "run-b"] {
        let turn = Turn {
            crawl_delay: Some(Duration::from_secs(5)),
            ..turn(Some(scope), &rate, &limits)
        };
        drop(politeness.acquire(&turn).await.unwrap());
    }
    assert_eq!(Instant::now() - t0, Duration::from_secs(5));
}

#[tokio::test]
async fn the_installations_in_flight_cap_holds_across_scopes() {
    let politeness = LocalPoliteness::new();
    let limits = HostLimits {
        max_in_flight: 1,
        ..HostLimits::default()
    };
    let rate = delay(0);
    let first = politeness
        .acquire(&turn(Some("run-a"), &rate, &limits))
        .await
        .unwrap();
    let turn_b = turn(Some("run-b"), &rate, &limits);
    let second = politeness.acquire(&turn_b);
    tokio::pin!(second);
    assert!(futures::poll!(second.as_mut()).is_pending());
    let elsewhere = Turn {
        host: "other.example",
        ..turn(Some("run-b"), &rate, &limits)
    };
    drop(politeness.acquire(&elsewhere).await.unwrap());
    assert!(futures::poll!(second.as_mut()).is_pending());
    drop(first);
    drop(second.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_slot_counts_against_the_bound() {
    let politeness = LocalPoliteness::new();
    let limits = HostLimits {
        max_wait: Duration::from_secs(3),
        ..HostLimits::default()
    };
    let one_at_a_time = RateLimit {
        concurrency_per_domain: 1,
        ..delay(0)
    };
    let _held = politeness
        .acquire(&turn(Some("run-a"), &one_at_a_time, &limits))
        .await
        .unwrap();
    let t0 = Instant::now();
    let err = politeness
        .acquire(&turn(Some("run-a"), &one_at_a_time, &limits))
        .await
        .unwrap_err();
    assert_eq!(err.limit, Duration::from_secs(3));
    assert_eq!(Instant::now() - t0, Duration::from_secs(3));
}

async fn second_request_fails_at_once(fetcher: &HttpFetcher, site: &FixtureSite, rate: RateLimit) {
    let first = scoped(&site.url("/item/1"), "run-a", rate.clone());
    assert_eq!(fetch(fetcher, &first).await.unwrap().status, 200);
    let second = scoped(&site.url("/item/2"), "run-a", rate);
    let err = fetch(fetcher, &second).await.unwrap_err();
    assert_eq!(err.class(), "politeness_wait_exceeded");
    assert!(!err.is_retryable());
    assert!(
        matches!(&err, FetchError::PolitenessWaitExceeded { limit, .. } if *limit == Duration::from_secs(5)),
        "{err:?}"
    );
    assert_eq!(site.hits("/item/2"), 0, "the request was never sent");
}

fn bounded_config(site: &FixtureSite) -> HttpFetcherConfig {
    HttpFetcherConfig {
        max_politeness_wait: Duration::from_secs(5),
        ..config_for(site)
    }
}

#[tokio::test]
async fn a_turn_due_past_the_bound_fails_the_request_as_politeness_wait_exceeded() {
    let site = FixtureSite::start().await;
    let fetcher = HttpFetcher::new(bounded_config(&site)).unwrap();
    second_request_fails_at_once(&fetcher, &site, delay(60_000)).await;
}

#[tokio::test]
async fn the_largest_possible_delay_fails_the_next_request_instead_of_overflowing() {
    let site = FixtureSite::start().await;
    let fetcher = HttpFetcher::new(bounded_config(&site)).unwrap();
    let absurd = RateLimit {
        jitter_ms: u64::MAX,
        ..delay(u64::MAX)
    };
    second_request_fails_at_once(&fetcher, &site, absurd).await;
}

#[tokio::test]
async fn the_bound_holds_on_redis_too() {
    let redis = TestRedis::start();
    let site = FixtureSite::start().await;
    let politeness = Arc::new(RedisPoliteness::new(&redis.url()).unwrap());
    let fetcher = HttpFetcher::with_politeness(bounded_config(&site), politeness.clone()).unwrap();
    second_request_fails_at_once(&fetcher, &site, delay(u64::MAX)).await;
    assert!(politeness.link().is_up());
    assert_eq!(politeness.link().fallbacks(), 0);
}

#[tokio::test]
async fn redis_politeness_keys_expire() {
    let redis = TestRedis::start();
    let politeness = RedisPoliteness::new(&redis.url()).unwrap();
    let limits = HostLimits {
        min_interval: Duration::from_millis(10),
        ..HostLimits::default()
    };
    let rate = delay(10);
    drop(
        politeness
            .acquire(&turn(Some("run-a"), &rate, &limits))
            .await
            .unwrap(),
    );
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("selextract:politeness*")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "a host key and a scope key: {keys:?}");
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
}

#[tokio::test(start_paused = true)]
async fn the_largest_wait_bound_means_no_bound_and_overflows_nothing() {
    let politeness = LocalPoliteness::new();
    let limits = HostLimits {
        min_interval: Duration::MAX,
        max_in_flight: 0,
        max_wait: Duration::MAX,
    };
    let rate = RateLimit {
        requests_per_minute: Some(1),
        jitter_ms: u64::MAX,
        ..delay(u64::MAX)
    };
    let t0 = Instant::now();
    drop(
        politeness
            .acquire(&turn(Some("run-a"), &rate, &limits))
            .await
            .unwrap(),
    );
    assert_eq!(Instant::now(), t0, "the first start is immediate");
    let turn_a = turn(Some("run-a"), &rate, &limits);
    let second = politeness.acquire(&turn_a);
    tokio::pin!(second);
    assert!(
        futures::poll!(second.as_mut()).is_pending(),
        "due in a year, not refused"
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_wait_bound_refuses_any_wait_but_not_a_free_turn() {
    let politeness = LocalPoliteness::new();
    let limits = HostLimits {
        max_wait: Duration::ZERO,
        ..HostLimits::default()
    };
    let rate = delay(1_000);
    drop(
        politeness
            .acquire(&turn(Some("run-a"), &rate, &limits))
            .await
            .unwrap(),
    );
    drop(
        politeness
            .acquire(&turn(Some("run-b"), &rate, &limits))
            .await
            .unwrap(),
    );
    let err = politeness
        .acquire(&turn(Some("run-a"), &rate, &limits))
        .await
        .unwrap_err();
    assert_eq!(err.limit, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn finished_scopes_are_forgotten_so_the_state_stays_bounded() {
    let politeness = LocalPoliteness::new();
    let limits = HostLimits::default();
    let rate = delay(0);
    for run in 0..3 * MAX_SCOPES_PER_HOST {
        let scope = format!("run-{run}");
        drop(
            politeness
                .acquire(&turn(Some(&scope), &rate, &limits))
                .await
                .unwrap(),
        );
    }
    let tracked = politeness.tracked_scopes("shared.example");
    assert!(tracked <= MAX_SCOPES_PER_HOST, "{tracked} scopes tracked");
    // A scope whose next start lies ahead is remembered, however many come after it.
    let slow = delay(60_000);
    drop(
        politeness
            .acquire(&turn(Some("slow-run"), &slow, &limits))
            .await
            .unwrap(),
    );
    for run in 0..2 * MAX_SCOPES_PER_HOST {
        let scope = format!("later-{run}");
        drop(
            politeness
                .acquire(&turn(Some(&scope), &rate, &limits))
                .await
                .unwrap(),
        );
    }
    let limits = HostLimits {
        max_wait: Duration::from_secs(1),
        ..limits
    };
    assert!(
        politeness
            .acquire(&turn(Some("slow-run"), &slow, &limits))
            .await
            .is_err(),
        "slow-run's next start is still a minute away"
    );
}
