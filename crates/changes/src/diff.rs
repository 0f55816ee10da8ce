//! The streaming merge-join of two snapshots: counts, and one detail entry per record
//! added, removed or changed (with the fields that differ).

use std::cmp::Ordering;

use selextract_results::{Record, ResultStore};
use serde_json::{Value, json};

use crate::ChangesError;
use crate::detail::{ChangeKind, DetailWriter};
use crate::snapshot::{Entry, EntrySource};

/// What a comparison of two runs found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffCounts {
    pub previous_records: u64,
    pub records: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub unchanged: u64,
}

/// `(added + removed + changed) / max(previous_records, records, 1)`.
pub fn changed_fraction(counts: &DiffCounts) -> f64 {
    let touched = counts.added + counts.removed + counts.changed;
    let base = counts.previous_records.max(counts.records).max(1);
    touched as f64 / base as f64
}

/// Compares `previous` with `current` (both in snapshot order) and writes the detail of
/// `run_id` in chunks of `detail_chunk_size` entries per kind. Holds one entry per side
/// and one detail chunk per kind.
pub async fn diff_snapshots(
    results: &ResultStore,
    run_id: &str,
    previous: &mut impl EntrySource,
    current: &mut impl EntrySource,
    detail_chunk_size: u32,
) -> Result<DiffCounts, ChangesError> {
    let mut detail = DetailWriter::new(results, run_id, detail_chunk_size);
    let mut counts = DiffCounts::default();
    let mut old = previous.next_entry().await?;
    let mut new = current.next_entry().await?;
    loop {
        let order = match (&old, &new) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(old), Some(new)) => old.order(new),
        };
        match order {
            Ordering::Less => {
                if let Some(entry) = old.take() {
                    counts.previous_records += 1;
                    counts.removed += 1;
                    detail
                        .push(ChangeKind::Removed, removed_entry(&entry)?)
                        .await?;
                }
                old = previous.next_entry().await?;
            }
            Ordering::Greater => {
                if let Some(entry) = new.take() {
                    counts.records += 1;
                    counts.added += 1;
                    detail.push(ChangeKind::Added, added_entry(&entry)?).await?;
                }
                new = current.next_entry().await?;
            }
            Ordering::Equal => {
                if let (Some(before), Some(after)) = (old.take(), new.take()) {
                    counts.previous_records += 1;
                    counts.records += 1;
                    match changed_entry(&before, &after)? {
                        None => counts.unchanged += 1,
                        Some(entry) => {
                            counts.changed += 1;
                            detail.push(ChangeKind::Changed, entry).await?;
                        }
                    }
                }
                old = previous.next_entry().await?;
                new = current.next_entry().await?;
            }
        }
    }
    detail.finish().await?;
    Ok(counts)
}

fn parse_record(entry: &Entry) -> Result<Record, ChangesError> {
    serde_json::from_str(&entry.record).map_err(|error| ChangesError::Corrupt {
        object: format!("snapshot entry {}", entry.display_key()),
        reason: error.to_string(),
    })
}

fn added_entry(entry: &Entry) -> Result<Value, ChangesError> {
    Ok(json!({
        "kind": "added",
        "key": entry.display_key(),
        "record": parse_record(entry)?,
        "previous": null,
        "fields": [],
    }))
}

fn removed_entry(entry: &Entry) -> Result<Value, ChangesError> {
    Ok(json!({
        "kind": "removed",
        "key": entry.display_key(),
        "record": null,
        "previous": parse_record(entry)?,
        "fields": [],
    }))
}

/// `None` when the two records are equal. Equal canonical texts are equal records, so the
/// common case (unchanged) parses nothing.
fn changed_entry(before: &Entry, after: &Entry) -> Result<Option<Value>, ChangesError> {
    if before.record == after.record {
        return Ok(None);
    }
    let previous = parse_record(before)?;
    let record = parse_record(after)?;
    let fields = field_changes(&previous, &record);
    if fields.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({
        "kind": "changed",
        "key": after.display_key(),
        "record": record,
        "previous": previous,
        "fields": fields,
    })))
}

/// The top-level fields whose values differ, as `{"field", "old", "new"}`; a field present
/// in one record only has no `old` (added field) or no `new` (removed field), which is not
/// the same as a JSON `null`. Nested values are compared whole and reported whole. Fields
/// of the new record come first, in its order, then those only the old one had.
pub fn field_changes(previous: &Record, record: &Record) -> Vec<Value> {
    let mut changes = Vec::new();
    for (field, new) in record {
        match previous.get(field) {
            Some(old) if old == new => {}
            Some(old) => changes.push(json!({"field": field, "old": old, "new": new})),
            None => changes.push(json!({"field": field, "new": new})),
        }
    }
    for (field, old) in previous {
        if !record.contains_key(field) {
            changes.push(json!({"field": field, "old": old}));
        }
    }
    changes
}
