//! Service Workers and Shared Workers run in renders and meet the same guard as the page:
//! what they import and fetch leaves Chromium through the render's guarding proxy, which
//! lets their own origin through and refuses another address.

use selextract_fetch::{Fetcher, RenderOptions, Rendered};
use selextract_spec::{BrowserSpec, WaitCondition};
use selextract_testkit::FixtureSite;
use tokio_util::sync::CancellationToken;

use crate::support::{self, TestPool, require_chromium};

/// A worker kind: the page that starts it, the attribute that says it started, and the
/// `via` names its requests to the other address carry.
struct Kind {
    page: &'static str,
    started: (&'static str, &'static str),
    import_via: &'static str,
    fetch_via: &'static str,
    websocket_via: &'static str,
}

const SERVICE_WORKER: Kind = Kind {
    page: "/js/service-worker-reach",
    started: ("data-registration", "active"),
    import_via: "service-worker-import",
    fetch_via: "service-worker-fetch",
    websocket_via: "service-worker-websocket",
};

const SHARED_WORKER: Kind = Kind {
    page: "/js/shared-worker-reach",
    started: ("data-shared-worker", "connected"),
    import_via: "shared-worker-import",
    fetch_via: "shared-worker-fetch",
    websocket_via: "shared-worker-websocket",
};

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

/// Renders `kind`'s page on `site` with `other`'s probe as the target; returns the render
/// and the snapshot, after checking that the worker started and that its imports and
/// fetches on its own origin worked.
async fn render_worker_page(
    pool: &TestPool,
    site: &FixtureSite,
    other: &FixtureSite,
    kind: &Kind,
) -> (Rendered, String) {
    let target = other.url("/private/probe");
    let request = support::request(&site.url(&format!("{}?target={target}", kind.page)));
    let rendered = pool
        .fetcher()
        .render(&request, &until_done(), &CancellationToken::new())
        .await
        .expect("the page itself renders");
    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    let (name, started) = kind.started;
    assert_eq!(
        attribute(&body, name).as_deref(),
        Some(started),
        "the worker did not start: {body}"
    );
    assert_eq!(
        attribute(&body, "data-import-allowed").as_deref(),
        Some("loaded"),
        "{body}"
    );
    assert_eq!(
        attribute(&body, "data-fetch-allowed").as_deref(),
        Some("status-200"),
        "{body}"
    );
    let seen = paths(site);
    for wanted in [
        "/js/worker-import.js".to_owned(),
        format!("/private/allowed?via={}", kind.fetch_via),
    ] {
        assert!(seen.contains(&wanted), "{wanted} missing from {seen:?}");
    }
    (rendered, body)
}

fn paths(site: &FixtureSite) -> Vec<String> {
    site.request_log().into_iter().map(|(p, _)| p).collect()
}

/// The worker's import, fetch and WebSocket to another loopback port (one the guard does not allow)
/// are refused by the guarding proxy and reported; that port sees nothing.
async fn assert_refused(kind: &Kind) {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let other = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;

    let (rendered, body) = render_worker_page(&pool, &site, &other, kind).await;

    for name in ["data-import-refused", "data-websocket-refused"] {
        assert_eq!(attribute(&body, name).as_deref(), Some("failed"), "{body}");
    }
    assert!(
        other.request_log().is_empty(),
        "the refused address was reached: {:?}",
        other.request_log()
    );
    // The import and the fetch are plain requests, reported by URL; the WebSocket goes
    // through a tunnel, reported by `host:port`.
    let probe = other.url("/private/probe");
    let reported = [
        format!("{probe}?via={}", kind.import_via),
        format!("{probe}?via={}", kind.fetch_via),
        other.addr().to_string(),
    ];
    for wanted in reported {
        assert!(
            rendered.blocked_urls.contains(&wanted),
            "{wanted} is not reported as refused: {rendered:?}"
        );
    }
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

/// With `allow_private_networks`, the same worker's import, fetch and WebSocket handshake
/// (answered with a page, so no socket opens) do reach the other port: the refusal above is
/// the guard's, not a worker that never asked.
async fn assert_allowed_with_private_networks(kind: &Kind) {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let other = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |c| c.guard.allow_private_networks = true).await;

    let (rendered, _body) = render_worker_page(&pool, &site, &other, kind).await;

    let seen = paths(&other);
    for via in [kind.import_via, kind.fetch_via, kind.websocket_via] {
        let wanted = format!("/private/probe?via={via}");
        assert!(seen.contains(&wanted), "{wanted} missing from {seen:?}");
    }
    assert_eq!(rendered.blocked_requests, 0, "{rendered:?}");
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_worker_cannot_import_fetch_or_open_a_websocket_to_a_refused_address() {
    assert_refused(&SERVICE_WORKER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_allow_private_networks_a_service_worker_reaches_the_other_address() {
    assert_allowed_with_private_networks(&SERVICE_WORKER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_worker_cannot_import_fetch_or_open_a_websocket_to_a_refused_address() {
    assert_refused(&SHARED_WORKER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_allow_private_networks_a_shared_worker_reaches_the_other_address() {
    assert_allowed_with_private_networks(&SHARED_WORKER).await;
}

/// A Service Worker that takes control of the page and would answer its requests itself is
/// bypassed: the page's requests still pass the render's interceptor, which adds the task's
/// headers for the first party and refuses images when the task does not load them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_requests_bypass_a_service_worker_that_controls_the_page() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let mut request = support::request(&site.url("/js/service-worker-controls"));
    request
        .headers
        .push(("X-Api-Key".to_owned(), "task-secret-key".to_owned()));

    let rendered = pool
        .fetcher()
        .render(&request, &until_done(), &CancellationToken::new())
        .await
        .expect("renders");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert_eq!(
        attribute(&body, "data-controlled").as_deref(),
        Some("yes"),
        "the Service Worker took control: {body}"
    );
    assert!(
        body.contains(r#""x-api-key":"task-secret-key""#),
        "the page's fetch of its own origin got the task's header from the interceptor: {body}"
    );
    assert_eq!(
        attribute(&body, "data-image").as_deref(),
        Some("failed"),
        "{body}"
    );
    let seen = paths(&site);
    assert!(seen.contains(&"/headers".to_owned()), "{seen:?}");
    assert!(
        !seen.contains(&"/img/controlled.png".to_owned()),
        "the image was fetched although the task does not load images: {seen:?}"
    );
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

/// A Service Worker lives in its render's incognito context: the next render of the same
/// site, in the same browser, finds none registered and is not controlled by one, so one
/// task's page cannot plant a worker that sees another task's pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_worker_does_not_outlive_its_render() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let other = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |c| c.max_browsers = 1).await;
    render_worker_page(&pool, &site, &other, &SERVICE_WORKER).await;
    let browsers = pool.pool.browser_pgids().await;
    let request = support::request(&site.url("/js/service-worker-registrations"));

    let rendered = pool
        .fetcher()
        .render(&request, &until_done(), &CancellationToken::new())
        .await
        .expect("renders");

    assert_eq!(
        pool.pool.browser_pgids().await,
        browsers,
        "both renders ran in the same browser"
    );
    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert_eq!(
        attribute(&body, "data-registrations").as_deref(),
        Some("0"),
        "{body}"
    );
    assert_eq!(
        attribute(&body, "data-controlled").as_deref(),
        Some("no"),
        "{body}"
    );
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}
