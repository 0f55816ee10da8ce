//! A task's headers and cookies go only to the origin (scheme, host, port) it asked for:
//! two fixture sites on two ports are two origins.

use selextract_fetch::{FetchRequest, HttpFetcher, HttpFetcherConfig, same_origin};
use selextract_testkit::FixtureSite;
use url::Url;

use crate::support::{fetch, request};

/// A fetcher whose guard lets through both fixture sites.
fn fetcher_for_both(a: &FixtureSite, b: &FixtureSite) -> HttpFetcher {
    HttpFetcher::new(HttpFetcherConfig {
        allowed_private_addrs: vec![a.addr(), b.addr()],
        ..HttpFetcherConfig::default()
    })
    .unwrap()
}

/// `/redirect/to` on `site`, redirecting to `target`.
fn redirect_to(site: &FixtureSite, target: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    site.url(&format!("/redirect/to?url={encoded}"))
}

/// A request carrying secrets in every form a task can give them.
fn with_secrets(url: &str) -> FetchRequest {
    let mut req = request(url);
    req.headers = vec![
        ("X-API-Key".into(), "key-123".into()),
        ("Authorization".into(), "Bearer token-456".into()),
        ("X-Custom".into(), "custom-789".into()),
        ("User-Agent".into(), "TaskAgent/1.0".into()),
    ];
    req.cookies = vec![("session".into(), "cookie-abc".into())];
    req
}

async fn echoed(fetcher: &HttpFetcher, req: &FetchRequest) -> serde_json::Value {
    let response = fetch(fetcher, req).await.unwrap();
    assert_eq!(response.status, 200);
    serde_json::from_slice(&response.body).unwrap()
}

fn assert_no_task_secret(headers: &serde_json::Value) {
    for name in ["x-api-key", "authorization", "x-custom", "cookie"] {
        assert!(headers.get(name).is_none(), "{name} leaked: {headers}");
    }
    let text = headers.to_string();
    for secret in [
        "key-123",
        "token-456",
        "custom-789",
        "cookie-abc",
        "TaskAgent",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {headers}");
    }
}

#[tokio::test]
async fn no_task_header_or_cookie_follows_a_redirect_to_another_origin() {
    let a = FixtureSite::start().await;
    let b = FixtureSite::start().await;
    let fetcher = fetcher_for_both(&a, &b);
    let req = with_secrets(&redirect_to(&a, &b.url("/headers")));
    let headers = echoed(&fetcher, &req).await;
    assert_eq!(
        headers["host"],
        b.addr().to_string(),
        "the redirect reached B"
    );
    assert_no_task_secret(&headers);
    // The fetcher's own defaults still identify it.
    assert_eq!(
        headers["user-agent"],
        format!("Selextract/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(b.hits("/headers"), 1);
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_task_headers_and_cookies() {
    let a = FixtureSite::start().await;
    let b = FixtureSite::start().await;
    let fetcher = fetcher_for_both(&a, &b);
    let req = with_secrets(&redirect_to(&a, &a.url("/headers")));
    let headers = echoed(&fetcher, &req).await;
    assert_eq!(headers["x-api-key"], "key-123");
    assert_eq!(headers["authorization"], "Bearer token-456");
    assert_eq!(headers["x-custom"], "custom-789");
    assert_eq!(headers["user-agent"], "TaskAgent/1.0");
    assert_eq!(headers["cookie"], "session=cookie-abc");
}

#[tokio::test]
async fn secrets_are_not_sent_again_when_a_later_hop_returns_to_the_origin() {
    // A → B → A: B could have chosen the path on A the secrets are replayed to.
    let a = FixtureSite::start().await;
    let b = FixtureSite::start().await;
    let fetcher = fetcher_for_both(&a, &b);
    let back_to_a = redirect_to(&b, &a.url("/headers"));
    let req = with_secrets(&redirect_to(&a, &back_to_a));
    let response = fetch(&fetcher, &req).await.unwrap();
    assert_eq!(response.redirects.len(), 2);
    let headers: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(headers["host"], a.addr().to_string());
    assert_no_task_secret(&headers);
}

#[tokio::test]
async fn another_host_name_for_the_same_address_and_port_is_another_origin() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for_both(&site, &site);
    let target = format!("http://localhost:{}/headers", site.addr().port());
    let headers = echoed(&fetcher, &with_secrets(&redirect_to(&site, &target))).await;
    assert_eq!(headers["host"], format!("localhost:{}", site.addr().port()));
    assert_no_task_secret(&headers);
}

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

#[test]
fn same_origin_compares_scheme_host_and_port() {
    let same = [
        ("http://h.example/a", "http://h.example:80/b?q=1"),
        ("https://h.example", "https://h.example:443/x"),
        ("http://H.Example/", "http://h.example/"),
        ("http://[::1]:80/", "http://[::1]/"),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"),
        ("https://user:pw@h.example/", "https://h.example/"),
    ];
    for (a, b) in same {
        assert!(same_origin(&url(a), &url(b)), "{a} and {b} are one origin");
        assert!(same_origin(&url(b), &url(a)), "{b} and {a} are one origin");
    }
    let different = [
        // A downgrade on the same host, with and without explicit default ports.
        ("https://h.example/", "http://h.example/"),
        ("https://h.example:443/", "http://h.example:80/"),
        // The https default port spoken over plain http is still plain http.
        ("https://h.example/", "http://h.example:443/"),
        ("http://h.example/", "http://h.example:8080/"),
        ("http://h.example/", "http://h.example.evil/"),
        ("http://h.example/", "http://sub.h.example/"),
        ("http://127.0.0.1/", "http://localhost/"),
        ("http://127.0.0.1:1/", "http://127.0.0.1:2/"),
    ];
    for (a, b) in different {
        assert!(!same_origin(&url(a), &url(b)), "{a} and {b} differ");
        assert!(!same_origin(&url(b), &url(a)), "{b} and {a} differ");
    }
}

#[test]
fn debug_of_the_fetcher_config_shows_proxies_without_their_credentials() {
    let config = HttpFetcherConfig {
        proxies: vec![
            Url::parse("http://scraper:proxy-pw-1@127.0.0.1:3128").expect("url"),
            Url::parse("socks5h://user:proxy-pw-2@127.0.0.2:1080").expect("url"),
        ],
        ..HttpFetcherConfig::default()
    };
    let debug = format!("{config:?}");
    assert!(!debug.contains("proxy-pw"), "{debug}");
    assert!(!debug.contains("scraper"), "{debug}");
    assert!(debug.contains("http://127.0.0.1:3128"), "{debug}");
    assert!(debug.contains("socks5h://127.0.0.2:1080"), "{debug}");
}
