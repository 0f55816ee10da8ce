//! Every page of the shared real-world corpus: no panic, every `<a>` an item, and
//! `find_next` in agreement with `extract`.

use std::path::{Path, PathBuf};

use html5ever::driver::{self, ParseOpts};
use html5ever::tendril::TendrilSink;
use html5ever::tree_builder::TreeBuilderOpts;
use scraper::{Html, HtmlTreeSink, Selector};
use selextract_extract::{Extractor, Page, decode_html};
use serde_json::json;

use crate::{extractor, url};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/real-pages"
);

fn corpus_pages() -> Option<Vec<(PathBuf, Vec<u8>)>> {
    let directory = Path::new(CORPUS);
    if !directory.is_dir() {
        println!("skipped: corpus directory {CORPUS} is absent");
        return None;
    }
    let mut pages: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(directory)
        .expect("readable corpus directory")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "html")
        })
        .map(|path| {
            let body = std::fs::read(&path).expect("readable page");
            (path, body)
        })
        .collect();
    pages.sort();
    assert!(!pages.is_empty(), "the corpus directory holds no page");
    Some(pages)
}

/// `<a>` elements outside template contents, counted on a fresh scraper parse with
/// scripting as given (without it, links inside `<noscript>` are elements too).
fn count_links(body: &[u8], scripting: bool) -> usize {
    let (text, _) = decode_html(body, None);
    let options = ParseOpts {
        tree_builder: TreeBuilderOpts {
            scripting_enabled: scripting,
            ..TreeBuilderOpts::default()
        },
        ..ParseOpts::default()
    };
    let html = driver::parse_document(HtmlTreeSink::new(Html::new_document()), options).one(&*text);
    let links = Selector::parse("a").expect("valid selector");
    html.select(&links)
        .filter(|link| {
            !link
                .ancestors()
                .any(|ancestor| ancestor.value().is_fragment())
        })
        .count()
}

#[test]
fn every_corpus_page_extracts_one_record_per_link_without_panicking() {
    let Some(pages) = corpus_pages() else { return };
    let extractor = extractor(json!({
        "item_selector": "a",
        "fields": [
            {"name": "text", "selector": "self::a", "selector_type": "xpath", "required": false},
            {"name": "url", "selector": "./@href", "selector_type": "xpath", "type": "link", "required": false},
            {"name": "image_alt", "selector": "//img/@alt", "selector_type": "xpath", "required": false},
            {"name": "spans", "selector": "span", "multiple": true, "required": false}
        ],
        "pagination": {"next_selector": "a[rel=next]"}
    }));
    let page_url = url("https://corpus.example/section/page.html");
    let mut total_links = 0;
    let mut noscript_links = 0;

    for ((path, body), rendered) in pages.iter().flat_map(|page| [(page, false), (page, true)]) {
        let extraction = extractor.extract(&Page {
            url: &page_url,
            body,
            content_type: None,
            rendered,
        });
        let expected = count_links(body, rendered);
        if !rendered {
            noscript_links += expected - count_links(body, true);
        }
        assert_eq!(
            extraction.diagnostics.items_matched,
            expected,
            "items in {} (rendered: {rendered})",
            path.display()
        );
        assert_eq!(
            extraction.records.len(),
            expected,
            "records in {} (rendered: {rendered})",
            path.display()
        );
        assert!(extraction.diagnostics.messages.len() <= selextract_extract::MAX_MESSAGES);
        total_links += expected;
    }
    assert!(
        total_links > 1000,
        "the corpus has real links ({total_links})"
    );
    println!("links only a client without JavaScript sees: {noscript_links}");
}

#[test]
fn find_next_agrees_with_extract_on_every_corpus_page() {
    let Some(pages) = corpus_pages() else { return };
    let extractors: Vec<Extractor> = [
        ("a[rel=next]", Some("a.next")),
        ("a", Some("form[action], .no-results")),
        ("a.next, link[rel=next]", None),
        // Combinators take the full-parse path; it must agree too.
        ("nav a, .pagination > a", Some("footer a")),
    ]
    .into_iter()
    .map(|(next, stop)| {
        extractor(json!({
            "fields": [{"name": "t", "selector": "title", "required": false}],
            "pagination": {"next_selector": next, "stop_selector": stop}
        }))
    })
    .collect();
    let page_url = url("https://corpus.example/section/page.html");
    let mut pages_with_next = 0;

    for ((path, body), rendered) in pages.iter().flat_map(|page| [(page, false), (page, true)]) {
        let page = Page {
            url: &page_url,
            body,
            content_type: None,
            rendered,
        };
        for (index, extractor) in extractors.iter().enumerate() {
            let full = extractor.extract(&page).next;
            assert_eq!(
                extractor.find_next(&page),
                full,
                "extractor {index} on {} (rendered: {rendered})",
                path.display()
            );
            pages_with_next += usize::from(full.url.is_some());
        }
    }
    assert!(
        pages_with_next > 2 * pages.len(),
        "the selectors find next links on real pages ({pages_with_next})"
    );
}
