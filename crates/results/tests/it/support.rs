//! Helpers shared by the tests: an output buffer the writer can own, record builders, and
//! reading this process's resident memory.

use std::io::Write;
use std::sync::{Arc, Mutex};

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

/// Set in the child process that [`in_fresh_process`] starts.
const FRESH_PROCESS_ENV: &str = "SELEXTRACT_RESULTS_TEST_CHILD";

/// Runs `body` in a new process of this test binary, running only the test `test_name`.
///
/// Memory bounds are read from VmRSS, and in a shared test process that reading lies: memory
/// that other tests allocated and freed stays resident in the allocator and is handed out
/// again without the RSS moving, and a failing test's backtrace loads debug info. A fresh
/// process has neither.
pub fn in_fresh_process(test_name: &str, body: impl FnOnce()) {
    if std::env::var_os(FRESH_PROCESS_ENV).is_some() {
        body();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(FRESH_PROCESS_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{test_name} failed in its own process:\n{stdout}\n{stderr}"
    );
    // Guards against a filter that matched nothing, which would also exit successfully.
    assert!(
        stdout.contains("1 passed"),
        "{test_name} did not run:\n{stdout}"
    );
}
