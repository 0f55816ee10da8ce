//! Each transform on its own, including the values it cannot convert.

use serde_json::{Value, json};

use crate::{extract, extractor};

struct Outcome {
    values: Vec<Value>,
    failures: usize,
    missing: usize,
}

/// Runs `transform` over each input, read raw from an attribute (so whitespace survives).
fn run(transform: Value, inputs: &[&str]) -> Outcome {
    let extractor = extractor(json!({
        "item_selector": "li",
        "fields": [{"name": "v", "selector": "span", "type": "attribute", "attribute": "data-v",
                    "required": false, "transform": transform}]
    }));
    let items: String = inputs
        .iter()
        .map(|input| {
            format!(
                "<li><span data-v=\"{}\"></span></li>",
                input.replace('&', "&amp;").replace('"', "&quot;")
            )
        })
        .collect();
    let extraction = extract(
        &extractor,
        "https://shop.example/",
        &format!("<ul>{items}</ul>"),
    );
    Outcome {
        values: extraction
            .records
            .iter()
            .map(|record| record["v"].clone())
            .collect(),
        failures: extraction
            .diagnostics
            .transform_failures
            .get("v")
            .copied()
            .unwrap_or(0),
        missing: extraction
            .diagnostics
            .fields_missing
            .get("v")
            .copied()
            .unwrap_or(0),
    }
}

#[test]
fn trim_lowercase_and_uppercase_change_the_text() {
    assert_eq!(
        run(json!(["trim"]), &["  Padded\t"]).values,
        [json!("Padded")]
    );
    assert_eq!(
        run(json!(["lowercase"]), &["ÀBC Déf"]).values,
        [json!("àbc déf")]
    );
    assert_eq!(
        run(json!(["uppercase"]), &["straße"]).values,
        [json!("STRASSE")]
    );
}

#[test]
fn regex_takes_the_first_match_or_the_first_group_and_a_miss_is_missing() {
    let whole = run(json!([{"regex": "[0-9]+"}]), &["order 123 of 456", "none"]);
    assert_eq!(whole.values, [json!("123"), Value::Null]);
    assert_eq!((whole.failures, whole.missing), (0, 1));

    let group = run(
        json!([{"regex": "SKU-([A-Z0-9]+)"}]),
        &["item SKU-X42 blue"],
    );
    assert_eq!(group.values, [json!("X42")]);
}

#[test]
fn replace_substitutes_every_literal_occurrence() {
    let outcome = run(
        json!([{"replace": [".", ""]}, {"replace": ["a", "b"]}]),
        &["a.b.c.a"],
    );

    assert_eq!(outcome.values, [json!("bbcb")]);
}

#[test]
fn number_reads_prices_in_common_notations_and_counts_failures() {
    let outcome = run(
        json!(["number"]),
        &[
            "$1,299.50",
            "1.299,50 €",
            "EUR 12,5",
            "1 299 000",
            "-3.25",
            "Price: -$7",
            "1,299",
            "1e3",
            "0,5",
            "call us",
            "",
        ],
    );

    assert_eq!(
        outcome.values,
        [
            json!(1299.5),
            json!(1299.5),
            json!(12.5),
            json!(1299000.0),
            json!(-3.25),
            json!(-7.0),
            json!(1299.0),
            json!(1000.0),
            json!(0.5),
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(
        outcome.failures, 1,
        "\"call us\" fails; the empty value is missing, not a failure"
    );
    assert_eq!(outcome.missing, 1);
}

#[test]
fn integer_truncates_the_number() {
    let outcome = run(
        json!(["integer"]),
        &["$1,299.99", "-2.7", "12 items", "n/a"],
    );

    assert_eq!(
        outcome.values,
        [json!(1299), json!(-2), json!(12), Value::Null]
    );
    assert_eq!(outcome.failures, 1);
}

#[test]
fn boolean_understands_stock_words_and_counts_unknown_words() {
    let outcome = run(
        json!(["boolean"]),
        &[
            "true",
            "Yes",
            "1",
            "ON",
            "In Stock",
            "false",
            "no",
            "0",
            "off",
            "Out of stock",
            "maybe",
        ],
    );

    assert_eq!(
        outcome.values,
        [
            json!(true),
            json!(true),
            json!(true),
            json!(true),
            json!(true),
            json!(false),
            json!(false),
            json!(false),
            json!(false),
            json!(false),
            Value::Null
        ]
    );
    assert_eq!(outcome.failures, 1);
}

#[test]
fn date_outputs_iso_dates_and_rfc3339_when_there_is_a_time() {
    let date = run(
        json!([{"date": "%d/%m/%Y"}]),
        &["05/03/2024", "31/02/2024", "yesterday"],
    );
    assert_eq!(date.values, [json!("2024-03-05"), Value::Null, Value::Null]);
    assert_eq!(date.failures, 2);

    let with_offset = run(
        json!([{"date": "%d %b %Y %H:%M %z"}]),
        &["05 Mar 2024 14:30 +0100"],
    );
    assert_eq!(with_offset.values, [json!("2024-03-05T14:30:00+01:00")]);

    let local_time = run(json!([{"date": "%Y-%m-%d %H:%M"}]), &[" 2024-03-05 09:15 "]);
    assert_eq!(local_time.values, [json!("2024-03-05T09:15:00")]);
}

#[test]
fn transforms_run_in_order_on_each_value_of_a_multiple_field() {
    let extractor = extractor(json!({"fields": [{
        "name": "prices", "selector": "li", "multiple": true,
        "transform": ["lowercase", {"regex": "([0-9.]+) usd"}, "number"]
    }]}));

    let extraction = extract(
        &extractor,
        "https://shop.example/",
        "<li>10.5 USD<li>free<li>3 USD<li>? usd",
    );

    assert_eq!(extraction.records[0]["prices"], json!([10.5, 3.0]));
}

#[test]
fn a_failed_conversion_keeps_the_record_with_null() {
    let extractor =
        extractor(json!({"fields": [{"name": "price", "selector": "b", "transform": ["number"]}]}));

    let extraction = extract(&extractor, "https://shop.example/", "<b>sold out</b>");

    assert_eq!(
        extraction.records,
        [json!({"price": null}).as_object().unwrap().clone()]
    );
    assert_eq!(extraction.diagnostics.records_dropped_missing_required, 0);
    assert_eq!(
        extraction.diagnostics.transform_failures.get("price"),
        Some(&1)
    );
}
