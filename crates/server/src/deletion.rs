//! Deleting a task, a run or a whole account for real: the store deletes the rows in one
//! transaction and queues the runs' result objects (`result_object_deletions`); this module
//! then removes those objects from the results store. See the store's `deletion.rs` for the
//! crash-safe order.

use selextract_billing::{ClientError, LemonSqueezyClient};
use selextract_store::{
    AccountDeletion, AuditEntry, DeletionReport, ObjectSweepReport, RunDeletion, StoreError,
};
use serde_json::json;

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
/// objects, API keys, sessions, tokens. The ledger entries stay, anonymised, and so do the
/// user's audit entries (the store anonymises them in the same transaction); one
/// `account_deleted` entry is then recorded under the anonymous id, with no address.
/// `not_found` when there is no such user; `conflict` (409) for the last enabled
/// administrator; `billing_provider_error` (502), with nothing deleted, when the user's
/// live Lemon Squeezy subscription could not be cancelled.
pub(crate) async fn delete_account(
    state: &AppState,
    user_id: &str,
) -> Result<DeletionReport, ApiError> {
    // Checked before the subscription is cancelled, so that a refused deletion cancels
    // nothing; the store checks again atomically with the deletion.
    if state.store.is_last_enabled_admin(user_id).await? {
        return Err(last_admin());
    }
    cancel_live_subscription(state, user_id).await?;
    let report = match state.store.delete_account(user_id).await? {
        AccountDeletion::NoSuchUser => return Err(ApiError::not_found("user")),
        // Only when another administrator was demoted or disabled in between: the
        // subscription is cancelled already (at the end of its period; the user can
        // resume it).
        AccountDeletion::LastEnabledAdmin => return Err(last_admin()),
        AccountDeletion::Deleted(report) => report,
    };
    record_deletion(state, &report).await;
    Ok(remove_objects(state, report).await)
}

/// The same words as the admin route's last-administrator guard.
fn last_admin() -> ApiError {
    ApiError::Conflict(
        "refusing to delete the last enabled administrator; promote another user first".to_owned(),
    )
}

/// Cancels the user's live Lemon Squeezy subscription before the account goes, so a
/// deleted account is never charged again; the provider's subscription (and its customer)
/// cannot be reached from the installation afterwards. A subscription already cancelled
/// or expired needs nothing. A provider that fails refuses the deletion (502); one that
/// says it has no such subscription has nothing left to cancel.
async fn cancel_live_subscription(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    let config = &state.config.plans.lemon_squeezy;
    if !config.enabled {
        return Ok(());
    }
    let live: Vec<_> = state
        .store
        .list_subscriptions(user_id)
        .await?
        .into_iter()
        .filter(|s| !s.cancelled && s.status != "cancelled" && s.status != "expired")
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    let client = LemonSqueezyClient::new(config).map_err(provider_failed)?;
    for subscription in live {
        match client.cancel_subscription(&subscription.id).await {
            Ok(_) => {}
            Err(ClientError::NotFound(_)) => tracing::warn!(
                subscription = subscription.id,
                "the billing provider has no such subscription; nothing to cancel"
            ),
            Err(error) => return Err(provider_failed(error)),
        }
    }
    Ok(())
}

fn provider_failed(error: ClientError) -> ApiError {
    tracing::warn!(%error, "cancelling a deleted account's subscription failed");
    ApiError::BillingProvider
}

/// The `account_deleted` audit entry, under the id the store gave the account's kept
/// entries: it names no e-mail and no address. A failure is logged, not the request's.
async fn record_deletion(state: &AppState, report: &DeletionReport) {
    let Some(anonymous) = report.anonymised_as.as_deref() else {
        return;
    };
    let entry = AuditEntry {
        user_id: Some(anonymous),
        actor: Some(anonymous),
        event: "account_deleted",
        ip: None,
        details: json!({"tasks": report.tasks, "runs": report.run_ids.len()}),
    };
    if let Err(error) = state.store.record_audit(&entry).await {
        tracing::warn!(%error, "recording the account_deleted audit entry failed");
    }
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
