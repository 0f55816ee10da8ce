//! The diff of two runs: keys, field-level changes, duplicates, empty runs.

use selextract_changes::{ChangeKind, ChangeOptions, record_key};
use serde_json::json;

use crate::support::{all_detail, diff_runs, memory_store, record};

#[tokio::test]
async fn records_keyed_by_a_field_are_added_removed_or_changed_field_by_field() {
    let results = memory_store();
    let previous = vec![
        record(json!({"sku": "a", "price": 1, "name": "Apple"})),
        record(json!({"sku": "b", "price": 2, "name": "Banana"})),
        record(json!({"sku": "c", "price": 3, "name": "Cherry"})),
    ];
    let current = vec![
        record(json!({"sku": "d", "price": 4, "name": "Date"})),
        record(json!({"name": "Apple", "sku": "a", "price": 1})),
        record(json!({"sku": "b", "price": 5, "name": "Banana", "stock": 0})),
    ];
    let diffed = diff_runs(
        &results,
        &previous,
        &current,
        Some("sku"),
        &ChangeOptions::default(),
    )
    .await;
    let counts = diffed.counts;
    assert_eq!(
        (
            counts.added,
            counts.removed,
            counts.changed,
            counts.unchanged
        ),
        (1, 1, 1, 1)
    );
    assert_eq!((counts.previous_records, counts.records), (3, 3));
    assert!((diffed.summary.changed_fraction - 1.0).abs() < 1e-9);

    let changed = all_detail(&results, &diffed.summary, Some(ChangeKind::Changed), 10).await;
    assert_eq!(
        changed,
        vec![json!({
            "kind": "changed",
            "key": "\"b\"",
            "record": {"name": "Banana", "price": 5, "sku": "b", "stock": 0},
            "previous": {"name": "Banana", "price": 2, "sku": "b"},
            "fields": [
                {"field": "price", "old": 2, "new": 5},
                {"field": "stock", "new": 0},
            ],
        })]
    );
    let added = all_detail(&results, &diffed.summary, Some(ChangeKind::Added), 10).await;
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["key"], "\"d\"");
    assert_eq!(added[0]["record"]["name"], "Date");
    let removed = all_detail(&results, &diffed.summary, Some(ChangeKind::Removed), 10).await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["previous"]["name"], "Cherry");
    assert_eq!(removed[0]["record"], serde_json::Value::Null);

    // Unfiltered: added, then removed, then changed.
    let kinds: Vec<_> = all_detail(&results, &diffed.summary, None, 1)
        .await
        .into_iter()
        .map(|entry| entry["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["added", "removed", "changed"]);
}

#[tokio::test]
async fn without_a_key_field_an_edited_record_is_one_removed_and_one_added() {
    let results = memory_store();
    let previous = vec![record(json!({"a": 1})), record(json!({"a": 2}))];
    let current = vec![record(json!({"a": 1})), record(json!({"a": 3}))];
    let diffed = diff_runs(
        &results,
        &previous,
        &current,
        None,
        &ChangeOptions::default(),
    )
    .await;
    let counts = diffed.counts;
    assert_eq!(
        (
            counts.added,
            counts.removed,
            counts.changed,
            counts.unchanged
        ),
        (1, 1, 0, 1)
    );
    let added = all_detail(&results, &diffed.summary, Some(ChangeKind::Added), 10).await;
    assert_eq!(added[0]["key"], record_key(&record(json!({"a": 3})), None));
}

#[tokio::test]
async fn nested_values_are_compared_and_reported_whole() {
    let results = memory_store();
    let previous = vec![record(
        json!({"id": 1, "meta": {"tags": ["x", "y"], "n": {"d": 1}}, "same": [1, {"b": 2, "a": 1}]}),
    )];
    let current = vec![record(
        json!({"id": 1, "meta": {"tags": ["x", "z"], "n": {"d": 1}}, "same": [1, {"a": 1, "b": 2}]}),
    )];
    let diffed = diff_runs(
        &results,
        &previous,
        &current,
        Some("id"),
        &ChangeOptions::default(),
    )
    .await;
    let changed = all_detail(&results, &diffed.summary, Some(ChangeKind::Changed), 10).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["key"], "1");
    assert_eq!(
        changed[0]["fields"],
        json!([{"field": "meta", "old": {"n": {"d": 1}, "tags": ["x", "y"]}, "new": {"n": {"d": 1}, "tags": ["x", "z"]}}])
    );
}

#[tokio::test]
async fn records_with_different_field_sets_report_fields_present_on_one_side() {
    let results = memory_store();
    let previous = vec![record(json!({"id": "k", "gone": true, "kept": null}))];
    let current = vec![record(json!({"id": "k", "new": "yes", "kept": null}))];
    let diffed = diff_runs(
        &results,
        &previous,
        &current,
        Some("id"),
        &ChangeOptions::default(),
    )
    .await;
    let changed = all_detail(&results, &diffed.summary, Some(ChangeKind::Changed), 10).await;
    assert_eq!(
        changed[0]["fields"],
        json!([{"field": "new", "new": "yes"}, {"field": "gone", "old": true}])
    );
}

#[tokio::test]
async fn duplicate_keys_are_all_kept_and_paired_in_run_order() {
    let results = memory_store();
    let previous = vec![
        record(json!({"id": 1, "v": "first"})),
        record(json!({"id": 1, "v": "second"})),
        record(json!({"id": 2, "v": "x"})),
    ];
    let current = vec![
        record(json!({"id": 1, "v": "first"})),
        record(json!({"id": 2, "v": "x"})),
        record(json!({"id": 1, "v": "SECOND"})),
        record(json!({"id": 1, "v": "third"})),
    ];
    let diffed = diff_runs(
        &results,
        &previous,
        &current,
        Some("id"),
        &ChangeOptions::default(),
    )
    .await;
    let counts = diffed.counts;
    assert_eq!(
        (
            counts.added,
            counts.removed,
            counts.changed,
            counts.unchanged
        ),
        (1, 0, 1, 2)
    );
    assert_eq!(diffed.current.records, 4);
    let changed = all_detail(&results, &diffed.summary, Some(ChangeKind::Changed), 10).await;
    assert_eq!(changed[0]["key"], "1#2");
    assert_eq!(
        changed[0]["fields"],
        json!([{"field": "v", "old": "second", "new": "SECOND"}])
    );
    let added = all_detail(&results, &diffed.summary, Some(ChangeKind::Added), 10).await;
    assert_eq!(added[0]["key"], "1#3");
}

#[tokio::test]
async fn a_record_without_its_key_field_falls_back_to_its_content_hash() {
    let results = memory_store();
    let previous = vec![record(json!({"id": null, "v": 1})), record(json!({"v": 2}))];
    let current = vec![record(json!({"id": null, "v": 1})), record(json!({"v": 2}))];
    let diffed = diff_runs(
        &results,
        &previous,
        &current,
        Some("id"),
        &ChangeOptions::default(),
    )
    .await;
    assert_eq!(diffed.counts.unchanged, 2);
    assert_eq!(diffed.summary.detail_items, 0);
}

#[tokio::test]
async fn empty_runs_compare_as_nothing_changed_and_against_a_full_run_as_all_added_or_removed() {
    let results = memory_store();
    let none = diff_runs(&results, &[], &[], None, &ChangeOptions::default()).await;
    assert_eq!(none.counts, Default::default());
    assert_eq!((none.previous.chunks, none.current.chunks), (0, 0));
    assert_eq!(none.summary.changed_fraction, 0.0);

    let results = memory_store();
    let full = vec![record(json!({"a": 1})), record(json!({"a": 2}))];
    let emptied = diff_runs(&results, &full, &[], None, &ChangeOptions::default()).await;
    assert_eq!((emptied.counts.removed, emptied.counts.records), (2, 0));
    assert!((emptied.summary.changed_fraction - 1.0).abs() < 1e-9);
    let results = memory_store();
    let filled = diff_runs(&results, &[], &full, None, &ChangeOptions::default()).await;
    assert_eq!(filled.counts.added, 2);
}

#[tokio::test]
async fn detail_pages_follow_the_cursor_across_chunks_and_kinds() {
    let results = memory_store();
    let previous: Vec<_> = (0..30).map(|i| record(json!({"id": i, "v": 0}))).collect();
    let current: Vec<_> = (10..45)
        .map(|i| record(json!({"id": i, "v": if i % 2 == 0 { 1 } else { 0 }})))
        .collect();
    let options = ChangeOptions {
        detail_chunk_size: 4,
        ..ChangeOptions::default()
    };
    let diffed = diff_runs(&results, &previous, &current, Some("id"), &options).await;
    let counts = diffed.counts;
    assert_eq!((counts.added, counts.removed, counts.changed), (15, 10, 10));
    for page in [1, 3, 4, 7, 100] {
        let all = all_detail(&results, &diffed.summary, None, page).await;
        assert_eq!(all.len(), 35, "page size {page}");
        let changed = all_detail(&results, &diffed.summary, Some(ChangeKind::Changed), page).await;
        assert_eq!(changed.len(), 10);
        assert!(changed.iter().all(|entry| entry["kind"] == "changed"));
    }
}
