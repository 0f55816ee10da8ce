//! JavaScript-rendered content in browser, HTTP and auto modes.

use selextract_engine::FetchMode;
use selextract_fetch::{Fetcher, RenderOptions};
use selextract_spec::BrowserSpec;
use selextract_testkit::FixtureSite;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{self, product_fields, require_chromium};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_injected_products_are_extracted_in_browser_mode_and_missed_over_http() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let task = |mode: &str| {
        support::spec(json!({
            "start_urls": [site.url("/js/catalog?page=2&delay=300")],
            "mode": mode,
            "item_selector": "div.product",
            "fields": product_fields(),
            "browser": {"wait_conditions": [{"type": "element", "selector": "#done", "timeout_ms": 5000}]}
        }))
    };

    let rendered = support::run(
        task("browser"),
        support::options(&site, Some(&pool)),
        CancellationToken::new(),
    )
    .await;
    let plain = support::run(
        task("http"),
        support::options(&site, None),
        CancellationToken::new(),
    )
    .await;

    let expected: Vec<String> = (11..=20).map(|id| format!("Product {id}")).collect();
    assert_eq!(rendered.titles(), expected);
    assert_eq!(rendered.pages[0].mode, FetchMode::Browser);
    assert_eq!(rendered.pages[0].compute_units, 5);
    assert!(
        plain.records().is_empty(),
        "HTTP mode cannot see JS content"
    );
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_renders_the_js_page_and_fetches_the_static_page_over_http() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let task = support::spec(json!({
        "start_urls": [site.url("/js/catalog?page=1&delay=0"), site.url("/catalog?page=1")],
        "mode": "auto",
        "item_selector": "div.product",
        "fields": product_fields(),
        "browser": {"wait_conditions": [{"type": "element", "selector": "#done", "timeout_ms": 5000}]}
    }));

    let run = support::run(
        task,
        support::options(&site, Some(&pool)),
        CancellationToken::new(),
    )
    .await;

    let by_start = |index: u32| {
        run.pages
            .iter()
            .find(|p| p.key.start_index == index)
            .expect("page of each start URL")
    };
    let js = by_start(0);
    let plain = by_start(1);
    assert_eq!(js.mode, FetchMode::Browser);
    assert_eq!(js.records.len(), 10);
    assert_eq!(
        js.compute_units,
        1 + 5,
        "the HTTP attempt plus the rendered page"
    );
    assert_eq!(plain.mode, FetchMode::Http);
    assert_eq!(plain.records.len(), 10);
    assert_eq!(plain.compute_units, 1);
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_cookies_and_user_agent_reach_the_server() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let mut request = support::request(&site.url("/headers"));
    request.headers = vec![("X-Task".to_owned(), "alpha".to_owned())];
    request.cookies = vec![("session".to_owned(), "s3cret".to_owned())];
    let options = RenderOptions {
        browser: BrowserSpec {
            user_agent: Some("SelextractTest/1".to_owned()),
            ..BrowserSpec::default()
        },
        ..RenderOptions::default()
    };

    let rendered = pool
        .fetcher()
        .render(&request, &options, &CancellationToken::new())
        .await
        .expect("renders");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    assert!(body.contains("alpha"), "custom header missing: {body}");
    assert!(body.contains("session=s3cret"), "cookie missing: {body}");
    assert!(
        body.contains("SelextractTest/1"),
        "user agent missing: {body}"
    );
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_task_renders_through_its_context_proxy_and_others_do_not() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let proxy = selextract_testkit::start_http_proxy().await;
    let pool = support::pool(&chromium, &site, |c| {
        c.max_browsers = 1;
        c.proxies = vec![proxy.url()];
    })
    .await;
    let options = RenderOptions {
        browser: BrowserSpec {
            wait_conditions: vec![selextract_spec::WaitCondition::Element {
                selector: "#done".to_owned(),
                timeout_ms: 5000,
            }],
            ..BrowserSpec::default()
        },
        ..RenderOptions::default()
    };
    let fetcher = pool.fetcher();
    let cancel = CancellationToken::new();
    let product_count = |rendered: &selextract_fetch::Rendered| {
        String::from_utf8_lossy(&rendered.pages[0].body)
            .matches("class=\"product\"")
            .count()
    };

    let direct_url = site.url("/js/catalog?page=1&delay=0");
    let direct = fetcher
        .render(&support::request(&direct_url), &options, &cancel)
        .await
        .expect("renders directly");
    assert_eq!(product_count(&direct), 10);
    assert_eq!(proxy.requests(), 0, "{:?}", proxy.request_log());

    // The same browser, a new context with the task's proxy.
    let proxied_url = site.url("/js/catalog?page=2&delay=0");
    let mut request = support::request(&proxied_url);
    request.use_proxy = true;
    let proxied = fetcher
        .render(&request, &options, &cancel)
        .await
        .expect("renders through the proxy");
    assert_eq!(product_count(&proxied), 10);
    let relayed: Vec<String> = proxy
        .request_log()
        .into_iter()
        .map(|r| r.request_line)
        .collect();
    assert!(
        relayed
            .iter()
            .any(|line| line.starts_with(&format!("GET {proxied_url} "))),
        "the page went through the proxy: {relayed:?}"
    );
    assert!(
        !relayed.iter().any(|line| line.contains("page=1")),
        "the direct page did not: {relayed:?}"
    );
    assert_eq!(
        pool.pool.stats().await.launches,
        1,
        "one browser served both"
    );

    // A later unproxied render in the same browser does not inherit the proxy.
    let before = proxy.requests();
    let again = fetcher
        .render(
            &support::request(&site.url("/js/catalog?page=3&delay=0")),
            &options,
            &cancel,
        )
        .await
        .expect("renders directly again");
    assert_eq!(product_count(&again), 10);
    assert_eq!(proxy.requests(), before);
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dom_snapshot_larger_than_the_cap_fails_as_too_large_and_one_under_it_renders() {
    let chromium = require_chromium!();
    let site = FixtureSite::start().await;
    let pool = support::pool(&chromium, &site, |_| {}).await;
    let options = |max: usize| RenderOptions {
        browser: BrowserSpec {
            wait_conditions: vec![selextract_spec::WaitCondition::Element {
                selector: "#done".to_owned(),
                timeout_ms: 20_000,
            }],
            ..BrowserSpec::default()
        },
        max_snapshot_bytes: Some(max),
        ..RenderOptions::default()
    };
    let cancel = CancellationToken::new();

    // 64 MiB of DOM built by script against a 1 MiB cap.
    let huge = pool
        .fetcher()
        .render(
            &support::request(&site.url("/js/huge-dom?mib=64")),
            &options(1 << 20),
            &cancel,
        )
        .await
        .expect_err("too large");
    let small = pool
        .fetcher()
        .render(
            &support::request(&site.url("/js/huge-dom?mib=1")),
            &options(2 << 20),
            &cancel,
        )
        .await
        .expect("a 1 MiB DOM fits a 2 MiB cap");

    assert!(
        matches!(huge, selextract_fetch::FetchError::TooLarge { limit, .. } if limit == 1 << 20),
        "{huge:?}"
    );
    assert_eq!(small.pages.len(), 1);
    assert!(small.pages[0].body.len() > 1 << 20);
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}
