//! A run's outcome at its end (SPEC §5): the change summary of a monitor's completed run
//! and the notifications the run causes, computed before the run is finished so that
//! [`selextract_store::Store::finish_run_with_outcome`] writes them in the transaction that
//! ends the run. The lease is still renewed meanwhile (the heartbeat task runs until the
//! execution returns), so a diff of a million records cannot lose the run.
//!
//! Executing a run again after a crash gives the same outcome: change objects have fixed
//! names and are overwritten, and the summary and delivery inserts ignore a second copy.

use selextract_changes::{ChangeOptions, detect_changes, read_detail};
use selextract_notify::{
    MAX_SAMPLE_ENTRIES, RunEventInput, attach_change_sample, deliveries_for_run,
};
use selextract_spec::{TaskSpec, parse_task_input};
use selextract_store::{NewDelivery, Progress, RunChanges, RunState};
use serde_json::json;

use crate::context::RunContext;

/// What is written with the run's end.
#[derive(Debug, Default)]
pub(crate) struct RunOutcome {
    pub(crate) changes: Option<RunChanges>,
    pub(crate) deliveries: Vec<NewDelivery>,
}

/// The run's ending as the notifications describe it.
pub(crate) struct Ending<'a> {
    pub(crate) state: RunState,
    pub(crate) reason: &'a str,
    pub(crate) error: Option<&'a str>,
    pub(crate) progress: &'a Progress,
    pub(crate) now_ms: i64,
}

/// The change summary (a completed run of a task with a `schedule`) and the deliveries
/// (every terminal run whose task has `notify`). A spec that no longer parses has neither:
/// its notification targets cannot be known.
pub(crate) async fn run_outcome(ctx: &RunContext, ending: &Ending<'_>) -> RunOutcome {
    let Some(spec) = run_task_spec(ctx) else {
        return RunOutcome::default();
    };
    let changes = if ending.state == RunState::Completed && spec.schedule.is_some() {
        detect_run_changes(ctx, &spec, ending.now_ms).await
    } else {
        None
    };
    let task_name = task_name(ctx, &spec).await;
    let mut deliveries = deliveries_for_run(
        &RunEventInput {
            run: &ctx.run,
            task_name: &task_name,
            spec: &spec,
            state: ending.state,
            reason: ending.reason,
            error: ending.error,
            progress: ending.progress,
            changes: changes.as_ref(),
        },
        &ctx.worker.config.notify,
        ending.now_ms,
    );
    if let Some(changes) = changes.as_ref().filter(|changes| changes.passed_threshold) {
        attach_first_changes(ctx, changes, &mut deliveries).await;
    }
    RunOutcome {
        changes,
        deliveries,
    }
}

/// The first few changed records go into the `changes.detected` deliveries themselves, so
/// the webhook, the Slack text and the e-mail show what changed. Reading them may fail (the
/// result store is down): the deliveries then carry the counts and the link only.
async fn attach_first_changes(
    ctx: &RunContext,
    changes: &RunChanges,
    deliveries: &mut [NewDelivery],
) {
    match read_detail(
        &ctx.worker.deps.results,
        changes,
        None,
        0,
        MAX_SAMPLE_ENTRIES,
    )
    .await
    {
        Ok(page) => attach_change_sample(deliveries, &page.items),
        Err(error) => ctx.logs.warn(
            format!("reading the first changes for the notifications failed: {error}"),
            json!({}),
        ),
    }
}

fn run_task_spec(ctx: &RunContext) -> Option<TaskSpec> {
    parse_task_input(&ctx.run.spec, &ctx.worker.config.limits)
        .ok()
        .map(|input| input.spec.spec().clone())
}

/// Compares the run with the previous completed run of its task. A failure is logged on
/// the run, which still finishes (without a summary).
async fn detect_run_changes(ctx: &RunContext, spec: &TaskSpec, now_ms: i64) -> Option<RunChanges> {
    let deps = &ctx.worker.deps;
    match detect_changes(
        &deps.results,
        &deps.store,
        &ctx.run,
        spec,
        &ChangeOptions::default(),
        now_ms,
    )
    .await
    {
        Ok(changes) => {
            ctx.logs.info(
                format!(
                    "changes: {} added, {} removed, {} changed",
                    changes.added, changes.removed, changes.changed
                ),
                json!({"previous_run_id": changes.previous_run_id, "added": changes.added,
                       "removed": changes.removed, "changed": changes.changed,
                       "unchanged": changes.unchanged, "passed_threshold": changes.passed_threshold}),
            );
            Some(changes)
        }
        Err(error) => {
            tracing::warn!(run_id = %ctx.run.id, error = %error, "change detection failed");
            ctx.logs
                .error(format!("change detection failed: {error}"), json!({}));
            None
        }
    }
}

async fn task_name(ctx: &RunContext, spec: &TaskSpec) -> String {
    match ctx
        .worker
        .deps
        .store
        .find_task(&ctx.run.user_id, &ctx.run.task_id)
        .await
    {
        Ok(Some(task)) => task.name,
        _ => spec.name.clone(),
    }
}
