//! Broken and unclosed HTML: extraction sees the tree a browser builds, and never fails.

use serde_json::json;

use crate::{extract, extractor, records};

#[test]
fn unclosed_list_items_and_paragraphs_are_separate_elements() {
    let extractor = extractor(json!({"fields": [
        {"name": "items", "selector": "li.x", "multiple": true},
        {"name": "paragraphs", "selector": "p.p", "multiple": true}
    ]}));

    let extraction = extract(
        &extractor,
        "https://shop.example/",
        "<ul><li class=x>one<li class=x>two<li class=x>three</ul><p class=p>first<p class=p>second",
    );

    assert_eq!(
        records(&extraction),
        json!([{"items": ["one", "two", "three"], "paragraphs": ["first", "second"]}])
    );
}

#[test]
fn misnested_formatting_and_foster_parented_content_follow_the_html_parsing_rules() {
    let extractor = extractor(json!({"fields": [
        {"name": "italics", "selector": "body > div.item i", "multiple": true},
        {"name": "bold", "selector": "div.item b"},
        {"name": "cells", "selector": "table td", "multiple": true}
    ]}));

    // The div is not allowed inside a table row: browsers move it before the table. The
    // misnested </b> splits the <i> in two (the adoption agency algorithm).
    let extraction = extract(
        &extractor,
        "https://shop.example/",
        "<table><tr><td>a</td><div class=item><b>Bold <i>both</b> italic</i></div><td>b</td></tr></table>",
    );

    assert_eq!(
        records(&extraction),
        json!([{"italics": ["both", "italic"], "bold": "Bold both", "cells": ["a", "b"]}])
    );
}

#[test]
fn an_unclosed_link_at_the_end_of_the_document_is_still_a_link() {
    let extractor = extractor(json!({"item_selector": "a", "fields": [
        {"name": "text", "selector": "self::a", "selector_type": "xpath"},
        {"name": "url", "selector": "./@href", "selector_type": "xpath", "type": "link"}
    ]}));

    let extraction = extract(
        &extractor,
        "https://shop.example/a/",
        "<div><p>intro<a href=next.html>unclosed link",
    );

    assert_eq!(
        records(&extraction),
        json!([{"text": "unclosed link", "url": "https://shop.example/a/next.html"}])
    );
}

#[test]
fn garbage_bytes_and_empty_bodies_extract_nothing_without_failing() {
    let extractor =
        extractor(json!({"item_selector": "a", "fields": [{"name": "t", "selector": "b"}]}));
    let page_url = crate::url("https://shop.example/");
    let bodies: [&[u8]; 5] = [
        b"",
        b"\x00\xff\xfe\x80<<<>>>",
        b"<a",
        b"</a></a></html><a>",
        b"<!-- unterminated",
    ];

    for body in bodies {
        let extraction = extractor.extract(&selextract_extract::Page {
            url: &page_url,
            body,
            content_type: Some("text/html"),
            rendered: false,
        });
        assert!(extraction.records.is_empty(), "{body:?}");
    }
}

#[test]
fn deeply_nested_markup_extracts_without_overflowing_the_stack() {
    // As deep as blocks may nest within the default work budget (deeper ones make the
    // parser quadratic and are refused, see work.rs).
    let depth = 4_000;
    let page = format!(
        "<html><body>{}deep text{}</body></html>",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    let extractor = extractor(json!({"fields": [
        {"name": "css_text", "selector": "body"},
        {"name": "xpath_text", "selector": "string(//body)", "selector_type": "xpath"},
        {"name": "divs", "selector": "count(//div)", "selector_type": "xpath"},
        {"name": "html_length", "selector": "body", "type": "html", "transform": [{"regex": "deep text"}]}
    ]}));

    // A thread with a small stack makes any recursion over the depth fail loudly.
    let extraction = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || extract(&extractor, "https://shop.example/", &page))
        .unwrap()
        .join()
        .unwrap();

    assert_eq!(
        records(&extraction),
        json!([{"css_text": "deep text", "xpath_text": "deep text", "divs": depth, "html_length": "deep text"}])
    );
}
