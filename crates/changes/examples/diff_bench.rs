//! Benchmark of change detection: two runs of N records (default 1,000,000) in a local
//! result store, snapshotted and diffed with the default options, with the time of each
//! step and the process's peak resident memory during snapshot + diff.
//!
//! `cargo run --release -p selextract-changes --example diff_bench -- [records] [dir]`
//!
//! The peak is the kernel's high-water mark (`VmHWM`), reset after the runs are written
//! (`/proc/self/clear_refs`), so it covers sorting, merging and diffing only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use selextract_changes::{ChangeOptions, SnapshotReader, build_snapshot, diff_snapshots};
use selextract_results::{Record, ResultStore};
use serde_json::{Value, json};

const PAGE: usize = 1000;

fn record(id: u64, version: u64) -> Record {
    let value = json!({
        "sku": format!("sku-{id:08}"),
        "title": format!("Product number {id} with a reasonably long title"),
        "price": format!("{}.{:02}", (id * 7 + version) % 1000, id % 100),
        "url": format!("https://shop.example/products/{id}"),
        "tags": ["a", "b", id % 13],
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

async fn write_run(
    results: &ResultStore,
    run_id: &str,
    ids: impl Iterator<Item = (u64, u64)>,
) -> Vec<String> {
    let mut keys = Vec::new();
    let mut page = Vec::with_capacity(PAGE);
    for (id, version) in ids {
        page.push(record(id, version));
        if page.len() == PAGE {
            keys.push(
                results
                    .put_page(run_id, &format!("s0-p{}", keys.len()), &page)
                    .await
                    .unwrap()
                    .key,
            );
            page.clear();
        }
    }
    if !page.is_empty() {
        keys.push(
            results
                .put_page(run_id, &format!("s0-p{}", keys.len()), &page)
                .await
                .unwrap()
                .key,
        );
    }
    keys
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let records: u64 = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("records: a number"));
    let dir = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => tempfile::tempdir().unwrap().keep(),
    };
    let results = ResultStore::local(&dir).unwrap();
    let options = ChangeOptions::default();

    let started = Instant::now();
    // Previous: ids 0..n. Current: 5% removed (id % 20 == 0), 10% changed (id % 10 == 1),
    // 5% new ids (n.., as many as removed), in a different order (pages reversed).
    let previous = write_run(&results, "bench-previous", (0..records).map(|id| (id, 0))).await;
    let mut current_ids: Vec<(u64, u64)> = (0..records)
        .filter(|id| id % 20 != 0)
        .map(|id| (id, u64::from(id % 10 == 1)))
        .chain((records..records + records / 20).map(|id| (id, 0)))
        .collect();
    current_ids.reverse();
    let current = write_run(&results, "bench-current", current_ids.into_iter()).await;
    println!(
        "wrote 2 runs of ~{records} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Reset the high-water mark so it measures change detection only.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let baseline = peak_rss_kib();

    let step = Instant::now();
    let old = build_snapshot(&results, "bench-previous", previous, Some("sku"), &options)
        .await
        .unwrap();
    let snapshot_previous = step.elapsed();
    let step = Instant::now();
    let new = build_snapshot(&results, "bench-current", current, Some("sku"), &options)
        .await
        .unwrap();
    let snapshot_current = step.elapsed();
    let step = Instant::now();
    let counts = diff_snapshots(
        &results,
        "bench-current",
        &mut SnapshotReader::new(&results, old),
        &mut SnapshotReader::new(&results, new),
        options.detail_chunk_size,
    )
    .await
    .unwrap();
    let diff = step.elapsed();
    println!(
        "snapshot of the previous run: {:.1} s",
        snapshot_previous.as_secs_f64()
    );
    println!(
        "snapshot of the current run:  {:.1} s",
        snapshot_current.as_secs_f64()
    );
    println!("diff (merge-join + detail):   {:.1} s", diff.as_secs_f64());
    println!(
        "total change detection:       {:.1} s",
        (snapshot_previous + snapshot_current + diff).as_secs_f64()
    );
    println!("counts: {counts:?}");
    println!(
        "peak RSS during change detection: {} MiB (after writing the runs: {} MiB)",
        peak_rss_kib().map_or("?".to_owned(), |kib| (kib / 1024).to_string()),
        baseline.map_or("?".to_owned(), |kib| (kib / 1024).to_string()),
    );
    println!("store: {}", dir.display());
}
