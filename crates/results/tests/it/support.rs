//! Helpers shared by the tests: an output buffer the writer can own, record builders, and
//! reading this process's resident memory.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use selextract_results::{ExportFormat, record_writer};
use serde_json::{Map, Value, json};

/// A `Write` the record writer can own (`'static`) while the test keeps a handle to read it.
#[derive(Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.bytes()).unwrap()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A record from a JSON object literal.
pub fn record(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

pub fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Exports `records` in `format` with `columns` and returns the finished bytes.
pub fn export(format: ExportFormat, columns: &[String], records: &[Map<String, Value>]) -> Vec<u8> {
    let buffer = SharedBuffer::default();
    let mut writer = record_writer(format, buffer.clone(), columns).unwrap();
    for record in records {
        writer.write_record(record).unwrap();
    }
    writer.finish().unwrap();
    buffer.bytes()
}

/// Records with every kind of value a field can hold.
pub fn varied_records() -> Vec<Map<String, Value>> {
    vec![
        record(json!({
            "title": "Grüße aus Köln — 東京 🍣",
            "price": 12.5,
            "count": 3,
            "in_stock": true,
            "tags": ["a", "b", "c"],
            "missing": null,
        })),
        record(json!({
            "title": "Second, with \"quotes\"\nand a newline",
            "price": -4,
            "count": 0,
            "in_stock": false,
            "tags": [1, "two", null, true],
            "missing": {"nested": {"deep": [1, 2]}},
        })),
    ]
}

/// Resident memory of this process in bytes, from /proc/self/status.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kilobytes: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kilobytes * 1024
}

/// Memory tests hold this so that two of them never run at once and disturb each other's
/// readings (the other tests allocate only kilobytes).
pub fn memory_test_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
