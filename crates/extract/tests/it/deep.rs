//! Deep pages: 100,000 nested elements of the kinds the tree builder treats specially
//! (block elements as deep as the work budget lets them be parsed, see
//! [`ALLOWED_BLOCK_DEPTH`]), extracted with every field type and both next-link paths on a
//! thread with the 2 MiB stack of tokio's blocking threads. A recursion anywhere would
//! overflow it and abort. Deeper blocks are refused before parsing, as too costly.

use selextract_extract::{Extractor, NextPage, Page};
use selextract_spec::{Limits, validate};
use serde_json::{Value, json};

use crate::{spec, url};

const SMALL_STACK: usize = 2 * 1024 * 1024;
const DEPTH: usize = 100_000;

fn on_small_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(work)
        .unwrap()
        .join()
        .unwrap()
}

/// Nesting of block elements such as `<div>`: html5ever checks "a `<p>` in button scope"
/// for each one, a scan of its whole stack of open elements, so their parse is quadratic.
/// The parse-cost estimate is about depth² / 2 steps; 4,000 deep (8 million) is within the
/// default `limits.max_extraction_steps` (10 million), and still eight times the tree's cap.
const ALLOWED_BLOCK_DEPTH: usize = 4_000;

/// A deeply nested page with a next link, a title and an image at the bottom.
fn nest(open: &str, close: &str, depth: usize) -> String {
    let bottom = r#"<a class="next" href="/2"><span class="t">deep</span></a><img src="/i.png">"#;
    format!(
        "<html><body>{}{bottom}{}</body></html>",
        open.repeat(depth),
        close.repeat(depth)
    )
}

fn deep_extractor(next_selector: &str) -> Extractor {
    // Room for the html of the whole body, so that it is serialised rather than refused.
    let limits = Limits {
        max_value_bytes: 64 * 1024 * 1024,
        max_record_bytes: 64 * 1024 * 1024,
        max_page_records_bytes: 64 * 1024 * 1024,
        ..Limits::default()
    };
    let spec = spec(json!({
        "fields": [
            {"name": "css_text", "selector": "span.t", "required": false},
            {"name": "xpath_text", "selector": "//span[@class='t']", "selector_type": "xpath", "required": false},
            {"name": "body_text_length", "selector": "string-length(string(//body))", "selector_type": "xpath", "required": false},
            {"name": "html", "selector": "body", "type": "html", "required": false},
            {"name": "all_text", "selector": "body", "required": false},
            {"name": "link", "selector": "a.next", "type": "link", "required": false},
            {"name": "image", "selector": "img", "type": "image", "required": false},
            {"name": "nested", "selector": "div div div b i, td td, a a", "type": "attribute", "attribute": "class", "multiple": true, "required": false}
        ],
        "pagination": {"next_selector": next_selector, "stop_selector": ".stop"}
    }));
    Extractor::from_validated(&validate(spec, &limits).unwrap())
}

/// Extracts `html` (with `rendered` as given) on a 2 MiB stack with every field type and
/// both next-link paths, and checks what was found at the bottom.
fn extracts_at_the_bottom(name: &'static str, html: String, rendered: bool) {
    let (refused, record, next, nexts) = on_small_stack(move || {
        let streaming = deep_extractor("a.next");
        let full_parse = deep_extractor("body a.next");
        let page_url = url("https://deep.example/");
        let page = Page {
            url: &page_url,
            body: html.as_bytes(),
            content_type: None,
            rendered,
        };
        let extraction = full_parse.extract(&page);
        let record = extraction.records.first().cloned().map(Value::Object);
        let nexts = [streaming.find_next(&page), full_parse.find_next(&page)];
        (
            (extraction.too_large, extraction.too_costly),
            record,
            extraction.next,
            nexts,
        )
    });

    let context = format!("{name} (rendered: {rendered})");
    assert_eq!(refused, (None, None), "{context}");
    let record = record.unwrap_or_else(|| panic!("{context}: no record"));
    assert_eq!(record["link"], json!("https://deep.example/2"), "{context}");
    assert_eq!(
        record["image"],
        json!("https://deep.example/i.png"),
        "{context}"
    );
    assert_eq!(record["css_text"], json!("deep"), "{context}");
    assert_eq!(record["xpath_text"], json!("deep"), "{context}");
    assert!(
        record["html"].as_str().unwrap().contains("deep</span>"),
        "{context}"
    );
    assert!(
        record["all_text"].as_str().unwrap().ends_with("deep"),
        "{context}"
    );
    assert_eq!(next.url.as_ref().unwrap().path(), "/2", "{context}");
    for other in nexts {
        assert_eq!(other, next, "{context}");
    }
}

#[test]
fn divs_nested_as_deep_as_the_budget_allows_extract_on_a_2_mib_stack() {
    extracts_at_the_bottom("divs", nest("<div>", "</div>", ALLOWED_BLOCK_DEPTH), false);
    extracts_at_the_bottom(
        "unclosed divs",
        nest("<div class=x>", "", ALLOWED_BLOCK_DEPTH),
        false,
    );
}

#[test]
fn spans_nested_100000_deep_extract_with_and_without_scripting() {
    // Scripting only changes how `<noscript>` is read; one page is enough for it.
    extracts_at_the_bottom("spans", nest("<span>", "</span>", DEPTH), false);
    extracts_at_the_bottom("spans", nest("<span>", "</span>", DEPTH), true);
}

#[test]
fn links_nested_100000_deep_extract() {
    extracts_at_the_bottom("links in links", nest("<a href=/a>", "</a>", DEPTH), false);
}

#[test]
fn tables_nested_100000_elements_deep_extract() {
    // Four elements a level (table, tbody, tr, td): 100,000 elements deep and more.
    extracts_at_the_bottom(
        "tables",
        nest("<table><tr><td>", "</td></tr></table>", DEPTH / 4),
        false,
    );
}

#[test]
fn misnested_and_unclosed_formatting_100000_deep_extracts() {
    extracts_at_the_bottom(
        "misnested b and i",
        nest("<b><i>", "</b></i>", DEPTH),
        false,
    );
    extracts_at_the_bottom("unclosed formatting", nest("<b><i><u>", "", DEPTH), false);
}

#[test]
fn templates_nested_100000_deep_extract() {
    let bottom = r#"<a class="next" href="/2"><span class="t">deep</span></a><img src="/i.png">"#;
    let html = format!(
        "<html><body>{}{}{bottom}</body></html>",
        "<template><div>".repeat(DEPTH),
        "</div></template>".repeat(DEPTH)
    );
    extracts_at_the_bottom("templates", html, false);
}

#[test]
fn pages_of_100000_and_2000000_nested_divs_are_refused_as_too_costly_without_a_parse() {
    let results = on_small_stack(|| {
        let streaming = deep_extractor("a.next");
        let full_parse = deep_extractor("body a.next");
        let page_url = url("https://deep.example/");
        let mut results = Vec::new();
        // 2,000,000 divs are 10 MB: hours of html5ever, a few milliseconds of estimate.
        for depth in [DEPTH, 2_000_000] {
            let html = format!(
                "<html><body>{}<a class=next href=/2>deep</a></body></html>",
                "<div>".repeat(depth)
            );
            let page = Page {
                url: &page_url,
                body: html.as_bytes(),
                content_type: None,
                rendered: false,
            };
            let extraction = full_parse.extract(&page);
            let nexts = [
                (streaming.extract(&page).next, streaming.find_next(&page)),
                (extraction.next.clone(), full_parse.find_next(&page)),
            ];
            results.push((depth, extraction, nexts));
        }
        results
    });

    for (depth, extraction, nexts) in results {
        let reason = extraction
            .too_costly
            .unwrap_or_else(|| panic!("{depth} nested divs were parsed"));
        assert!(
            reason.contains("limits.max_extraction_steps (10000000)"),
            "{reason}"
        );
        assert!(extraction.records.is_empty());
        // The streaming pass is linear and still finds the next page; a next selector that
        // needs the tree finds none, on both paths.
        let [(streamed, streamed_quick), (parsed, parsed_quick)] = nexts;
        assert_eq!(streamed, streamed_quick);
        assert_eq!(streamed.url.unwrap().path(), "/2");
        assert_eq!(parsed, parsed_quick);
        assert_eq!(parsed, NextPage::default());
    }
}

#[test]
fn the_longest_operator_chains_a_selector_can_hold_evaluate_on_a_2_mib_stack() {
    // Binary operators parse into a left-deep tree that sxd-xpath evaluates (and drops) by
    // recursion: 4,096 bytes (limits.max_selector_bytes) hold at most 2,047 of them.
    let sum = format!("1{}", "+1".repeat(2047));
    let union = format!("//b{}", "|//b".repeat(1023));
    let comparison = format!("1{}", "=1".repeat(2047));

    let records = on_small_stack(move || {
        let extractor = Extractor::new(&spec(json!({
            "fields": [
                {"name": "sum", "selector": sum, "selector_type": "xpath"},
                {"name": "union", "selector": union, "selector_type": "xpath", "multiple": true},
                {"name": "comparison", "selector": comparison, "selector_type": "xpath"}
            ]
        })))
        .unwrap();
        let page_url = url("https://deep.example/");
        extractor
            .extract(&Page {
                url: &page_url,
                body: b"<b>x</b><b>y</b>",
                content_type: None,
                rendered: false,
            })
            .records
    });

    assert_eq!(
        Value::Object(records[0].clone()),
        json!({"sum": 2048, "union": ["x", "y"], "comparison": true})
    );
}
