//! Change detection of one monitor run, as a list of steps: snapshot this run, find (or
//! build) the previous completed run's snapshot, diff them, summarise.

use selextract_results::ResultStore;
use selextract_spec::TaskSpec;
use selextract_store::{Run, RunChanges, Store, StoreError};

use crate::diff::{DiffCounts, changed_fraction, diff_snapshots};
use crate::snapshot::{Entry, Snapshot, SnapshotReader, build_snapshot, snapshot_name};
use crate::{ChangeOptions, ChangesError};

/// Compares `run` (a completed run of a task with a `schedule`, being finished by the
/// caller) with the previous completed run of its task, writing the run's snapshot and
/// detail objects, and returns the summary for the caller to store with the run's end.
///
/// A monitor's first run has no previous run: every record is `added` and
/// `passed_threshold` is false, so the baseline never triggers a change alert.
pub async fn detect_changes(
    results: &ResultStore,
    store: &Store,
    run: &Run,
    spec: &TaskSpec,
    options: &ChangeOptions,
    now_ms: i64,
) -> Result<RunChanges, ChangesError> {
    let schedule = spec.schedule.as_ref().ok_or(ChangesError::NotAMonitor)?;
    let key_field = schedule.key_field.as_deref();
    let current = snapshot_run(results, store, run, key_field, options).await?;
    let previous = match store.previous_completed_run(run).await? {
        Some(previous) => {
            Some(previous_snapshot(results, store, &previous, key_field, options).await?)
        }
        None => None,
    };
    let counts = diff_against(results, &run.id, previous.as_ref(), &current, options).await?;
    let fraction = changed_fraction(&counts);
    let passed_threshold =
        passes_threshold(previous.is_some(), fraction, schedule.change_threshold);
    Ok(RunChanges {
        run_id: run.id.clone(),
        task_id: run.task_id.clone(),
        user_id: run.user_id.clone(),
        previous_run_id: previous.map(|snapshot| snapshot.run_id),
        key_field: key_field.map(str::to_owned),
        previous_records: counts.previous_records,
        records: counts.records,
        added: counts.added,
        removed: counts.removed,
        changed: counts.changed,
        unchanged: counts.unchanged,
        changed_fraction: fraction,
        passed_threshold,
        detail_items: counts.added + counts.removed + counts.changed,
        detail_chunk_size: options.detail_chunk_size.max(1),
        snapshot_chunks: current.chunks,
        created_at_ms: now_ms,
    })
}

/// A change passes the threshold when there was a previous run to compare with (the
/// baseline run never alerts), something changed, and the fraction reaches the threshold
/// (no threshold: any change).
fn passes_threshold(had_previous: bool, fraction: f64, threshold: Option<f64>) -> bool {
    had_previous && fraction > 0.0 && fraction >= threshold.unwrap_or(0.0)
}

/// The snapshot of a run of the user's task, from its committed pages in order.
async fn snapshot_run(
    results: &ResultStore,
    store: &Store,
    run: &Run,
    key_field: Option<&str>,
    options: &ChangeOptions,
) -> Result<Snapshot, ChangesError> {
    let owned = store
        .find_run(&run.user_id, &run.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("run {}", run.id)))?;
    let object_keys = store
        .run_pages(&owned)
        .await?
        .into_iter()
        .filter_map(|page| page.object_key)
        .collect();
    build_snapshot(results, &run.id, object_keys, key_field, options).await
}

/// The previous run's snapshot: the one stored with its summary when it was keyed the same
/// way, else built now (the run ran before the task became a monitor, or before its
/// `key_field` changed).
async fn previous_snapshot(
    results: &ResultStore,
    store: &Store,
    previous: &Run,
    key_field: Option<&str>,
    options: &ChangeOptions,
) -> Result<Snapshot, ChangesError> {
    if let Some(summary) = store.run_changes_any_user(&previous.id).await?
        && summary.key_field.as_deref() == key_field
    {
        return Ok(Snapshot {
            run_id: previous.id.clone(),
            name: snapshot_name(key_field),
            chunks: summary.snapshot_chunks,
            records: summary.records,
        });
    }
    snapshot_run(results, store, previous, key_field, options).await
}

async fn diff_against(
    results: &ResultStore,
    run_id: &str,
    previous: Option<&Snapshot>,
    current: &Snapshot,
    options: &ChangeOptions,
) -> Result<DiffCounts, ChangesError> {
    let mut current_reader = SnapshotReader::new(results, current.clone());
    match previous {
        Some(previous) => {
            let mut previous_reader = SnapshotReader::new(results, previous.clone());
            diff_snapshots(
                results,
                run_id,
                &mut previous_reader,
                &mut current_reader,
                options.detail_chunk_size,
            )
            .await
        }
        None => {
            let mut nothing = Vec::<Entry>::new().into_iter();
            diff_snapshots(
                results,
                run_id,
                &mut nothing,
                &mut current_reader,
                options.detail_chunk_size,
            )
            .await
        }
    }
}
