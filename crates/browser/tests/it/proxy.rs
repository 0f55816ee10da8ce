//! The guarding proxy in front of Chromium: Web Workers and WebSockets meet the same guard as
//! the page, and a name is connected to at the address the guard vetted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use selextract_fetch::guard::{IpNet, NameResolver};
use selextract_fetch::{Fetcher, HttpFetcher, HttpFetcherConfig, RenderOptions};
use selextract_spec::{BrowserSpec, WaitCondition};
use selextract_testkit::FixtureSite;
use tokio_util::sync::CancellationToken;

use crate::support::{self, require_chromium};

fn until_done() -> RenderOptions {
    RenderOptions {
        browser: BrowserSpec {
            wait_conditions: vec![WaitCondition::Element {
                selector: "#done".to_owned(),
                timeout_ms: 10_000,
            }],
            ..BrowserSpec::default()
        },
        ..RenderOptions::default()
    }
}

fn attribute(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!("{name}=\""))? + name.len() + 2;
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_worker_cannot_fetch_from_or_open_a_websocket_to_a_refused_address() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    // Another loopback port the guard does not allow.
    let other = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let target = other.url("/private/probe");
    let request = support::request(&site.url(&format!("/js/worker-reach?target={target}")));

    let rendered = pool
        .fetcher()
        .render(&request, &until_done(), &CancellationToken::new())
        .await
        .expect("the page itself renders");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert!(
        body.contains("id=\"done\""),
        "both outcomes are known: {body}"
    );
    assert_eq!(
        attribute(&body, "data-worker-fetch").as_deref(),
        Some("failed"),
        "{body}"
    );
    assert_eq!(
        attribute(&body, "data-worker-websocket").as_deref(),
        Some("failed"),
        "{body}"
    );
    assert!(
        other.request_log().is_empty(),
        "the refused address was reached: {:?}",
        other.request_log()
    );
    assert!(rendered.blocked_requests >= 2, "{rendered:?}");
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_allow_private_networks_a_web_worker_reaches_the_other_address() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let other = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |c| c.guard.allow_private_networks = true).await;
    let target = other.url("/private/probe");
    let request = support::request(&site.url(&format!("/js/worker-reach?target={target}")));

    let rendered = pool
        .fetcher()
        .render(&request, &until_done(), &CancellationToken::new())
        .await
        .expect("renders");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert!(
        body.contains("id=\"done\""),
        "both outcomes are known: {body}"
    );
    // An opaque (`no-cors`) response: it was answered.
    assert_eq!(
        attribute(&body, "data-worker-fetch").as_deref(),
        Some("status-0"),
        "{body}"
    );
    let seen: Vec<String> = other.request_log().into_iter().map(|(p, _)| p).collect();
    // The probe is no WebSocket endpoint: the handshake arrives and is answered with a page.
    for via in ["worker-fetch", "worker-websocket"] {
        let wanted = format!("/private/probe?via={via}");
        assert!(seen.contains(&wanted), "{wanted} missing from {seen:?}");
    }
    assert_eq!(rendered.blocked_requests, 0);
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_websocket_to_an_allowed_address_works() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let socket = format!("ws://{}/ws/echo", site.addr());
    let request = support::request(&site.url(&format!("/js/websocket?target={socket}")));

    let rendered = pool
        .fetcher()
        .render(&request, &until_done(), &CancellationToken::new())
        .await
        .expect("renders");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert_eq!(
        attribute(&body, "data-echo").as_deref(),
        Some("echo:hello"),
        "{body}"
    );
    assert_eq!(site.hits("/ws/echo"), 1);
    assert_eq!(rendered.blocked_requests, 0);
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

/// Answers `rebind.test` with 127.0.0.2 the first time and 127.0.0.1 every later time, as a
/// rebinding attacker's DNS server would.
#[derive(Debug, Default)]
struct RebindingResolver {
    lookups: AtomicUsize,
}

#[async_trait::async_trait]
impl NameResolver for RebindingResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        if host != "rebind.test" {
            return Err(std::io::Error::other("unknown name"));
        }
        let first = self.lookups.fetch_add(1, Ordering::SeqCst) == 0;
        let last = if first { 2 } else { 1 };
        Ok(vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))])
    }
}

/// A site on 127.0.0.2 (allowed by `allowed_networks`) and one on 127.0.0.1 (refused) on the
/// same port, so that `rebind.test:PORT` means either.
async fn sites_on_one_port() -> (FixtureSite, FixtureSite) {
    for _ in 0..20 {
        let allowed = FixtureSite::start_at(SocketAddr::from(([127, 0, 0, 2], 0)))
            .await
            .expect("127.0.0.2 can be bound");
        let port = allowed.addr().port();
        if let Ok(refused) = FixtureSite::start_at(SocketAddr::from(([127, 0, 0, 1], port))).await {
            return (allowed, refused);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.1");
}

fn allowed_networks() -> Vec<IpNet> {
    vec!["127.0.0.2/32".parse().expect("valid network")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_rebinds_to_a_refused_address_never_reaches_it_in_browser_mode() {
    let chromium = require_chromium!();
    let (allowed, refused) = sites_on_one_port().await;
    let resolver = Arc::new(RebindingResolver::default());
    let pool = support::pool(&chromium, &allowed, |c| {
        c.guard.allowed_private_addrs.clear();
        c.guard.allowed_networks = allowed_networks();
        c.guard.resolver = resolver.clone();
    })
    .await;
    let port = allowed.addr().port();
    let target = format!("http://rebind.test:{port}/private/probe");
    let request = support::request(&format!(
        "http://rebind.test:{port}/js/reach?target={target}"
    ));

    let rendered = pool
        .fetcher()
        .render(
            &request,
            &RenderOptions {
                browser: BrowserSpec {
                    wait_conditions: vec![WaitCondition::NetworkIdle { timeout_ms: 3000 }],
                    load_images: true,
                    ..BrowserSpec::default()
                },
                ..RenderOptions::default()
            },
            &CancellationToken::new(),
        )
        .await
        .expect("the page renders from 127.0.0.2");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert_eq!(body.matches("class=\"product\"").count(), 3, "{body}");
    assert!(
        refused.request_log().is_empty(),
        "127.0.0.1 was reached: {:?}",
        refused.request_log()
    );
    assert_eq!(allowed.hits("/js/reach"), 1);
    assert!(
        allowed.hits("/private/probe") >= 1,
        "{:?}",
        allowed.request_log()
    );
    assert_eq!(
        resolver.lookups.load(Ordering::SeqCst),
        1,
        "the name is resolved once per render and the answer pinned"
    );
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_rebinds_to_a_refused_address_never_reaches_it_over_http() {
    let (allowed, refused) = sites_on_one_port().await;
    let resolver = Arc::new(RebindingResolver::default());
    let fetcher = HttpFetcher::new(HttpFetcherConfig {
        allowed_networks: allowed_networks(),
        resolver: resolver.clone(),
        ..HttpFetcherConfig::default()
    })
    .expect("fetcher builds");
    let port = allowed.addr().port();
    let cancel = CancellationToken::new();
    // Without robots.txt, so that the page fetch makes the first lookup: a robots.txt fetch
    // would take the allowed answer, and whether the page then reuses its pooled connection
    // or opens one (and resolves again) depends on timing.
    let request = |path: &str| {
        let mut request = support::request(&format!("http://rebind.test:{port}{path}"));
        request.respect_robots_txt = false;
        request
    };

    let first = fetcher
        .fetch(&request("/catalog"), &cancel)
        .await
        .expect("the first answer is allowed");
    let second = fetcher.fetch(&request("/item/1"), &cancel).await;

    assert_eq!(first.status, 200);
    if let Err(error) = &second {
        assert_eq!(error.class(), "blocked_address", "{error:?}");
    }
    assert!(
        refused.request_log().is_empty(),
        "127.0.0.1 was reached: {:?}",
        refused.request_log()
    );
    assert_eq!(allowed.hits("/catalog"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_task_renders_through_a_socks5_upstream_and_the_guard_still_applies() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let other = FixtureSite::start().await;
    let socks = selextract_testkit::start_socks5_proxy().await;
    let pool = support::pool(&chromium, &site, |c| c.proxies = vec![socks.url()]).await;
    let target = other.url("/private/probe");
    let mut request = support::request(&site.url(&format!("/js/reach?target={target}")));
    request.use_proxy = true;
    let options = RenderOptions {
        browser: BrowserSpec {
            wait_conditions: vec![WaitCondition::NetworkIdle { timeout_ms: 3000 }],
            load_images: true,
            ..BrowserSpec::default()
        },
        ..RenderOptions::default()
    };

    let rendered = pool
        .fetcher()
        .render(&request, &options, &CancellationToken::new())
        .await
        .expect("renders through the SOCKS5 proxy");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert_eq!(body.matches("class=\"product\"").count(), 3, "{body}");
    let targets = socks.targets();
    assert!(
        targets.contains(&site.addr().to_string()),
        "the page went through the proxy: {targets:?}"
    );
    assert!(
        !targets.contains(&other.addr().to_string()),
        "the refused address was not even asked for: {targets:?}"
    );
    assert!(other.request_log().is_empty(), "{:?}", other.request_log());
    assert!(rendered.blocked_requests >= 3, "{rendered:?}");
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}
