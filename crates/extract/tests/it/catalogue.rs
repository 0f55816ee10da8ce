//! A catalogue page with item scoping: every field type, `multiple`, `required`,
//! `default`, transforms and absolute URLs, checked record by record.

use serde_json::json;

use crate::{extract, extractor, records};

const CATALOGUE: &str = r#"<!DOCTYPE html>
<html><head><title>Shop</title><base href="/shop/"></head>
<body>
<div class="product" data-sku="A1">
  <h2><a href="items/1?ref=list#reviews">  Blue&nbsp;Widget  </a></h2>
  <span class="price">$1,299.50</span>
  <span class="stock">In stock</span>
  <span class="stars" data-rating="4.5"></span>
  <img src="img/1.jpg" alt="">
  <span class="tag">new</span><span class="tag">sale</span>
  <p class="desc">Great <b>widget</b><script>var x=1;</script></p>
  <time>05/03/2024</time>
</div>
<div class="product" data-sku="B2">
  <h2><a href="https://other.example/b2">Red
     Gadget</a></h2>
  <span class="price">1.299,00 €</span>
  <span class="stock">out of stock</span>
  <img data-src="//cdn.example/b2.png" src="data:image/gif;base64,R0lGODlh">
  <p class="desc">Plain</p>
  <time>not a date</time>
</div>
<div class="product" data-sku="C3">
  <span class="price">$5</span>
</div>
<div class="product" data-sku="D4">
  <h2><a href="mailto:sales@example.com">Ask us</a></h2>
  <span class="price">call</span>
  <img srcset="d4-small.jpg 1x, d4-large.jpg 2x">
  <span class="tag">   </span>
</div>
<footer><span class="stars" data-rating="1"></span></footer>
</body></html>"#;

fn catalogue_spec() -> serde_json::Value {
    json!({
        "item_selector": "div.product",
        "fields": [
            {"name": "title", "selector": "h2 a"},
            {"name": "url", "selector": "h2 a", "type": "link"},
            {"name": "sku", "selector": "./@data-sku", "selector_type": "xpath", "type": "attribute",
             "transform": ["lowercase"]},
            {"name": "price", "selector": ".price", "transform": ["number"]},
            {"name": "in_stock", "selector": ".stock", "required": false, "transform": ["boolean"]},
            {"name": "rating", "selector": "//span[@class='stars']/@data-rating", "selector_type": "xpath",
             "type": "attribute", "required": false, "transform": ["number"]},
            {"name": "image", "selector": "img", "type": "image", "required": false},
            {"name": "tags", "selector": ".tag", "multiple": true, "required": false},
            {"name": "description", "selector": ".desc", "type": "html", "required": false},
            {"name": "summary", "selector": ".desc", "required": false},
            {"name": "added", "selector": "time", "required": false, "default": "unknown",
             "transform": [{"date": "%d/%m/%Y"}]}
        ]
    })
}

#[test]
fn catalogue_items_become_the_expected_records() {
    let extraction = extract(
        &extractor(catalogue_spec()),
        "https://shop.example/catalog/page-1.html",
        CATALOGUE,
    );

    assert_eq!(
        records(&extraction),
        json!([
            {
                "title": "Blue Widget",
                "url": "https://shop.example/shop/items/1?ref=list#reviews",
                "sku": "a1",
                "price": 1299.5,
                "in_stock": true,
                "rating": 4.5,
                "image": "https://shop.example/shop/img/1.jpg",
                "tags": ["new", "sale"],
                "description": "Great <b>widget</b><script>var x=1;</script>",
                "summary": "Great widget",
                "added": "2024-03-05"
            },
            {
                "title": "Red Gadget",
                "url": "https://other.example/b2",
                "sku": "b2",
                "price": 1299.0,
                "in_stock": false,
                "rating": null,
                "image": "https://cdn.example/b2.png",
                "tags": [],
                "description": "Plain",
                "summary": "Plain",
                "added": null
            },
            {
                "title": "Ask us",
                "url": "mailto:sales@example.com",
                "sku": "d4",
                "price": null,
                "in_stock": null,
                "rating": null,
                "image": "https://shop.example/shop/d4-small.jpg",
                "tags": [],
                "description": null,
                "summary": null,
                "added": "unknown"
            }
        ])
    );
}

#[test]
fn catalogue_diagnostics_count_items_drops_missing_fields_and_failed_transforms() {
    let extraction = extract(
        &extractor(catalogue_spec()),
        "https://shop.example/catalog/page-1.html",
        CATALOGUE,
    );
    let diagnostics = &extraction.diagnostics;

    assert_eq!(diagnostics.encoding, "UTF-8");
    assert_eq!(diagnostics.items_matched, 4);
    assert_eq!(diagnostics.records_dropped_missing_required, 1);
    let missing: Vec<(&str, usize)> = diagnostics
        .fields_missing
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        missing,
        [
            ("added", 2),
            ("description", 2),
            ("image", 1),
            ("in_stock", 2),
            ("rating", 3),
            ("summary", 2),
            ("tags", 3),
            ("title", 1),
            ("url", 1)
        ]
    );
    let failures: Vec<(&str, usize)> = diagnostics
        .transform_failures
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(failures, [("added", 1), ("price", 1)]);
    assert!(
        diagnostics
            .messages
            .iter()
            .any(|m| m.contains("1 of 4 records dropped")),
        "{:?}",
        diagnostics.messages
    );
}

#[test]
fn record_keys_follow_the_order_of_the_spec_fields() {
    let extraction = extract(
        &extractor(catalogue_spec()),
        "https://shop.example/catalog/page-1.html",
        CATALOGUE,
    );

    let keys: Vec<&str> = extraction.records[0].keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "title",
            "url",
            "sku",
            "price",
            "in_stock",
            "rating",
            "image",
            "tags",
            "description",
            "summary",
            "added"
        ]
    );
}

#[test]
fn links_and_images_resolve_against_the_page_url_without_a_base_element() {
    let page = r#"<html><body>
        <div class="product"><a href="  ../items/9
        ">Nine</a><img src="/img/9.jpg"></div>
        <div class="product"><a href="?page=2#top">Query only</a><img src="https://cdn.example/x.png"></div>
        <div class="product"><a href="javascript:void(0)">Script</a><img src=""></div>
    </body></html>"#;
    let extractor = extractor(json!({
        "item_selector": ".product",
        "fields": [
            {"name": "url", "selector": "a", "type": "link"},
            {"name": "image", "selector": "img", "type": "image", "required": false}
        ]
    }));

    let extraction = extract(
        &extractor,
        "https://shop.example/catalog/list.html?page=1",
        page,
    );

    assert_eq!(
        records(&extraction),
        json!([
            {"url": "https://shop.example/items/9", "image": "https://shop.example/img/9.jpg"},
            {"url": "https://shop.example/catalog/list.html?page=2#top", "image": "https://cdn.example/x.png"},
            {"url": "javascript:void(0)", "image": null}
        ])
    );
}

#[test]
fn a_page_without_item_selector_is_one_record_evaluated_on_the_whole_document() {
    let extractor = extractor(json!({
        "fields": [
            {"name": "heading", "selector": "h1"},
            {"name": "lang", "selector": "html", "type": "attribute", "attribute": "lang"},
            {"name": "paragraphs", "selector": "p", "multiple": true}
        ]
    }));

    let extraction = extract(
        &extractor,
        "https://shop.example/",
        "<html lang=en><h1>Hi</h1><p>a</p><p>b</p>",
    );

    assert_eq!(
        records(&extraction),
        json!([{"heading": "Hi", "lang": "en", "paragraphs": ["a", "b"]}])
    );
    assert_eq!(extraction.diagnostics.items_matched, 1);
}

#[test]
fn field_selectors_inside_an_item_match_descendants_only() {
    let extractor = extractor(json!({
        "item_selector": "div.card",
        "fields": [{"name": "inner", "selector": "div.card", "required": false}]
    }));

    let extraction = extract(
        &extractor,
        "https://shop.example/",
        r#"<div class="card">outer<div class="card">inner</div></div>"#,
    );

    assert_eq!(
        records(&extraction),
        json!([{"inner": "inner"}, {"inner": null}])
    );
}

#[test]
fn text_skips_scripts_and_styles_and_separates_block_elements() {
    let extractor = extractor(json!({"fields": [
        {"name": "table", "selector": "table"},
        {"name": "json_ld", "selector": "script[type='application/ld+json']"}
    ]}));

    let extraction = extract(
        &extractor,
        "https://shop.example/",
        r#"<table><tr><td>1</td><td>2<style>td{}</style></td></tr><tr><td>3<br>4</td></tr></table>
           <script type="application/ld+json">{"a": 1}</script>"#,
    );

    assert_eq!(
        records(&extraction),
        json!([{"table": "1 2 3 4", "json_ld": "{\"a\": 1}"}])
    );
}

#[test]
fn item_selector_that_matches_nothing_yields_no_records_and_says_so() {
    let extractor =
        extractor(json!({"item_selector": ".missing", "fields": [{"name": "t", "selector": "p"}]}));

    let extraction = extract(&extractor, "https://shop.example/", "<p>x</p>");

    assert!(extraction.records.is_empty());
    assert_eq!(extraction.diagnostics.items_matched, 0);
    assert!(
        extraction
            .diagnostics
            .messages
            .iter()
            .any(|m| m == "item_selector matched no element")
    );
}

#[test]
fn elements_inside_template_contents_are_never_matched() {
    let extractor =
        extractor(json!({"item_selector": "li", "fields": [{"name": "t", "selector": "b"}]}));

    let extraction = extract(
        &extractor,
        "https://shop.example/",
        "<ul><li><b>shown</b></li></ul><template><li><b>inert</b></li></template>",
    );

    assert_eq!(records(&extraction), json!([{"t": "shown"}]));
}
