//! Memory bounds of exports: large exports must not accumulate records.

use std::io::sink;

use selextract_results::{ExportFormat, record_writer};
use serde_json::json;

use crate::support::{columns, in_fresh_process, record, resident_bytes};

const MEGABYTE: u64 = 1024 * 1024;

#[test]
fn a_200_000_record_csv_export_stays_flat_in_memory() {
    in_fresh_process(
        "memory::a_200_000_record_csv_export_stays_flat_in_memory",
        export_200_000_records_to_csv_and_check_memory,
    );
}

fn export_200_000_records_to_csv_and_check_memory() {
    let names = columns(&["id", "title", "tags", "nested"]);
    let mut writer = record_writer(ExportFormat::Csv, sink(), &names).unwrap();
    let before = resident_bytes();
    let mut peak = before;
    for id in 0..200_000_u64 {
        let record = record(json!({
            "id": id,
            "title": format!("record number {id} with some text to make it a realistic size"),
            "tags": ["alpha", "beta", id.to_string()],
            "nested": {"id": id, "note": "x".repeat(100)},
        }));
        writer.write_record(&record).unwrap();
        if id.is_multiple_of(10_000) {
            peak = peak.max(resident_bytes());
        }
    }
    // Measured before `finish`, while the writer is alive: whatever it kept is still held.
    peak = peak.max(resident_bytes());
    writer.finish().unwrap();
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 50 * MEGABYTE,
        "resident memory grew by {} MB",
        growth / MEGABYTE
    );
}

#[test]
fn a_300_000_record_xlsx_export_stays_flat_in_memory() {
    in_fresh_process(
        "memory::a_300_000_record_xlsx_export_stays_flat_in_memory",
        export_300_000_records_to_xlsx_and_check_memory,
    );
}

fn export_300_000_records_to_xlsx_and_check_memory() {
    let names = columns(&["id", "title", "tags"]);
    let mut writer = record_writer(ExportFormat::Xlsx, sink(), &names).unwrap();
    let before = resident_bytes();
    let mut peak = before;
    for id in 0..300_000_u64 {
        // Every title is distinct: a shared-strings table would grow with each one.
        let record = record(json!({
            "id": id,
            "title": format!("distinct title number {id} of a record in a long export"),
            "tags": ["alpha", id.to_string()],
        }));
        writer.write_record(&record).unwrap();
        if id.is_multiple_of(10_000) {
            peak = peak.max(resident_bytes());
        }
    }
    peak = peak.max(resident_bytes());
    // The zip is built during `finish`, from the rows in the temp file.
    writer.finish().unwrap();
    peak = peak.max(resident_bytes());
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 50 * MEGABYTE,
        "resident memory grew by {} MB",
        growth / MEGABYTE
    );
}
