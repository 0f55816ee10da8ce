//! What the fuzz targets share: the stack they run on, a fixed page, fixed specs, and the
//! checks every extraction must pass.

use std::thread;

use selextract_extract::{Extraction, Extractor, Page};
use selextract_spec::{Limits, TaskSpec, ValidatedSpec, validate};
use serde_json::{Value, json};
use url::Url;

/// Stack of the threads the fuzzed code runs on: 2 MiB, the stack of tokio's worker and
/// blocking threads, where `selextract serve` parses specs and extracts pages. libFuzzer's
/// own main thread has 8 MiB, on which a recursion that kills the server would pass.
pub const STACK_BYTES: usize = 2 * 1024 * 1024;

/// Runs `work` on a fresh thread with a [`STACK_BYTES`] stack and waits for it. A stack
/// overflow there aborts the process (a crash for libFuzzer); a panic is reported by
/// libfuzzer-sys's panic hook before it could reach the join.
pub fn on_server_stack<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    thread::scope(|scope| {
        let worker = thread::Builder::new()
            .name("fuzz-worker".to_owned())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, work);
        match worker {
            Ok(handle) => match handle.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(error) => panic!("cannot start a fuzz worker thread: {error}"),
        }
    })
}

/// Validates a spec written as JSON (`start_urls` added when absent) with the default
/// limits; the error says why it is not a valid spec.
pub fn validate_json(mut json: Value) -> Result<ValidatedSpec, String> {
    if let Some(object) = json.as_object_mut() {
        object
            .entry("start_urls")
            .or_insert_with(|| json!(["https://shop.example/list"]));
    }
    let spec: TaskSpec = serde_json::from_value(json).map_err(|error| error.to_string())?;
    validate(spec, &Limits::default()).map_err(|errors| format!("{errors:?}"))
}

/// The URL every fuzzed page is served from: relative links resolve against it.
pub fn page_url() -> Url {
    // A constant that parses, so this cannot fail.
    Url::parse("https://shop.example/list/page?p=2").unwrap_or_else(|_| unreachable!())
}

/// Extracts `body` with and without scripting, and checks that the cheap next-page pass
/// agrees with the full extraction both times.
pub fn extract_and_check(extractor: &Extractor, body: &[u8], content_type: Option<&str>) {
    let url = page_url();
    for rendered in [false, true] {
        let page = Page {
            url: &url,
            body,
            content_type,
            rendered,
        };
        let extraction = extractor.extract(&page);
        let next = extractor.find_next(&page);
        assert_eq!(
            next, extraction.next,
            "find_next disagrees with extract(..).next (rendered: {rendered})"
        );
        check_size_limits(&extraction);
    }
}

/// A page over the size limits yields no records; otherwise every value, record and the
/// page's records are within them (the fixed specs use the default limits).
fn check_size_limits(extraction: &Extraction) {
    if let Some(reason) = &extraction.too_large {
        assert!(
            extraction.records.is_empty(),
            "records too large ({reason}), yet the page yields records"
        );
        return;
    }
    let limits = Limits::default();
    let mut page_bytes = 0;
    for record in &extraction.records {
        for value in record.values() {
            let strings: Vec<&str> = match value {
                Value::String(text) => vec![text],
                Value::Array(values) => values.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for text in strings {
                assert!(
                    text.len() <= limits.max_value_bytes,
                    "a value of {} bytes is over max_value_bytes",
                    text.len()
                );
            }
        }
        let bytes = serde_json::to_vec(record).map_or(0, |json| json.len());
        assert!(
            bytes <= limits.max_record_bytes,
            "a record of {bytes} bytes is over max_record_bytes"
        );
        page_bytes += bytes;
    }
    assert!(
        page_bytes <= limits.max_page_records_bytes,
        "records of {page_bytes} bytes are over max_page_records_bytes"
    );
}

/// A small page with something for every kind of selector and field to find.
pub const FIXED_PAGE: &str = r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title> Catalogue — page 2 </title>
<base href="/shop/"><style>li { color: red }</style>
<script type="application/ld+json">{"@type": "Product", "name": "A"}</script></head>
<body><nav><a href="/">Home</a> <a href="#top">Top</a></nav>
<ul id="items">
  <li class="item" data-id="1"><h2>Alpha <b>one</b></h2><span class="price">$10.50</span>
    <a href="item/1">Alpha</a><img data-src="/img/1.jpg" src="data:image/gif;base64,R0lGOD">
    <noscript><img src="/img/1-full.jpg"></noscript><time datetime="2024-02-29">29/02/2024</time></li>
  <li class="item sale" data-id="2"><h2>Beta</h2><span class="price">1,299.00 €</span>
    <a href="https://other.example/b?x=1#frag">Beta</a><img srcset="/img/2.jpg 1x, /img/2@2x.jpg 2x">
    <p>true</p></li>
  <li class="item" data-id="3"><h2></h2><template><a href="/hidden">hidden</a></template>
    <svg><path d="M0 0"/></svg><table><tr><td>1</td><td>2</td></tr></table></li>
</ul>
<p class="pages"><a class="prev" href="?p=1">Prev</a>
<a rel="next" class="next" href="?p=3#list">Next</a>
<a class="next" href="javascript:void(0)">Also next</a></p>
<p id="end" class="disabled">The end</p></body></html>"##;

/// Specs that together use every selector kind, field type, transform and pagination rule,
/// for the `extract` target to pick from. Each one passes validation with the default
/// limits (checked at start-up by [`fixed_specs`]).
fn fixed_spec_json() -> Vec<Value> {
    vec![
        // CSS items and fields; the next link is a compound CSS selector (streaming path).
        json!({
            "item_selector": "li.item",
            "fields": [
                {"name": "title", "selector": "h2", "transform": ["trim", "lowercase"]},
                {"name": "html", "selector": "h2", "type": "html", "required": false},
                {"name": "price", "selector": ".price", "transform": ["number"], "required": false},
                {"name": "link", "selector": "a", "type": "link", "required": false},
                {"name": "image", "selector": "img", "type": "image", "required": false},
                {"name": "id", "selector": "h2", "type": "attribute", "attribute": "data-id",
                 "required": false, "default": "none"}
            ],
            "pagination": {"next_selector": "a[rel=next]", "stop_selector": ".last-page"}
        }),
        // XPath items, attribute nodes and computed values; XPath pagination.
        json!({
            "item_selector": "//li[contains(@class, 'item')]",
            "item_selector_type": "xpath",
            "fields": [
                {"name": "title", "selector": "string(.//h2)", "selector_type": "xpath"},
                {"name": "href", "selector": ".//a/@href", "selector_type": "xpath",
                 "type": "link", "required": false},
                {"name": "count", "selector": "count(.//*)", "selector_type": "xpath"},
                {"name": "has_price", "selector": "boolean(.//span)", "selector_type": "xpath"},
                {"name": "texts", "selector": ".//text()", "selector_type": "xpath",
                 "multiple": true, "required": false}
            ],
            "pagination": {
                "next_selector": "//a[contains(@class, 'next')]", "next_selector_type": "xpath",
                "stop_selector": "//p[@id='end']", "max_pages": 5
            }
        }),
        // One record per page: multiple values, regex, replace, date and number transforms;
        // a selector list for the next link.
        json!({
            "fields": [
                {"name": "title", "selector": "title",
                 "transform": [{"regex": "page (\\d+)"}, "integer"], "required": false},
                {"name": "links", "selector": "a[href]", "type": "link", "multiple": true},
                {"name": "images", "selector": "img, source", "type": "image", "multiple": true,
                 "required": false},
                {"name": "dates", "selector": "time", "multiple": true, "required": false,
                 "transform": [{"date": "%d/%m/%Y"}]},
                {"name": "flag", "selector": "p", "transform": ["trim", "boolean"],
                 "required": false},
                {"name": "shout", "selector": "h1, h2", "multiple": true, "required": false,
                 "transform": [{"replace": ["a", "A"]}, "uppercase"]}
            ],
            "pagination": {"next_selector": "a.next, a[rel=next]", "stop_selector": ".disabled"}
        }),
        // Values that grow: every "a" doubles twelve times (the value limit must hold).
        json!({
            "fields": [
                {"name": "body", "selector": "body", "required": false,
                 "transform": [{"replace": ["a", "aa"]}, {"replace": ["a", "aa"]},
                               {"replace": ["a", "aa"]}, {"replace": ["a", "aa"]},
                               {"replace": ["a", "aa"]}, {"replace": ["a", "aa"]},
                               {"replace": ["a", "aa"]}, {"replace": ["a", "aa"]},
                               {"replace": ["a", "aa"]}, {"replace": ["a", "aa"]},
                               {"replace": ["a", "aa"]}, {"replace": ["a", "aa"]}]},
                {"name": "all", "selector": "*", "type": "html", "multiple": true,
                 "required": false}
            ]
        }),
        // CSS items with XPath fields, pseudo-classes, a next link the streaming pass cannot
        // take, and a CSS stop selector.
        json!({
            "item_selector": "ul > li:not(.sale), div:has(> a)",
            "fields": [
                {"name": "name", "selector": "//h2", "selector_type": "xpath"},
                {"name": "first", "selector": "(.//a)[1]/@href", "selector_type": "xpath",
                 "type": "attribute", "required": false},
                {"name": "cells", "selector": "td:nth-child(2n+1)", "multiple": true,
                 "required": false},
                {"name": "noscript", "selector": "noscript img", "type": "image",
                 "required": false}
            ],
            "pagination": {
                "next_selector": "p.pages > a:last-of-type", "stop_selector": "#end:empty"
            }
        }),
        // Deep descendant chains and attribute selectors, no pagination.
        json!({
            "item_selector": "body div div div, [data-id]",
            "fields": [
                {"name": "text", "selector": "*", "multiple": true, "required": false},
                {"name": "lang", "selector": "[lang|=en], [href^='http'], [src$='.jpg']",
                 "type": "attribute", "attribute": "href", "required": false}
            ]
        }),
    ]
}

/// The compiled fixed specs; panics when one of them no longer validates, so a change of
/// the rules shows up as a fuzz-target failure at once rather than as lost coverage.
pub fn fixed_specs() -> Vec<Extractor> {
    fixed_spec_json()
        .into_iter()
        .enumerate()
        .map(|(index, json)| match validate_json(json) {
            Ok(spec) => Extractor::from_validated(&spec),
            Err(why) => panic!("fixed spec {index} does not validate: {why}"),
        })
        .collect()
}

/// Content types the `extract` target picks from: the charset parameter wins over
/// `<meta>`, so decoding takes each path.
pub const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("text/html"),
    Some("text/html; charset=windows-1251"),
    Some("text/html; charset=UTF-16LE"),
];
