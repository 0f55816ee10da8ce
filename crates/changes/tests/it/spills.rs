//! The external sort with many spills and chunks, on a local-directory store, checked
//! against a naive in-memory diff of the same runs.

use std::collections::BTreeMap;

use selextract_changes::{ChangeKind, ChangeOptions, record_key};
use selextract_results::{Record, ResultStore};
use serde_json::{Value, json};

use crate::support::{all_detail, diff_runs, record};

/// A deterministic pseudo-random sequence (xorshift), so the test data is the same each run.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn runs() -> (Vec<Record>, Vec<Record>) {
    let mut sequence = Sequence(0x9e37_79b9_7f4a_7c15);
    let mut previous = Vec::new();
    let mut current = Vec::new();
    for id in 0..2500u64 {
        let price = sequence.next() % 100;
        let base = json!({"id": format!("item-{id}"), "price": price, "tags": ["t", id % 7]});
        previous.push(record(base.clone()));
        match sequence.next() % 10 {
            // Removed.
            0 => {}
            // Changed price, or a field added.
            1 => current.push(record(json!({"id": format!("item-{id}"), "price": price + 1, "tags": ["t", id % 7]}))),
            2 => current.push(record(json!({"id": format!("item-{id}"), "price": price, "tags": ["t", id % 7], "sale": true}))),
            // A duplicate key (kept twice).
            3 => {
                current.push(record(base.clone()));
                current.push(record(json!({"id": format!("item-{id}"), "price": 0})));
            }
            _ => current.push(record(base)),
        }
        if sequence.next().is_multiple_of(8) {
            current.push(record(json!({"id": format!("new-{id}"), "price": 1})));
        }
    }
    // Shuffle the current run's order: the diff must not depend on it.
    for index in (1..current.len()).rev() {
        let other = usize::try_from(sequence.next() % (index as u64 + 1)).unwrap();
        current.swap(index, other);
    }
    (previous, current)
}

/// Key → records in run order, then pairs by (key, occurrence).
fn naive_diff(previous: &[Record], current: &[Record]) -> (BTreeMap<String, String>, u64) {
    fn index(records: &[Record]) -> BTreeMap<(String, usize), Value> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for record in records {
            let key = record_key(record, Some("id"));
            let occurrence = seen.entry(key.clone()).or_default();
            *occurrence += 1;
            out.insert((key, *occurrence), Value::Object(record.clone()));
        }
        out
    }
    let old = index(previous);
    let new = index(current);
    let mut kinds = BTreeMap::new();
    let mut unchanged = 0;
    let display = |(key, occurrence): &(String, usize)| {
        if *occurrence == 1 {
            key.clone()
        } else {
            format!("{key}#{occurrence}")
        }
    };
    for (key, value) in &new {
        match old.get(key) {
            None => {
                kinds.insert(display(key), "added".to_owned());
            }
            Some(before) if before == value => unchanged += 1,
            Some(_) => {
                kinds.insert(display(key), "changed".to_owned());
            }
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            kinds.insert(display(key), "removed".to_owned());
        }
    }
    (kinds, unchanged)
}

#[tokio::test]
async fn a_diff_with_many_spills_and_chunks_matches_a_naive_in_memory_diff() {
    let dir = tempfile::tempdir().unwrap();
    let results = ResultStore::local(dir.path()).unwrap();
    let (previous, current) = runs();
    let options = ChangeOptions {
        sort_buffer_records: 97,
        sort_buffer_bytes: 1 << 30,
        snapshot_chunk_records: 301,
        detail_chunk_size: 53,
    };
    let diffed = diff_runs(&results, &previous, &current, Some("id"), &options).await;
    // Several spills and chunks really happened.
    assert!(current.len() > 20 * options.sort_buffer_records);
    assert_eq!(diffed.current.chunks as usize, current.len().div_ceil(301));
    assert_eq!(diffed.current.records as usize, current.len());

    let (expected, unchanged) = naive_diff(&previous, &current);
    let found: BTreeMap<String, String> = all_detail(&results, &diffed.summary, None, 500)
        .await
        .into_iter()
        .map(|entry| {
            (
                entry["key"].as_str().unwrap().to_owned(),
                entry["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(found, expected);
    assert_eq!(diffed.counts.unchanged, unchanged);
    let count = |kind: &str| expected.values().filter(|k| *k == kind).count() as u64;
    assert_eq!(diffed.counts.added, count("added"));
    assert_eq!(diffed.counts.removed, count("removed"));
    assert_eq!(diffed.counts.changed, count("changed"));
    assert!(diffed.counts.added > 0 && diffed.counts.removed > 0 && diffed.counts.changed > 0);

    // The objects live under the run and go with it.
    let changed = all_detail(&results, &diffed.summary, Some(ChangeKind::Changed), 500).await;
    assert!(!changed.is_empty());
    results.delete_run("run-b").await.unwrap();
    assert!(!dir.path().join("runs/run-b").exists());
}

#[tokio::test]
async fn a_byte_bound_spills_too_and_gives_the_same_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let results = ResultStore::local(dir.path()).unwrap();
    let (previous, current) = runs();
    let by_bytes = ChangeOptions {
        sort_buffer_records: usize::MAX,
        sort_buffer_bytes: 4096,
        snapshot_chunk_records: 1000,
        detail_chunk_size: 1000,
    };
    let small = diff_runs(&results, &previous, &current, Some("id"), &by_bytes).await;
    let other = tempfile::tempdir().unwrap();
    let results_one_spill = ResultStore::local(other.path()).unwrap();
    let whole = diff_runs(
        &results_one_spill,
        &previous,
        &current,
        Some("id"),
        &ChangeOptions {
            snapshot_chunk_records: 1000,
            ..ChangeOptions::default()
        },
    )
    .await;
    assert_eq!(small.counts, whole.counts);
    assert_eq!(small.current.chunks, whole.current.chunks);
    for index in 0..whole.current.chunks {
        let name = format!("{}/{index:06}.snap", whole.current.name);
        assert_eq!(
            results.get_change_object("run-b", &name).await.unwrap(),
            results_one_spill
                .get_change_object("run-b", &name)
                .await
                .unwrap()
        );
    }
}
