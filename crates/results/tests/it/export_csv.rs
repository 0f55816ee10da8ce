//! CSV export: header, flattening, injection guard.

use selextract_results::ExportFormat;
use serde_json::json;

use crate::support::{columns, export, record, varied_records};

fn read_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|row| row.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

const FIELDS: [&str; 6] = ["title", "price", "count", "in_stock", "tags", "missing"];

#[test]
fn csv_export_has_the_given_columns_as_header_and_flattens_values() {
    let bytes = export(ExportFormat::Csv, &columns(&FIELDS), &varied_records());
    let rows = read_rows(&bytes);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], FIELDS);
    assert_eq!(
        rows[1],
        [
            "Grüße aus Köln — 東京 🍣",
            "12.5",
            "3",
            "true",
            "a; b; c",
            ""
        ]
    );
    assert_eq!(
        rows[2],
        [
            "Second, with \"quotes\"\nand a newline",
            "-4",
            "0",
            "false",
            "1; two; ; true",
            r#"{"nested":{"deep":[1,2]}}"#,
        ]
    );
}

#[test]
fn csv_export_writes_lists_holding_objects_as_json_text() {
    let records = [record(
        json!({"offers": [{"shop": "a", "price": 1}, "plain"]}),
    )];
    let rows = read_rows(&export(ExportFormat::Csv, &columns(&["offers"]), &records));
    assert_eq!(rows[1], [r#"[{"shop":"a","price":1},"plain"]"#]);
}

#[test]
fn csv_export_follows_column_order_and_leaves_missing_fields_empty() {
    let records = [record(
        json!({"b": "bee", "extra": "not a column", "a": "ay"}),
    )];
    let rows = read_rows(&export(
        ExportFormat::Csv,
        &columns(&["a", "c", "b"]),
        &records,
    ));
    assert_eq!(rows, [vec!["a", "c", "b"], vec!["ay", "", "bee"]]);
}

#[test]
fn csv_export_without_columns_takes_the_header_from_the_first_record() {
    let records = [
        record(json!({"z": 1, "y": 2})),
        record(json!({"y": 3, "z": 4})),
    ];
    let rows = read_rows(&export(ExportFormat::Csv, &[], &records));
    assert_eq!(rows, [vec!["z", "y"], vec!["1", "2"], vec!["4", "3"]]);
}

#[test]
fn csv_export_of_zero_records_is_the_header_alone() {
    let text = String::from_utf8(export(ExportFormat::Csv, &columns(&["a", "b"]), &[])).unwrap();
    assert_eq!(text, "a,b\n");
}

#[test]
fn csv_export_prefixes_formula_looking_text_with_an_apostrophe() {
    let records = [record(json!({
        "a": "=cmd|' /C calc'!A0",
        "b": "+1+1",
        "c": "-2+3",
        "d": "@SUM(A1)",
        "e": "\t=1",
        "f": ["=1", "x"],
        "g": -7,
        "h": "safe = text",
    }))];
    let names = columns(&["a", "b", "c", "d", "e", "f", "g", "h"]);
    let rows = read_rows(&export(ExportFormat::Csv, &names, &records));
    assert_eq!(
        rows[1],
        [
            "'=cmd|' /C calc'!A0",
            "'+1+1",
            "'-2+3",
            "'@SUM(A1)",
            "'\t=1",
            "'=1; x",
            "-7",
            "safe = text",
        ]
    );
}

#[test]
fn csv_export_writes_a_single_empty_field_as_a_row_readers_still_see() {
    let records = [record(json!({"a": null})), record(json!({"a": "x"}))];
    let rows = read_rows(&export(ExportFormat::Csv, &columns(&["a"]), &records));
    assert_eq!(rows, [vec!["a"], vec![""], vec!["x"]]);
}
