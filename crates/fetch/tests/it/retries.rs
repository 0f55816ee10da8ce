//! Retries: backoff on 5xx and errors, `Retry-After`, timeouts and cancellation.

use std::time::Duration;

use selextract_fetch::{FetchError, Fetcher, HttpFetcher, HttpFetcherConfig, retry};
use selextract_testkit::FixtureSite;
use tokio_util::sync::CancellationToken;

use crate::support::{arrivals, config_for, fetch, fetcher_for, request};

#[tokio::test]
async fn retry_after_seconds_are_waited_before_the_next_attempt() {
    let site = FixtureSite::start().await;
    let mut req = request(&site.url("/ratelimited/a?retry_after=1"));
    req.max_retries = 2;
    let response = fetch(&fetcher_for(&site), &req).await.unwrap();
    assert_eq!((response.status, response.attempts), (200, 2));
    let times = arrivals(&site, "/ratelimited/a");
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "waited only {:?}",
        times[1] - times[0]
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let site = FixtureSite::start().await;
    let mut req = request(&site.url("/ratelimited/d?retry_after=2&date=1"));
    req.max_retries = 1;
    let response = fetch(&fetcher_for(&site), &req).await.unwrap();
    assert_eq!((response.status, response.attempts), (200, 2));
    let times = arrivals(&site, "/ratelimited/d");
    // An HTTP-date has whole seconds, so "2 s from now" may arrive as a little over 1 s.
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "waited only {:?}",
        times[1] - times[0]
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_ends_retrying_with_the_response() {
    let site = FixtureSite::start().await;
    let mut req = request(&site.url("/status/429?retry_after=3600"));
    req.max_retries = 3;
    let response = fetch(&fetcher_for(&site), &req).await.unwrap();
    assert_eq!((response.status, response.attempts), (429, 1));
    assert_eq!(site.hits("/status/429"), 1);
}

#[tokio::test]
async fn a_flaky_page_succeeds_after_its_failures() {
    let site = FixtureSite::start().await;
    let mut req = request(&site.url("/flaky/f?fail=2"));
    req.max_retries = 3;
    let response = fetch(&fetcher_for(&site), &req).await.unwrap();
    assert_eq!((response.status, response.attempts), (200, 3));
    assert_eq!(site.hits("/flaky/f"), 3);
}

#[tokio::test]
async fn exhausted_retries_return_the_last_error_response() {
    let site = FixtureSite::start().await;
    let mut req = request(&site.url("/status/500"));
    req.max_retries = 2;
    let response = fetch(&fetcher_for(&site), &req).await.unwrap();
    assert_eq!((response.status, response.attempts), (500, 3));
    assert_eq!(site.hits("/status/500"), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let site = FixtureSite::start().await;
    let mut req = request(&site.url("/status/404"));
    req.max_retries = 3;
    let response = fetch(&fetcher_for(&site), &req).await.unwrap();
    assert_eq!((response.status, response.attempts), (404, 1));
}

#[tokio::test]
async fn a_slow_page_past_the_attempt_timeout_is_a_total_timeout_and_is_retried() {
    let site = FixtureSite::start().await;
    let mut req = request(&site.url("/slow?ms=3000"));
    req.timeout = Duration::from_millis(300);
    req.max_retries = 1;
    let err = fetch(&fetcher_for(&site), &req).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Timeout { stage: "total", .. }),
        "{err:?}"
    );
    assert_eq!(site.hits("/slow"), 2, "a timeout is retried");
}

#[tokio::test]
async fn a_stalled_body_is_a_read_timeout() {
    let site = FixtureSite::start().await;
    let config = HttpFetcherConfig {
        read_timeout: Duration::from_millis(300),
        ..config_for(&site)
    };
    let fetcher = HttpFetcher::new(config).unwrap();
    let err = fetch(&fetcher, &request(&site.url("/slow-body?ms=5000")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Timeout { stage: "read", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn cancelling_interrupts_an_in_flight_request() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    let cancel = CancellationToken::new();
    let req = request(&site.url("/slow?ms=30000"));
    let fetch = fetcher.fetch(&req, &cancel);
    let cancel_once_sent = async {
        while site.hits("/slow") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
    };
    let (result, ()) = tokio::join!(fetch, cancel_once_sent);
    assert!(matches!(result, Err(FetchError::Cancelled)), "{result:?}");
}

#[tokio::test]
async fn the_attempt_timeout_does_not_count_time_spent_waiting_for_politeness() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    let requests: Vec<_> = (1..=3)
        .map(|page| {
            let mut req = request(&site.url(&format!("/catalog?page={page}")));
            // Starts 400 ms apart: the third waits 800 ms, longer than its 600 ms timeout.
            req.rate_limit.delay_ms = 400;
            req.timeout = Duration::from_millis(600);
            req
        })
        .collect();
    for result in futures::future::join_all(requests.iter().map(|req| fetch(&fetcher, req))).await {
        assert_eq!(result.unwrap().status, 200);
    }
}

#[tokio::test]
async fn cancelling_interrupts_the_wait_between_retries() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    let mut req = request(&site.url("/status/503?retry_after=100"));
    req.max_retries = 3;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let fetch = fetcher.fetch(&req, &cancel);
    let cancel_after_first_hit = async {
        while site.hits("/status/503") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        trigger.cancel();
    };
    let (result, ()) = tokio::join!(fetch, cancel_after_first_hit);
    assert!(matches!(result, Err(FetchError::Cancelled)), "{result:?}");
    assert_eq!(site.hits("/status/503"), 1);
}

#[test]
fn backoff_doubles_per_attempt_and_is_capped() {
    let base = Duration::from_millis(500);
    assert_eq!(retry::backoff_ceiling(base, 0), Duration::from_millis(500));
    assert_eq!(retry::backoff_ceiling(base, 3), Duration::from_secs(4));
    assert_eq!(retry::backoff_ceiling(base, 40), retry::MAX_BACKOFF);
    for attempt in 0..6 {
        assert!(retry::backoff_delay(base, attempt) <= retry::backoff_ceiling(base, attempt));
    }
}

#[test]
fn retry_after_parses_seconds_and_http_dates() {
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(
        retry::parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
    assert_eq!(
        retry::parse_retry_after(&later, now),
        Some(Duration::from_secs(30))
    );
    let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
    assert_eq!(retry::parse_retry_after(&past, now), Some(Duration::ZERO));
    assert_eq!(retry::parse_retry_after("soon", now), None);
}

#[tokio::test]
async fn the_fetcher_is_shareable_across_tasks() {
    let site = FixtureSite::start().await;
    let fetcher = std::sync::Arc::new(fetcher_for(&site));
    let mut tasks = Vec::new();
    for page in 1..=3 {
        let fetcher = std::sync::Arc::clone(&fetcher);
        let url = site.url(&format!("/catalog?page={page}"));
        tasks.push(tokio::spawn(async move {
            fetch(&fetcher, &request(&url)).await.map(|r| r.status)
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 200);
    }
}
