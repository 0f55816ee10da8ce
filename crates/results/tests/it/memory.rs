//! Memory bounds of exports: large exports must not accumulate records.

use std::io::sink;

use selextract_results::{ExportFormat, record_writer};
use serde_json::json;

use crate::support::{columns, memory_test_lock, record, resident_bytes};

const MEGABYTE: u64 = 1024 * 1024;

#[test]
fn a_200_000_record_csv_export_stays_flat_in_memory() {
    let _serial = memory_test_lock();
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
        if id % 10_000 == 0 {
            peak = peak.max(resident_bytes());
        }
    }
    // Measured before `finish`, while the writer is alive: whatever it kept is still held.
    peak = peak.max(resident_bytes());
    writer.finish().unwrap();
    let growth = peak.saturating_sub(before);
    assert!(growth < 50 * MEGABYTE, "resident memory grew by {} MB", growth / MEGABYTE);
}
