//! The async export bridge: records in, export bytes out.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use selextract_results::{ExportFormat, Record, ResultStore, StorageError, export_stream};
use serde_json::{Value, json};

use crate::support::{columns, in_fresh_process, record, resident_bytes};

async fn collect(bytes: impl Stream<Item = Result<Bytes, std::io::Error>>) -> Vec<u8> {
    bytes
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn stored_pages_export_as_one_json_array_in_page_order() {
    let store = ResultStore::from_url("memory://").unwrap();
    let first: Vec<Record> = (0..3).map(|n| record(json!({"n": n}))).collect();
    let second: Vec<Record> = (3..5).map(|n| record(json!({"n": n}))).collect();
    let a = store.put_page("run", "a", &first).await.unwrap();
    let b = store.put_page("run", "b", &second).await.unwrap();
    let records = store.stream_records(vec![a.key, b.key]);
    let bytes = collect(export_stream(records, ExportFormat::Json, Vec::new())).await;
    let parsed: Vec<Record> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(parsed, [first, second].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xlsx_export_stream_is_a_readable_workbook() {
    let records =
        stream::iter((0..100).map(|n| Ok(record(json!({"n": n, "label": format!("row {n}")})))));
    let bytes = collect(export_stream(
        records,
        ExportFormat::Xlsx,
        columns(&["label", "n"]),
    ))
    .await;
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    let range = workbook.worksheet_range("records").unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(rows.len(), 101);
    assert_eq!(
        rows[100],
        [Data::String("row 99".into()), Data::Float(99.0)]
    );
}

#[tokio::test]
async fn an_error_in_the_records_ends_the_byte_stream_with_an_error() {
    let records = stream::iter(vec![
        Ok(record(json!({"n": 1}))),
        Err(StorageError::NotFound {
            key: "runs/r/pages/p.jsonl".into(),
        }),
        Ok(record(json!({"n": 2}))),
    ]);
    let items: Vec<_> = export_stream(records, ExportFormat::Jsonl, Vec::new())
        .collect()
        .await;
    let last = items.last().unwrap();
    let error = last.as_ref().unwrap_err();
    assert!(
        error.to_string().contains("runs/r/pages/p.jsonl"),
        "{error}"
    );
    let text: Vec<u8> = items
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .flatten()
        .copied()
        .collect();
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "{\"n\":1}\n",
        "nothing after the error"
    );
}

/// Sets its flag when dropped, to observe that the record stream was let go.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_byte_stream_stops_reading_records() {
    let dropped = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let guard = DropFlag(dropped.clone());
    let counter = produced.clone();
    // An endless source: only the consumer going away can end the export.
    let records = stream::iter(0_u64..).map(move |n| {
        let _keep_alive = &guard;
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(record(json!({"n": n, "padding": "x".repeat(100)})))
    });
    let mut bytes = Box::pin(export_stream(
        records,
        ExportFormat::Csv,
        columns(&["n", "padding"]),
    ));
    bytes.next().await.unwrap().unwrap();
    drop(bytes);
    for _ in 0..6_000 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the record stream was never dropped"
    );
    let after_stop = produced.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(produced.load(Ordering::SeqCst), after_stop);
}

#[test]
fn a_million_record_csv_export_stream_stays_flat_in_memory_and_has_every_line() {
    in_fresh_process(
        "export_stream::a_million_record_csv_export_stream_stays_flat_in_memory_and_has_every_line",
        || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            runtime.block_on(export_a_million_records_and_check_memory());
        },
    );
}

async fn export_a_million_records_and_check_memory() {
    const RECORDS: u64 = 1_000_000;
    // Generated one at a time as the export asks for them; never stored.
    let records = stream::iter(0..RECORDS).map(|id| {
        Ok(record(json!({
            "id": id,
            "title": format!("generated record {id}"),
            "tags": ["one", "two"],
            "price": Value::from(id as f64 / 100.0),
        })))
    });
    let before = resident_bytes();
    let mut peak = before;
    let mut newlines = 0_u64;
    let mut chunks = 0_u64;
    let mut bytes = Box::pin(export_stream(
        records,
        ExportFormat::Csv,
        columns(&["id", "title", "tags", "price"]),
    ));
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.unwrap();
        newlines += chunk.iter().filter(|byte| **byte == b'\n').count() as u64;
        chunks += 1;
        if chunks.is_multiple_of(64) {
            peak = peak.max(resident_bytes());
        }
    }
    peak = peak.max(resident_bytes());
    assert_eq!(newlines, RECORDS + 1, "header plus one line per record");
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 100 * 1024 * 1024,
        "resident memory grew by {} MB",
        growth >> 20
    );
}
