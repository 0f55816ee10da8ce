//! A page whose records exceed the size limits fails on its own as `records_too_large`,
//! one too costly to extract as `extraction_too_costly`;
//! the run goes on with its other pages.

use std::sync::Arc;

use selextract_engine::{PageOutcome, Reason, Verdict};
use selextract_spec::Limits;
use selextract_testkit::{FakeFetcher, Script};

use crate::fake::{options, product_page, product_spec, run, titles};
use crate::{Limited, spec_with_limits};

#[tokio::test]
async fn a_page_with_a_value_over_the_limit_fails_as_records_too_large_and_the_run_goes_on() {
    let small = "https://shop.example/small";
    let huge = "https://shop.example/huge";
    let http = Arc::new(FakeFetcher::new());
    http.script(small, Script::html(product_page(&["Short"])));
    http.script(huge, Script::html(product_page(&[&"x".repeat(4_096)])));
    let limits = Limits {
        max_value_bytes: 64,
        ..Limits::default()
    };
    let budget = Limited::new(100);

    let (mut pages, summary, log) = run(
        spec_with_limits(product_spec(&[small, huge], "http"), &limits),
        options(&http, None, budget.clone()),
    )
    .await;

    pages.sort_by_key(|page| page.key);
    assert_eq!(titles(&pages[0]), ["Short"]);
    let PageOutcome::Error { class, message } = &pages[1].outcome else {
        panic!("the huge page should fail, got {:?}", pages[1].outcome);
    };
    assert_eq!(class, "records_too_large");
    assert!(!message.is_empty());
    assert!(pages[1].records.is_empty());
    // The page was fetched, so it is charged like any answered page.
    assert_eq!(pages[1].compute_units, 1);
    assert_eq!(budget.left(), 98);
    assert_eq!(
        log.iter()
            .filter(|line| line.starts_with("page failed:"))
            .count(),
        1,
        "{log:?}"
    );
    assert_eq!(summary.progress.pages_failed, 1);
    assert_eq!(summary.verdict(), Verdict::Partial(Reason::FetchErrors));
}

#[tokio::test]
async fn a_page_too_costly_to_extract_fails_as_extraction_too_costly_and_the_run_goes_on() {
    let small = "https://shop.example/small";
    let deep = "https://shop.example/deep";
    let http = Arc::new(FakeFetcher::new());
    http.script(small, Script::html(product_page(&["Short"])));
    // 100,000 nested products: html5ever's tree builder would need minutes for them.
    let nested = r#"<div class="product"><h2>Deep</h2>"#.repeat(100_000);
    http.script(
        deep,
        Script::html(format!("<html><body>{nested}</body></html>")),
    );
    let budget = Limited::new(100);

    let (mut pages, summary, log) = run(
        spec_with_limits(product_spec(&[small, deep], "http"), &Limits::default()),
        options(&http, None, budget.clone()),
    )
    .await;

    pages.sort_by_key(|page| page.key);
    assert_eq!(titles(&pages[0]), ["Short"]);
    let PageOutcome::Error { class, message } = &pages[1].outcome else {
        panic!("the deep page should fail, got {:?}", pages[1].outcome);
    };
    assert_eq!(class, "extraction_too_costly");
    assert!(message.contains("limits.max_extraction_steps"), "{message}");
    assert!(pages[1].records.is_empty());
    assert_eq!(pages[1].compute_units, 1);
    assert_eq!(budget.left(), 98);
    assert_eq!(
        log.iter()
            .filter(|line| line.starts_with("page failed:"))
            .count(),
        1,
        "{log:?}"
    );
    assert_eq!(summary.progress.pages_failed, 1);
    assert_eq!(summary.verdict(), Verdict::Partial(Reason::FetchErrors));
}
