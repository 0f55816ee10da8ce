//! Auto mode: a page where plain HTTP finds no records is rendered in the browser, each
//! fetch charged once; a failed render keeps the HTTP result and its charge only.

use std::sync::Arc;

use selextract_engine::{FetchMode, PageOutcome, Reason, StopReason, Verdict};
use selextract_testkit::{FakeFetcher, RequestKind, Script};

use crate::fake::{options, product_page, product_spec, run, titles};
use crate::{Limited, spec};

const URL: &str = "https://shop.example/list";

#[tokio::test]
async fn an_http_page_without_records_is_rendered_and_both_fetches_are_charged_once() {
    let http = Arc::new(FakeFetcher::new());
    http.script(
        URL,
        Script::html("<html><body><div id=app></div></body></html>"),
    );
    let browser = Arc::new(FakeFetcher::new());
    browser.script(URL, Script::html(product_page(&["One", "Two"])));
    let budget = Limited::new(100);

    let (pages, summary, _) = run(
        spec(product_spec(&[URL], "auto")),
        options(&http, Some(&browser), budget.clone()),
    )
    .await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].mode, FetchMode::Browser);
    assert_eq!(titles(&pages[0]), ["One", "Two"]);
    // One HTTP page (1) and one browser page (5), each once.
    assert_eq!(pages[0].compute_units, 6);
    assert_eq!(summary.progress.compute_units, 6);
    assert_eq!(budget.left(), 94);
    assert_eq!(http.fetches(), 1);
    assert_eq!(browser.renders(), 1);
    assert_eq!(
        browser.requests()[0].kind,
        RequestKind::Render { max_pages: 1 }
    );
    assert_eq!(summary.verdict(), Verdict::Completed);
}

#[tokio::test]
async fn an_http_page_with_records_is_not_rendered() {
    let http = Arc::new(FakeFetcher::new());
    http.script(URL, Script::html(product_page(&["One"])));
    let browser = Arc::new(FakeFetcher::new());
    let budget = Limited::new(100);

    let (pages, _, _) = run(
        spec(product_spec(&[URL], "auto")),
        options(&http, Some(&browser), budget.clone()),
    )
    .await;

    assert_eq!(pages[0].mode, FetchMode::Http);
    assert_eq!(browser.renders(), 0);
    assert_eq!(budget.left(), 99);
}

#[tokio::test]
async fn a_failed_render_keeps_the_http_result_and_refunds_the_browser_page() {
    let http = Arc::new(FakeFetcher::new());
    http.script(URL, Script::html("<html><body>nothing yet</body></html>"));
    let browser = Arc::new(FakeFetcher::new());
    browser.script(URL, Script::error("browser_crashed"));
    let budget = Limited::new(100);

    let (pages, summary, log) = run(
        spec(product_spec(&[URL], "auto")),
        options(&http, Some(&browser), budget.clone()),
    )
    .await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].mode, FetchMode::Http);
    assert_eq!(pages[0].outcome, PageOutcome::Ok);
    assert!(pages[0].records.is_empty());
    assert_eq!(pages[0].compute_units, 1);
    assert_eq!(budget.left(), 99);
    assert_eq!(browser.renders(), 1);
    assert!(
        log.iter()
            .any(|line| line.starts_with("auto mode: browser render failed")),
        "{log:?}"
    );
    assert_eq!(summary.verdict(), Verdict::Completed);
}

#[tokio::test]
async fn a_budget_that_cannot_pay_the_render_keeps_the_http_page_and_stops_the_run() {
    let http = Arc::new(FakeFetcher::new());
    http.script(URL, Script::html("<html><body>nothing yet</body></html>"));
    let browser = Arc::new(FakeFetcher::new());
    browser.script(URL, Script::html(product_page(&["One"])));
    // Enough for the HTTP page, not for a browser page (5).
    let budget = Limited::new(4);

    let (pages, summary, _) = run(
        spec(product_spec(&[URL], "auto")),
        options(&http, Some(&browser), budget.clone()),
    )
    .await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].mode, FetchMode::Http);
    assert_eq!(pages[0].compute_units, 1);
    assert_eq!(browser.renders(), 0, "no render starts without its units");
    assert_eq!(budget.left(), 3);
    assert_eq!(summary.stop, StopReason::BudgetExhausted);
    assert_eq!(
        summary.verdict(),
        Verdict::Partial(Reason::InsufficientComputeUnits)
    );
}
