//! The proxy pool: requests go through proxies, dead ones are benched, sessions are sticky.

use std::time::Duration;

use selextract_fetch::{FetchError, FetchRequest, HttpFetcher, HttpFetcherConfig};
use selextract_testkit::{FixtureSite, ProxyServer, dead_proxy_addr, start_http_proxy};
use url::Url;

use crate::support::{config_for, fetch, request};

fn proxied_fetcher(site: &FixtureSite, proxies: &[String], max_failures: u32) -> HttpFetcher {
    let config = HttpFetcherConfig {
        proxies: proxies.iter().map(|p| Url::parse(p).unwrap()).collect(),
        proxy_max_failures: max_failures,
        proxy_cooldown: Duration::from_secs(600),
        ..config_for(site)
    };
    HttpFetcher::new(config).unwrap()
}

/// A proxied request without robots.txt, so proxy counts are page requests only.
fn proxied_request(url: &str) -> FetchRequest {
    let mut req = request(url);
    req.use_proxy = true;
    req.respect_robots_txt = false;
    req
}

fn dead_proxy() -> String {
    format!("http://{}", dead_proxy_addr())
}

#[tokio::test]
async fn requests_go_through_the_proxy() {
    let site = FixtureSite::start().await;
    let proxy = start_http_proxy().await;
    let fetcher = proxied_fetcher(&site, &[proxy.url()], 3);
    let response = fetch(&fetcher, &proxied_request(&site.url("/catalog?page=2")))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert!(response.via_proxy);
    assert!(String::from_utf8_lossy(&response.body).contains("Product 11"));
    let log = proxy.request_log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].request_line,
        format!("GET {} HTTP/1.1", site.url("/catalog?page=2"))
    );
    assert_eq!(site.hits("/catalog"), 1);
}

#[tokio::test]
async fn without_use_proxy_the_request_goes_direct() {
    let site = FixtureSite::start().await;
    let proxy = start_http_proxy().await;
    let fetcher = proxied_fetcher(&site, &[proxy.url()], 3);
    let mut req = proxied_request(&site.url("/catalog"));
    req.use_proxy = false;
    let response = fetch(&fetcher, &req).await.unwrap();
    assert!(!response.via_proxy);
    assert_eq!(proxy.requests(), 0);
}

#[tokio::test]
async fn proxy_credentials_are_sent_to_the_proxy_but_never_shown() {
    let site = FixtureSite::start().await;
    let proxy = start_http_proxy().await;
    let with_credentials = format!("http://user:s3cret@{}", proxy.addr());
    let fetcher = proxied_fetcher(&site, &[with_credentials], 3);
    fetch(&fetcher, &proxied_request(&site.url("/catalog")))
        .await
        .unwrap();
    let authorization = proxy.request_log()[0].proxy_authorization.clone();
    assert_eq!(authorization.as_deref(), Some("Basic dXNlcjpzM2NyZXQ="));

    let dead = format!("http://user:s3cret@{}", dead_proxy_addr());
    let err = fetch(
        &proxied_fetcher(&site, &[dead], 3),
        &proxied_request(&site.url("/catalog")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), "proxy");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
}

#[tokio::test]
async fn a_dead_proxy_fails_the_request() {
    let site = FixtureSite::start().await;
    let fetcher = proxied_fetcher(&site, &[dead_proxy()], 3);
    let err = fetch(&fetcher, &proxied_request(&site.url("/catalog")))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Proxy { .. }), "{err:?}");
    assert_eq!(site.hits("/catalog"), 0);
}

#[tokio::test]
async fn a_failing_proxy_is_benched_and_the_live_one_takes_over() {
    let site = FixtureSite::start().await;
    let live = start_http_proxy().await;
    let fetcher = proxied_fetcher(&site, &[dead_proxy(), live.url()], 2);
    let mut attempts = Vec::new();
    for page in 1..=5 {
        let mut req = proxied_request(&site.url(&format!("/catalog?page={page}")));
        req.max_retries = 3;
        let response = fetch(&fetcher, &req).await.unwrap();
        assert!(response.via_proxy);
        attempts.push(response.attempts);
    }
    // Round-robin sends the first two requests to the dead proxy first; its second failure
    // benches it, and from then on every request goes straight to the live proxy.
    assert_eq!(attempts, vec![2, 2, 1, 1, 1]);
    assert_eq!(live.requests(), 5);
}

#[tokio::test]
async fn the_tasks_own_max_failures_overrides_the_configured_one() {
    let site = FixtureSite::start().await;
    // Configured to tolerate 100 failures; the task says 1.
    let fetcher = proxied_fetcher(&site, &[dead_proxy()], 100);
    let mut req = proxied_request(&site.url("/catalog"));
    req.proxy_max_failures = Some(1);
    let first = fetch(&fetcher, &req).await.unwrap_err();
    assert_eq!(first.class(), "proxy");
    let second = fetch(&fetcher, &req).await.unwrap_err();
    assert!(
        matches!(&second, FetchError::Proxy { message, .. } if message.contains("no proxy available")),
        "{second}"
    );
}

#[tokio::test]
async fn when_every_proxy_is_benched_the_error_says_none_is_available() {
    let site = FixtureSite::start().await;
    let fetcher = proxied_fetcher(&site, &[dead_proxy()], 1);
    let first = fetch(&fetcher, &proxied_request(&site.url("/catalog")))
        .await
        .unwrap_err();
    assert_eq!(first.class(), "proxy");
    let second = fetch(&fetcher, &proxied_request(&site.url("/catalog")))
        .await
        .unwrap_err();
    assert!(
        matches!(&second, FetchError::Proxy { message, .. } if message.contains("no proxy available")),
        "{second}"
    );
}

#[tokio::test]
async fn use_proxy_without_configured_proxies_is_a_clear_error() {
    let site = FixtureSite::start().await;
    let fetcher = proxied_fetcher(&site, &[], 3);
    let err = fetch(&fetcher, &proxied_request(&site.url("/catalog")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FetchError::Proxy { message, .. } if message.contains("no proxies are configured")),
        "{err}"
    );
    assert_eq!(site.hits("/catalog"), 0);
}

async fn counts_after(
    fetcher: &HttpFetcher,
    site: &FixtureSite,
    proxies: [&ProxyServer; 2],
    session: Option<&str>,
) -> [usize; 2] {
    for page in 1..=4 {
        let mut req = proxied_request(&site.url(&format!("/catalog?page={page}")));
        req.session_key = session.map(str::to_owned);
        fetch(fetcher, &req).await.unwrap();
    }
    [proxies[0].requests(), proxies[1].requests()]
}

#[tokio::test]
async fn a_session_key_keeps_the_same_proxy() {
    let site = FixtureSite::start().await;
    let (a, b) = (start_http_proxy().await, start_http_proxy().await);
    let fetcher = proxied_fetcher(&site, &[a.url(), b.url()], 3);
    let counts = counts_after(&fetcher, &site, [&a, &b], Some("run-1")).await;
    assert!(counts == [4, 0] || counts == [0, 4], "{counts:?}");
}

#[tokio::test]
async fn without_a_session_key_proxies_take_turns() {
    let site = FixtureSite::start().await;
    let (a, b) = (start_http_proxy().await, start_http_proxy().await);
    let fetcher = proxied_fetcher(&site, &[a.url(), b.url()], 3);
    assert_eq!(counts_after(&fetcher, &site, [&a, &b], None).await, [2, 2]);
}

#[tokio::test]
async fn a_refused_target_is_not_sent_to_the_proxy() {
    let site = FixtureSite::start().await;
    let proxy = start_http_proxy().await;
    let fetcher = proxied_fetcher(&site, &[proxy.url()], 3);
    for url in ["http://127.0.0.1:1/", "http://localhost:1/"] {
        let err = fetch(&fetcher, &proxied_request(url)).await.unwrap_err();
        assert_eq!(err.class(), "blocked_address", "{url}: {err:?}");
    }
    assert_eq!(proxy.requests(), 0);
}

#[test]
fn an_unsupported_proxy_scheme_is_a_build_error() {
    let config = HttpFetcherConfig {
        proxies: vec![Url::parse("ftp://user:pw@proxy.example:21").unwrap()],
        ..Default::default()
    };
    let err = HttpFetcher::new(config).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("ftp://proxy.example:21") && !message.contains("pw"),
        "{message}"
    );
}
