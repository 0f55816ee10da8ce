//! Deleting a task, a run or a whole account for real: the store deletes the rows in one
//! transaction and queues the runs' result objects (`result_object_deletions`); this module
//! then removes those objects from the results store. See the store's `deletion.rs` for the
//! crash-safe order.

use selextract_store::{DeletionReport, ObjectSweepReport, RunDeletion, StoreError};

use crate::error::ApiError;
use crate::state::AppState;
use crate::time::now_ms;

/// Deletes the user's task, its runs, pages, logs and result objects. `not_found` for a
/// missing task or another user's.
pub(crate) async fn delete_task(
    state: &AppState,
    user_id: &str,
    task_id: &str,
) -> Result<DeletionReport, ApiError> {
    let report = state
        .store
        .delete_task(user_id, task_id)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    Ok(remove_objects(state, report).await)
}

/// Deletes one finished run of the user's with its pages, logs and result objects. A
/// queued or running run is `run_active` (409): cancel it first.
pub(crate) async fn delete_run(
    state: &AppState,
    user_id: &str,
    run_id: &str,
) -> Result<DeletionReport, ApiError> {
    match state.store.delete_finished_run(user_id, run_id).await? {
        RunDeletion::NotFound => Err(ApiError::not_found("run")),
        RunDeletion::Active(run_state) => Err(ApiError::RunActive(format!(
            "the run is {run_state}; cancel it and delete it once it has finished"
        ))),
        RunDeletion::Deleted(report) => Ok(remove_objects(state, report).await),
    }
}

/// Deletes the user's account and everything in it: tasks, runs, pages, logs, result
/// objects, API keys, sessions, tokens. The ledger entries stay, anonymised. `not_found`
/// when there is no such user.
pub(crate) async fn delete_account(
    state: &AppState,
    user_id: &str,
) -> Result<DeletionReport, ApiError> {
    let report = state
        .store
        .delete_user_and_data(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(remove_objects(state, report).await)
}

/// Removes the result objects of every deleted run whose removal is due, these runs' among
/// them. The rows are gone already, so a failure here is not the request's failure: what
/// could not be removed stays queued and the next sweep (another deletion, a worker's
/// housekeeping) retries it.
async fn remove_objects(state: &AppState, mut report: DeletionReport) -> DeletionReport {
    match sweep_result_objects(state).await {
        Ok(sweep) => {
            let failed: std::collections::HashSet<&str> = sweep
                .failed
                .iter()
                .map(|(run_id, _)| run_id.as_str())
                .collect();
            let pending = report
                .run_ids
                .iter()
                .filter(|run_id| failed.contains(run_id.as_str()))
                .count();
            report.object_runs_pending = pending as u64;
            report.object_runs_removed = (report.run_ids.len() - pending) as u64;
        }
        Err(error) => {
            tracing::warn!(%error, "sweeping deleted runs' result objects failed; the next sweep retries");
            report.object_runs_pending = report.run_ids.len() as u64;
        }
    }
    report
}

/// One sweep of the result objects of deleted runs that are due now.
pub(crate) async fn sweep_result_objects(
    state: &AppState,
) -> Result<ObjectSweepReport, StoreError> {
    let results = state.results.clone();
    let sweep = state
        .store
        .sweep_result_objects(now_ms(), |run_id| {
            let results = results.clone();
            async move { results.delete_run(&run_id).await }
        })
        .await?;
    for (run_id, error) in &sweep.failed {
        tracing::warn!(
            run_id,
            error,
            "removing a deleted run's result objects failed; the next sweep retries"
        );
    }
    Ok(sweep)
}
