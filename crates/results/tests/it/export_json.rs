//! JSON array and JSON Lines exports.

use selextract_results::{ExportFormat, record_writer};
use serde_json::{Map, Value};

use crate::support::{SharedBuffer, export, varied_records};

#[test]
fn json_export_is_an_array_that_parses_back_to_the_same_records() {
    let records = varied_records();
    let bytes = export(ExportFormat::Json, &[], &records);
    let parsed: Vec<Map<String, Value>> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(parsed, records);
}

#[test]
fn json_export_puts_each_record_on_its_own_line_inside_the_brackets() {
    let records = varied_records();
    let text = String::from_utf8(export(ExportFormat::Json, &[], &records)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "[");
    assert!(
        lines[1].starts_with('{') && lines[1].ends_with("},"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with('{') && lines[2].ends_with('}'),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "]");
    assert!(text.ends_with("]\n"));
}

#[test]
fn json_export_of_zero_records_is_an_empty_array() {
    let bytes = export(ExportFormat::Json, &[], &[]);
    let parsed: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    assert!(parsed.is_empty());
}

#[test]
fn json_export_flushed_but_never_finished_holds_only_complete_records() {
    let records = varied_records();
    let buffer = SharedBuffer::default();
    let mut writer = record_writer(ExportFormat::Json, buffer.clone(), &[]).unwrap();
    for record in &records {
        writer.write_record(record).unwrap();
    }
    writer.flush().unwrap();
    // Dropped without `finish`, as a Ctrl-C'd CLI would: adding the closing bracket must be
    // all it takes to make the output valid.
    drop(writer);
    let mut text = buffer.text();
    assert!(text.ends_with('}'), "{text}");
    text.push_str("\n]");
    let parsed: Vec<Map<String, Value>> = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed, records);
}

#[test]
fn jsonl_export_writes_one_object_per_line_with_unicode_intact() {
    let records = varied_records();
    let text = String::from_utf8(export(ExportFormat::Jsonl, &[], &records)).unwrap();
    assert!(
        text.contains("東京 🍣"),
        "unicode must not be escaped: {text}"
    );
    let parsed: Vec<Map<String, Value>> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(parsed, records);
    assert!(text.ends_with('\n'));
}

#[test]
fn jsonl_export_of_zero_records_is_empty() {
    assert!(export(ExportFormat::Jsonl, &[], &[]).is_empty());
}

#[test]
fn jsonl_flush_makes_written_records_visible_before_finish() {
    let records = varied_records();
    let buffer = SharedBuffer::default();
    let mut writer = record_writer(ExportFormat::Jsonl, buffer.clone(), &[]).unwrap();
    writer.write_record(&records[0]).unwrap();
    writer.flush().unwrap();
    let text = buffer.text();
    assert_eq!(text.lines().count(), 1);
    let parsed: Map<String, Value> = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(parsed, records[0]);
}
