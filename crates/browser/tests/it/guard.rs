//! Every request a page makes passes the URL guard.

use std::time::Duration;

use selextract_browser::check_request_url;
use selextract_fetch::guard::GuardPolicy;
use selextract_fetch::{FetchError, Fetcher, RenderOptions};
use selextract_spec::{BrowserSpec, WaitCondition};
use selextract_testkit::FixtureSite;
use tokio_util::sync::CancellationToken;

use crate::support::{self, require_chromium};

fn settle() -> RenderOptions {
    RenderOptions {
        browser: BrowserSpec {
            wait_conditions: vec![WaitCondition::NetworkIdle { timeout_ms: 3000 }],
            // Images load, so that the `<img>` request meets the guard too.
            load_images: true,
            ..BrowserSpec::default()
        },
        ..RenderOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_request_to_a_refused_address_is_blocked_and_reported() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    // Another loopback port the guard does not allow: harmless even if the guard failed.
    let other = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let target = other.url("/private/probe");
    let request = support::request(&site.url(&format!("/js/reach?target={target}")));

    let rendered = pool
        .fetcher()
        .render(&request, &settle(), &CancellationToken::new())
        .await
        .expect("the page itself renders");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert_eq!(body.matches("class=\"product\"").count(), 3);
    // The WebSocket constructor works again: its handshake is refused by the guarding proxy.
    assert!(body.contains("data-websocket=\"opened\""), "{body}");
    assert_eq!(
        other.hits("/private/probe"),
        0,
        "the refused address was reached (img, fetch, iframe or WebSocket): {:?}",
        other.request_log()
    );
    assert!(
        rendered.blocked_requests >= 3,
        "img, fetch and iframe: {rendered:?}"
    );
    // The page's own requests are reported by URL; a tunnel (the WebSocket) by host:port.
    let authority = other.addr().to_string();
    assert!(
        rendered
            .blocked_urls
            .iter()
            .all(|u| u.starts_with(&target) || *u == authority),
        "{:?}",
        rendered.blocked_urls
    );
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_allow_private_networks_the_sub_request_is_allowed() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let other = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |c| c.guard.allow_private_networks = true).await;
    let target = other.url("/private/probe");
    let request = support::request(&site.url(&format!("/js/reach?target={target}")));

    let rendered = pool
        .fetcher()
        .render(&request, &settle(), &CancellationToken::new())
        .await
        .expect("renders");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert!(body.contains("data-websocket=\"opened\""), "{body}");
    let via = |kind: &str| {
        let wanted = format!("/private/probe?via={kind}");
        other
            .request_log()
            .iter()
            .filter(|(seen, _)| *seen == wanted)
            .count()
    };
    for _ in 0..50 {
        if ["img", "fetch", "iframe", "websocket"]
            .iter()
            .all(|kind| via(kind) > 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for kind in ["img", "fetch", "iframe", "websocket"] {
        assert!(via(kind) > 0, "the {kind} request reaches the other site");
    }
    assert_eq!(rendered.blocked_requests, 0);
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_url_at_a_refused_address_fails_as_blocked() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    // Port 1 on loopback: nothing listens there, so a broken guard would still send nothing
    // anywhere but this machine.
    let request = support::request("http://127.0.0.1:1/");

    let error = pool
        .fetcher()
        .fetch(&request, &CancellationToken::new())
        .await
        .expect_err("refused");

    assert!(matches!(error, FetchError::Blocked { .. }), "{error:?}");
    assert_eq!(error.class(), "blocked_address");
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test]
async fn the_request_guard_refuses_private_metadata_and_non_web_urls_without_connecting() {
    let strict = GuardPolicy::default();
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://127.0.0.1:1/",
        "https://[::1]/",
        "ws://127.0.0.1:1/socket",
        "http://localhost:1/",
        "file:///etc/passwd",
        "chrome://crash",
    ] {
        assert!(
            check_request_url(&strict, url).await.is_err(),
            "{url} must be refused"
        );
    }
    assert!(
        check_request_url(&strict, "data:text/plain,hi")
            .await
            .is_ok()
    );
    let open = GuardPolicy {
        allow_private_networks: true,
        ..GuardPolicy::default()
    };
    assert!(
        check_request_url(&open, "http://127.0.0.1:1/")
            .await
            .is_ok()
    );
    assert!(
        check_request_url(&open, "file:///etc/passwd")
            .await
            .is_err()
    );
}
