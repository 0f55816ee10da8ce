//! Storing runs' records and diffing them through the public API.

use selextract_changes::{
    ChangeKind, ChangeOptions, DiffCounts, RunChanges, Snapshot, SnapshotReader, build_snapshot,
    changed_fraction, diff_snapshots, read_detail,
};
use selextract_results::{Record, ResultStore};
use serde_json::Value;

pub fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Stores `records` as the pages of `run_id`, `per_page` records a page; returns the page
/// object keys in order.
pub async fn put_run(
    results: &ResultStore,
    run_id: &str,
    records: &[Record],
    per_page: usize,
) -> Vec<String> {
    let mut keys = Vec::new();
    for (index, page) in records.chunks(per_page.max(1)).enumerate() {
        let object = results
            .put_page(run_id, &format!("s0-p{index}"), page)
            .await
            .unwrap();
        keys.push(object.key);
    }
    keys
}

/// What a diff of two runs found: the counts and every detail entry (unfiltered listing).
pub struct Diffed {
    pub counts: DiffCounts,
    pub summary: RunChanges,
    pub previous: Snapshot,
    pub current: Snapshot,
}

pub async fn diff_runs(
    results: &ResultStore,
    previous: &[Record],
    current: &[Record],
    key_field: Option<&str>,
    options: &ChangeOptions,
) -> Diffed {
    let previous_keys = put_run(results, "run-a", previous, 7).await;
    let current_keys = put_run(results, "run-b", current, 7).await;
    let previous = build_snapshot(results, "run-a", previous_keys, key_field, options)
        .await
        .unwrap();
    let current = build_snapshot(results, "run-b", current_keys, key_field, options)
        .await
        .unwrap();
    let counts = diff_snapshots(
        results,
        "run-b",
        &mut SnapshotReader::new(results, previous.clone()),
        &mut SnapshotReader::new(results, current.clone()),
        options.detail_chunk_size,
    )
    .await
    .unwrap();
    let summary = RunChanges {
        run_id: "run-b".into(),
        task_id: "task".into(),
        user_id: "user".into(),
        previous_run_id: Some("run-a".into()),
        key_field: key_field.map(str::to_owned),
        previous_records: counts.previous_records,
        records: counts.records,
        added: counts.added,
        removed: counts.removed,
        changed: counts.changed,
        unchanged: counts.unchanged,
        changed_fraction: changed_fraction(&counts),
        passed_threshold: false,
        detail_items: counts.added + counts.removed + counts.changed,
        detail_chunk_size: options.detail_chunk_size,
        snapshot_chunks: current.chunks,
        created_at_ms: 0,
    };
    Diffed {
        counts,
        summary,
        previous,
        current,
    }
}

/// Every detail entry of one kind (or all), read page by page with `page` entries a page.
pub async fn all_detail(
    results: &ResultStore,
    summary: &RunChanges,
    kind: Option<ChangeKind>,
    page: usize,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = 0;
    loop {
        let found = read_detail(results, summary, kind, cursor, page)
            .await
            .unwrap();
        assert!(found.items.len() <= page);
        items.extend(found.items);
        match found.next_cursor {
            Some(next) => cursor = next,
            None => return items,
        }
    }
}

pub fn memory_store() -> ResultStore {
    ResultStore::from_url("memory://").unwrap()
}
