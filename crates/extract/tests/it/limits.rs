//! Size limits: a value, a record and one page's records. A page that breaks one yields no
//! records and says which limit it broke, without ever building the oversized value.

use selextract_extract::{Extraction, Extractor, Page};
use selextract_spec::{Limits, validate};
use serde_json::{Value, json};

use crate::{extract, extractor, spec, url};

fn validated_extractor(json: Value, limits: Limits) -> Extractor {
    let validated = validate(spec(json), &limits).expect("a valid spec");
    Extractor::from_validated(&validated)
}

/// The attack; validation refuses more than 20 steps by default, so the limit on
/// steps is raised to show that the value limit holds on its own.
fn replace_a_with_aa(times: usize) -> Extractor {
    validated_extractor(
        json!({
            "fields": [{
                "name": "title",
                "selector": "h1",
                "transform": vec![json!({"replace": ["a", "aa"]}); times]
            }]
        }),
        Limits {
            max_transforms: 64,
            ..Limits::default()
        },
    )
}

fn too_large(extraction: &Extraction) -> &str {
    assert!(extraction.records.is_empty(), "{:?}", extraction.records);
    extraction
        .too_large
        .as_deref()
        .expect("the page is refused")
}

#[test]
fn doubling_a_value_22_times_is_refused_before_it_is_built() {
    // Four `a`s doubled per step: 16 MiB after 22 steps. Refused at the first step that
    // would pass the 1 MiB limit (4 · 2^18 `a`s and four other letters).
    let extraction = extract(
        &replace_a_with_aa(20),
        "https://shop.example/",
        "<h1>a banana</h1>",
    );

    assert_eq!(
        too_large(&extraction),
        "fields[0] (\"title\"): a value of 1048580 bytes exceeds limits.max_value_bytes (1048576)"
    );
}

#[test]
fn doubling_a_value_40_times_asks_for_terabytes_and_gets_an_error() {
    let doubled_40_times = extract(
        &replace_a_with_aa(40),
        "https://shop.example/",
        "<h1>a banana</h1>",
    );
    let doubled_22_times = extract(
        &replace_a_with_aa(22),
        "https://shop.example/",
        "<h1>a banana</h1>",
    );

    assert_eq!(too_large(&doubled_40_times), too_large(&doubled_22_times));
}

#[test]
fn a_value_just_within_the_limit_is_kept() {
    let limits = Limits {
        max_value_bytes: 20,
        ..Limits::default()
    };
    let extractor = validated_extractor(
        json!({"fields": [{"name": "title", "selector": "h1", "transform": [{"replace": ["a", "aa"]}]}]}),
        limits,
    );

    let within = extract(&extractor, "https://shop.example/", "<h1>a banana</h1>");
    let beyond = extract(
        &extractor,
        "https://shop.example/",
        "<h1>a banana banana</h1>",
    );

    assert_eq!(within.too_large, None);
    assert_eq!(within.records[0]["title"], json!("aa baanaanaa"));
    assert_eq!(
        too_large(&beyond),
        "fields[0] (\"title\"): a value of 22 bytes exceeds limits.max_value_bytes (20)"
    );
}

#[test]
fn huge_text_html_attribute_and_link_values_are_refused_without_copying_them() {
    let big = "x".repeat(2 * 1024 * 1024);
    let html = format!("<div id=big><p>{big}</p></div><a href=\"/{big}\" title=\"{big}\">link</a>");
    let cases = [
        (json!({"name": "text", "selector": "#big"}), 2 * 1024 * 1024),
        (
            json!({"name": "html", "selector": "#big", "type": "html"}),
            2 * 1024 * 1024 + 7,
        ),
        (
            json!({"name": "title", "selector": "a", "type": "attribute", "attribute": "title"}),
            2 * 1024 * 1024,
        ),
        (
            json!({"name": "link", "selector": "a", "type": "link"}),
            2 * 1024 * 1024 + 1,
        ),
        (
            json!({"name": "xpath", "selector": "string(//p)", "selector_type": "xpath"}),
            2 * 1024 * 1024,
        ),
    ];

    for (field, bytes) in cases {
        let name = field["name"].as_str().unwrap().to_owned();
        let extraction = extract(
            &extractor(json!({"fields": [field]})),
            "https://shop.example/",
            &html,
        );
        assert_eq!(
            too_large(&extraction),
            format!(
                "fields[0] ({name:?}): a value of {bytes} bytes exceeds limits.max_value_bytes (1048576)"
            )
        );
    }
}

#[test]
fn the_values_of_a_multiple_field_count_together() {
    let limits = Limits {
        max_value_bytes: 1000,
        ..Limits::default()
    };
    let extractor = validated_extractor(
        json!({"fields": [{"name": "items", "selector": "li", "multiple": true}]}),
        limits,
    );
    let html = format!("<ul>{}</ul>", "<li>0123456789</li>".repeat(100));

    let extraction = extract(&extractor, "https://shop.example/", &html);

    // 12 bytes of JSON per value: refused at the 84th.
    assert!(
        too_large(&extraction).starts_with("fields[0] (\"items\"): a value of 1008 bytes"),
        "{:?}",
        extraction.too_large
    );
}

#[test]
fn a_record_larger_than_the_record_limit_refuses_the_page() {
    let limits = Limits {
        max_record_bytes: 1000,
        ..Limits::default()
    };
    let extractor = validated_extractor(
        json!({
            "item_selector": "li",
            "fields": [{"name": "a", "selector": "b"}, {"name": "c", "selector": "i"}]
        }),
        limits,
    );
    let html = format!(
        "<ul><li><b>small</b><i>small</i></li><li><b>{0}</b><i>{0}</i></li></ul>",
        "y".repeat(600)
    );

    let extraction = extract(&extractor, "https://shop.example/", &html);

    assert_eq!(
        too_large(&extraction),
        "record 2 of the page: 1215 bytes of JSON exceed limits.max_record_bytes (1000)"
    );
}

#[test]
fn records_adding_up_past_the_page_limit_refuse_the_page() {
    let limits = Limits {
        max_page_records_bytes: 10_000,
        ..Limits::default()
    };
    let extractor = validated_extractor(
        json!({"item_selector": "li", "fields": [{"name": "n", "selector": "b"}]}),
        limits,
    );
    let html = format!("<ul>{}</ul>", "<li><b>0123456789</b></li>".repeat(1000));

    let extraction = extract(&extractor, "https://shop.example/", &html);

    // Each record is {"n":"0123456789"}: 18 bytes; the 556th passes 10,000.
    assert_eq!(
        too_large(&extraction),
        "the page's records: 10008 bytes of JSON so far exceed limits.max_page_records_bytes (10000)"
    );
}

#[test]
fn extraction_within_every_limit_reports_nothing_too_large() {
    let extraction = extract(
        &replace_a_with_aa(3),
        "https://shop.example/",
        "<h1>a banana</h1>",
    );

    assert_eq!(extraction.too_large, None);
    assert_eq!(
        extraction.records[0]["title"],
        json!("aaaaaaaa baaaaaaaanaaaaaaaanaaaaaaaa")
    );
}

#[test]
fn an_unvalidated_spec_with_a_deep_selector_is_refused_without_parsing_it() {
    let deep = format!("{}//a{}", "(".repeat(2000), ")".repeat(2000));
    let error = Extractor::new(&spec(json!({
        "fields": [{"name": "a", "selector": deep, "selector_type": "xpath"}]
    })))
    .unwrap_err();

    assert_eq!(
        error.to_string(),
        "fields[0].selector: nesting depth 2000 exceeds the limit of 32 (limits.max_selector_depth)"
    );
}

#[test]
fn an_unvalidated_spec_with_too_many_transform_steps_is_refused() {
    let error = Extractor::new(&spec(json!({
        "fields": [{"name": "a", "selector": "h1", "transform": vec!["trim"; 21]}]
    })))
    .unwrap_err();

    assert_eq!(
        error.to_string(),
        "fields[0].transform: 21 steps exceed the limit of 20 (limits.max_transforms)"
    );
}

#[test]
fn an_unvalidated_spec_with_an_enormous_regex_is_refused() {
    let error = Extractor::new(&spec(json!({
        "fields": [{"name": "a", "selector": "h1", "transform": [{"regex": "(a{1000}){1000}"}]}]
    })))
    .unwrap_err();

    assert_eq!(error.path(), "fields[0].transform[0].regex");
}

#[test]
fn a_page_refused_for_size_still_reports_its_next_page() {
    let extractor = extractor(json!({
        "fields": [{"name": "t", "selector": "h1", "transform": vec![json!({"replace": ["a", "aa"]}); 20]}],
        "pagination": {"next_selector": "a.next"}
    }));
    let page_url = url("https://shop.example/");

    let extraction = extractor.extract(&Page {
        url: &page_url,
        body: b"<h1>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</h1><a class=next href=/2>next</a>",
        content_type: None,
        rendered: false,
    });

    assert!(extraction.too_large.is_some());
    assert_eq!(extraction.next.url.unwrap().path(), "/2");
}
