//! XPath fields and items on the same tree as CSS.

use serde_json::json;

use crate::{extract, extractor, records};

const PRODUCTS: &str = r#"<html><head><title> Catalogue </title></head><body>
<div class="product"><h2>First <small>(new)</small></h2><span class="stars" data-rating="4.5">★★★★</span>
  <a href="/p/1">more</a></div>
<div class="product"><h2>Second</h2><span class="stars" data-rating="3">★★★</span><a href="p/2">more</a></div>
<div class="product"><h2>Third</h2></div>
<aside><span class="stars" data-rating="1">★</span></aside>
</body></html>"#;

#[test]
fn an_xpath_attribute_node_in_a_css_item_is_relative_to_the_item() {
    let extractor = extractor(json!({
        "item_selector": "div.product",
        "fields": [
            {"name": "rating", "selector": "//span[@class='stars']/@data-rating", "selector_type": "xpath",
             "type": "attribute", "required": false}
        ]
    }));

    let extraction = extract(&extractor, "https://shop.example/", PRODUCTS);

    assert_eq!(
        records(&extraction),
        json!([{"rating": "4.5"}, {"rating": "3"}, {"rating": null}])
    );
}

#[test]
fn xpath_text_nodes_give_only_the_direct_text() {
    let extractor = extractor(json!({
        "item_selector": "div.product",
        "fields": [
            {"name": "own_text", "selector": "//h2/text()", "selector_type": "xpath"},
            {"name": "all_text", "selector": "//h2", "selector_type": "xpath"}
        ]
    }));

    let extraction = extract(&extractor, "https://shop.example/", PRODUCTS);

    assert_eq!(
        records(&extraction),
        json!([
            {"own_text": "First", "all_text": "First (new)"},
            {"own_text": "Second", "all_text": "Second"},
            {"own_text": "Third", "all_text": "Third"}
        ])
    );
}

#[test]
fn an_xpath_item_selector_mixes_with_css_fields() {
    let extractor = extractor(json!({
        "item_selector": "//div[@class='product'][a]",
        "fields": [
            {"name": "name", "selector": "h2"},
            {"name": "url", "selector": "a", "type": "link"},
            {"name": "stars", "selector": "span.stars", "type": "attribute", "attribute": "data-rating"}
        ]
    }));

    let extraction = extract(&extractor, "https://shop.example/list/", PRODUCTS);

    assert_eq!(
        records(&extraction),
        json!([
            {"name": "First (new)", "url": "https://shop.example/p/1", "stars": "4.5"},
            {"name": "Second", "url": "https://shop.example/list/p/2", "stars": "3"}
        ])
    );
    assert_eq!(extraction.diagnostics.items_matched, 2);
}

#[test]
fn without_items_xpath_is_evaluated_on_the_whole_document() {
    let extractor = extractor(json!({
        "fields": [
            {"name": "title", "selector": "//title/text()", "selector_type": "xpath"},
            {"name": "ratings", "selector": "//span/@data-rating", "selector_type": "xpath", "multiple": true},
            {"name": "links", "selector": "//a/@href", "selector_type": "xpath", "type": "link", "multiple": true}
        ]
    }));

    let extraction = extract(&extractor, "https://shop.example/list/", PRODUCTS);

    assert_eq!(
        records(&extraction),
        json!([{
            "title": "Catalogue",
            "ratings": ["4.5", "3", "1"],
            "links": ["https://shop.example/p/1", "https://shop.example/list/p/2"]
        }])
    );
}

#[test]
fn xpath_numbers_and_booleans_stay_json_numbers_and_booleans() {
    let extractor = extractor(json!({
        "item_selector": "div.product",
        "fields": [
            {"name": "stars", "selector": "string-length(.//span[@class='stars'])", "selector_type": "xpath"},
            {"name": "has_link", "selector": "boolean(.//a)", "selector_type": "xpath"},
            {"name": "rating_times_two", "selector": "number(.//span/@data-rating) * 2", "selector_type": "xpath",
             "required": false}
        ]
    }));

    let extraction = extract(&extractor, "https://shop.example/", PRODUCTS);

    assert_eq!(
        records(&extraction),
        json!([
            {"stars": 4, "has_link": true, "rating_times_two": 9},
            {"stars": 3, "has_link": true, "rating_times_two": 6},
            {"stars": 0, "has_link": false, "rating_times_two": null}
        ])
    );
}

#[test]
fn an_xpath_selecting_elements_reads_them_with_the_field_type() {
    let extractor = extractor(json!({
        "item_selector": "div.product",
        "fields": [
            {"name": "url", "selector": ".//a", "selector_type": "xpath", "type": "link", "required": false},
            {"name": "heading_html", "selector": "h2", "selector_type": "xpath", "type": "html"}
        ]
    }));

    let extraction = extract(&extractor, "https://shop.example/", PRODUCTS);

    assert_eq!(
        records(&extraction),
        json!([
            {"url": "https://shop.example/p/1", "heading_html": "First <small>(new)</small>"},
            {"url": "https://shop.example/p/2", "heading_html": "Second"},
            {"url": null, "heading_html": "Third"}
        ])
    );
}

#[test]
fn an_xpath_evaluation_error_makes_the_field_missing_and_is_reported() {
    let extractor = extractor(json!({
        "fields": [
            {"name": "broken", "selector": "no-such-function(//a)", "selector_type": "xpath", "required": false},
            {"name": "title", "selector": "title"}
        ]
    }));

    let extraction = extract(&extractor, "https://shop.example/", PRODUCTS);

    assert_eq!(
        records(&extraction),
        json!([{"broken": null, "title": "Catalogue"}])
    );
    assert!(
        extraction
            .diagnostics
            .messages
            .iter()
            .any(|m| m.starts_with("field \"broken\": XPath evaluation failed")),
        "{:?}",
        extraction.diagnostics.messages
    );
}

#[test]
fn css_and_xpath_see_the_same_tree_for_repaired_markup() {
    let extractor = extractor(json!({
        "fields": [
            {"name": "css", "selector": "table + div", "multiple": true, "required": false},
            {"name": "xpath", "selector": "//table/preceding-sibling::div", "selector_type": "xpath", "multiple": true}
        ]
    }));

    // The div inside the table is foster-parented before it: CSS sees nothing after the
    // table, XPath finds it before the table, as in a browser.
    let extraction = extract(
        &extractor,
        "https://shop.example/",
        "<table><tr><td>cell</td><div>moved</div></tr></table><p>after</p>",
    );

    assert_eq!(
        records(&extraction),
        json!([{"css": [], "xpath": ["moved"]}])
    );
}

#[test]
fn the_root_path_inside_an_item_means_the_item_itself() {
    let extractor = extractor(json!({
        "item_selector": "li",
        "fields": [{"name": "item", "selector": "/", "selector_type": "xpath"}]
    }));

    let extraction = extract(
        &extractor,
        "https://shop.example/",
        "<p>intro</p><ul><li>one</li><li>two</li></ul>",
    );

    assert_eq!(
        records(&extraction),
        json!([{"item": "one"}, {"item": "two"}])
    );
}

#[test]
fn an_xpath_with_a_namespace_prefix_does_not_compile_and_names_the_prefixed_name() {
    // sxd-xpath would panic evaluating it ("No namespace for prefix").
    let error = selextract_extract::Extractor::new(&crate::spec(json!({
        "fields": [{"name": "n", "selector": "h2:n", "selector_type": "xpath"}]
    })))
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("namespace prefixes are not supported (h2:n)"),
        "{error}"
    );
}

#[test]
fn a_leading_slash_that_starts_no_path_keeps_its_meaning_inside_items() {
    // `/+title/text()` is the root plus a number: made relative (`./+title…`) it would not
    // parse, and validation accepted it as written. Found by the fuzzer.
    let extractor = selextract_extract::Extractor::new(&crate::spec(json!({
        "item_selector": "li",
        "fields": [{"name": "n", "selector": "/+title/text()", "selector_type": "xpath", "required": false}]
    })))
    .unwrap();
    let extraction = extract(&extractor, "https://shop.example/", "<ul><li>1</li></ul>");
    assert_eq!(extraction.records.len(), 1);
}
