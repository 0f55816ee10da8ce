//! The outcome sweep: runs settled without their worker's finish (a lost worker's last
//! attempt failed by the queue) get their events once, through the same
//! [`deliveries_for_run`] as runs finished by a worker. Runs cancelled in the queue are
//! marked done with no event.

use selextract_spec::{Limits, TaskSpec, parse_task_input};
use selextract_store::{Run, Store, StoreError};

use crate::config::NotifyConfig;
use crate::document::{RunEventInput, deliveries_for_run};

/// Runs examined per sweep.
const SWEEP_BATCH: u32 = 100;

/// Records the outcome of each finished run whose outcome is not recorded yet: how many
/// were recorded by this call (another process may record some first; each run's events
/// are written once either way).
pub async fn sweep_outcomes(
    store: &Store,
    config: &NotifyConfig,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut recorded = 0;
    for run in store.runs_without_outcome(SWEEP_BATCH).await? {
        let deliveries = match run_spec(&run) {
            Some(spec) => {
                let task_name = match store.find_task(&run.user_id, &run.task_id).await? {
                    Some(task) => task.name,
                    None => spec.name.clone(),
                };
                let input = RunEventInput {
                    run: &run,
                    task_name: &task_name,
                    spec: &spec,
                    state: run.state,
                    reason: run.reason.as_deref().unwrap_or_default(),
                    error: run.error.as_deref(),
                    progress: &run.progress,
                    changes: None,
                };
                deliveries_for_run(&input, config, now_ms)
            }
            None => Vec::new(),
        };
        if store.record_outcome(&run.id, &deliveries, now_ms).await? {
            recorded += 1;
        }
    }
    Ok(recorded)
}

/// The run's spec as enqueued: canonical JSON, or one of the compatibility shapes (read
/// with the default limits). `None` when it cannot be read: such a run notifies nobody.
fn run_spec(run: &Run) -> Option<TaskSpec> {
    if let Ok(spec) = serde_json::from_value::<TaskSpec>(run.spec.clone()) {
        return Some(spec);
    }
    match parse_task_input(&run.spec, &Limits::default()) {
        Ok(input) => Some(input.spec.into_spec()),
        Err(errors) => {
            tracing::warn!(run = %run.id, %errors, "the run's spec cannot be read; no notifications");
            None
        }
    }
}
