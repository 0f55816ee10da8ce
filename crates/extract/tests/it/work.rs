//! The work budget of a page (`limits.max_extraction_steps`): nested items whose fields
//! walk every descendant of every item, and blocks nested deep enough to make the parser
//! quadratic, fail the page as too costly instead of pinning a worker for minutes; ordinary
//! pages never come near it.

use selextract_extract::{Extraction, Extractor, NextPage, Page};
use selextract_spec::{Limits, validate};
use serde_json::json;

use crate::{extract, extractor, records, spec, url};

fn with_budget(json: serde_json::Value, max_extraction_steps: u64) -> Extractor {
    let limits = Limits {
        max_extraction_steps,
        ..Limits::default()
    };
    Extractor::from_validated(&validate(spec(json), &limits).unwrap())
}

fn assert_too_costly(extraction: &Extraction, budget: u64) {
    let reason = extraction
        .too_costly
        .as_deref()
        .unwrap_or_else(|| panic!("not refused: {:?}", extraction.diagnostics));
    assert!(
        reason.contains(&format!("limits.max_extraction_steps ({budget})")),
        "{reason}"
    );
    assert!(extraction.records.is_empty());
    assert_eq!(extraction.too_large, None);
}

#[test]
fn nested_items_whose_fields_read_every_descendant_fail_as_too_costly() {
    // The fuzzer's page: 5,000 nested elements, every one an item, each reading the text of
    // all its descendants. Spans do not make the parser quadratic, so it is the selections
    // and text walks (items × matches × subtree) that exhaust the budget.
    let page = format!("<html><body>{}x</body></html>", "<span>".repeat(5_000));
    let extractor = extractor(json!({
        "item_selector": "body span span span",
        "fields": [{"name": "all", "selector": "*", "multiple": true}],
        "pagination": {"next_selector": "a.next"}
    }));

    let extraction = extract(&extractor, "https://deep.example/", &page);

    assert_too_costly(&extraction, 10_000_000);
    assert_eq!(extraction.next, NextPage::default());
}

#[test]
fn an_inner_html_or_xpath_field_draws_from_the_same_budget() {
    let page = format!("<html><body>{}</body></html>", "<p>x</p>".repeat(2_000));
    for field in [
        json!({"name": "html", "selector": "body", "type": "html"}),
        json!({"name": "count", "selector": "count(//p)", "selector_type": "xpath"}),
        json!({"name": "text", "selector": "body"}),
    ] {
        let spec = json!({"fields": [field]});
        // The page has some 4,000 nodes: 1,000 steps are not enough for any of these, and
        // 100,000 are plenty.
        let refused = with_budget(spec.clone(), 1_000);
        assert_too_costly(&extract(&refused, "https://shop.example/", &page), 1_000);
        let allowed = with_budget(spec, 100_000);
        let extraction = extract(&allowed, "https://shop.example/", &page);
        assert_eq!(extraction.too_costly, None, "{field}");
        assert_eq!(extraction.records.len(), 1);
    }
}

#[test]
fn a_budget_of_one_step_refuses_even_an_empty_page_before_parsing_it() {
    let extractor = with_budget(json!({"fields": [{"name": "t", "selector": "title"}]}), 1);
    let extraction = extract(
        &extractor,
        "https://shop.example/",
        "<div><div></div></div>",
    );
    assert_too_costly(&extraction, 1);
    assert!(
        extraction
            .too_costly
            .unwrap()
            .starts_with("parsing the page"),
        "refused by the parse-cost estimate"
    );
}

#[test]
fn tags_hidden_in_comments_attributes_and_raw_text_neither_count_nor_hide_real_ones() {
    let divs = "<div>".repeat(5_000);
    let extractor = extractor(json!({"fields": [{"name": "t", "selector": "title"}]}));
    // Markup the parser reads as text costs nothing.
    for hidden in [
        format!("<!-- {divs} -->"),
        format!("<script>{divs}</script>"),
        format!("<textarea>{divs}</textarea>"),
        format!("<p title='{divs}'>"),
    ] {
        let page = format!("<title>T</title>{hidden}");
        let extraction = extract(&extractor, "https://shop.example/", &page);
        assert_eq!(extraction.too_costly, None, "{}", &hidden[..20]);
        assert_eq!(records(&extraction), json!([{"t": "T"}]));
    }
    // Real divs after what only looks like the start of a comment, a raw-text element or
    // a quoted value are counted.
    for decoy in [
        "<!-- --!>",
        "<!-->",
        "<p title='>' x='<script>'>",
        "<svg><style></svg>",
        "<svg><style><div>",
        "<a title=\"<textarea>\">",
    ] {
        let page = format!("<title>T</title>{decoy}{divs}");
        let extraction = extract(&extractor, "https://shop.example/", &page);
        assert!(extraction.too_costly.is_some(), "{decoy}");
    }
}

#[test]
fn the_corpus_and_catalogue_pages_use_a_small_part_of_the_default_budget() {
    // A hundredth of the default budget is still enough for the catalogue page of the
    // benchmark's size with item scoping (the corpus test checks every real page with it).
    let items: String = (0..200)
        .map(|n| {
            format!(
                "<div class=product><h2><a href=/p/{n}>Item {n}</a></h2><span class=price>{n}.99</span>\
                 <p class=desc>Some <b>text</b> here</p><img src=/i/{n}.png></div>"
            )
        })
        .collect();
    let page = format!("<html><body><main>{items}</main></body></html>");
    let extractor = with_budget(
        json!({
            "item_selector": "div.product",
            "fields": [
                {"name": "title", "selector": "h2"},
                {"name": "link", "selector": "a", "type": "link"},
                {"name": "price", "selector": "//span[@class='price']", "selector_type": "xpath"},
                {"name": "desc", "selector": "p.desc", "type": "html"},
                {"name": "image", "selector": "img", "type": "image"}
            ]
        }),
        Limits::default().max_extraction_steps / 100,
    );
    let extraction = extractor.extract(&Page {
        url: &url("https://shop.example/"),
        body: page.as_bytes(),
        content_type: None,
        rendered: false,
    });
    assert_eq!(extraction.too_costly, None);
    assert_eq!(extraction.records.len(), 200);
}
