//! Executing one claimed run, as a list of named steps: parse the spec snapshot, load what
//! an earlier attempt committed, start the engine with the plan's budget, commit each page
//! (records first, then the page row and its charge), and settle the run's final state.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context as _;
use selextract_engine::{EngineEvent, EngineOptions, Summary, Verdict};
use selextract_spec::{Mode, ValidatedSpec, parse_task_input};
use selextract_store::RunState;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::budget::budget_for_plan;
use crate::context::{RunContext, RunControl, WorkerShared};
use crate::lease::keep_lease;
use crate::metrics::record_finished_run;
use crate::outcome::{Ending, run_outcome};
use crate::pages::{PageCommitted, commit_engine_page, load_committed_pages};
use crate::retry::retry_while_unavailable;
use crate::time::now_ms;

/// How the work on a run ended, for the worker loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunEnd {
    /// This worker finished the run in a terminal state.
    Finished(RunState),
    /// The lease was lost; the run belongs to another worker (or was requeued).
    Abandoned,
    /// Shutdown stopped the run; the worker loop puts it back in the queue.
    Released,
}

/// Executes `run` to its end and never fails: an error or a panic inside the execution is
/// recorded as the run's failure (`failed` / `worker_error`).
pub(crate) async fn supervise_run(
    worker: Arc<WorkerShared>,
    run: selextract_store::Run,
    control: Arc<RunControl>,
) -> RunEnd {
    let ctx = Arc::new(RunContext::new(run, worker, control));
    let stop_heartbeat = CancellationToken::new();
    let heartbeat = AbortOnDrop(tokio::spawn(keep_lease(
        ctx.clone(),
        stop_heartbeat.clone(),
    )));
    let execution = AbortOnDrop(tokio::spawn(execute_run(ctx.clone())));
    let outcome = execution.join().await;
    stop_heartbeat.cancel();
    let _ = heartbeat.join().await;
    let end = match outcome {
        Ok(Ok(end)) => end,
        Ok(Err(error)) => record_worker_error(&ctx, format!("{error:#}")).await,
        Err(join_error) => record_worker_error(&ctx, describe_join_error(join_error)).await,
    };
    ctx.logs.flush(&ctx.worker.deps.store, &ctx.run.id).await;
    end
}

/// The steps of one execution.
async fn execute_run(ctx: Arc<RunContext>) -> anyhow::Result<RunEnd> {
    log_claim(&ctx);
    let spec = match parse_run_spec(&ctx) {
        Ok(spec) => spec,
        Err(message) => {
            return finish(&ctx, RunState::Failed, "invalid_spec", Some(&message)).await;
        }
    };
    ctx.set_mode(mode_label(spec.spec().mode));
    let committed = load_committed_pages(&ctx).await?;
    let options = engine_options(&ctx, committed.charged).await?;
    if ctx.run.cancel_requested {
        // Cancelled before this attempt started (the previous worker was lost meanwhile).
        ctx.control.cancel_by_user();
    }
    // Whatever ends this function (return, error, panic, abort) stops the engine too, so an
    // abandoned engine never keeps fetching into a closed channel.
    let _stop_engine = ctx.control.engine_token().drop_guard();
    let events = match selextract_engine::start(Arc::new(spec), options, ctx.control.engine_token())
    {
        Ok(events) => events,
        Err(error) => {
            let message = error.to_string();
            return finish(
                &ctx,
                RunState::Failed,
                "browser_unavailable",
                Some(&message),
            )
            .await;
        }
    };
    let Some(summary) = consume_engine_events(&ctx, events, &committed.keys).await? else {
        return Ok(abandoned_or_released(&ctx));
    };
    settle_run(&ctx, &summary).await
}

fn log_claim(ctx: &RunContext) {
    let run = &ctx.run;
    ctx.logs.info(
        format!("claimed by worker {} (attempt {} of {})", ctx.worker_id(), run.attempt, run.max_attempts),
        json!({"worker": ctx.worker_id(), "attempt": run.attempt, "max_attempts": run.max_attempts}),
    );
    tracing::info!(run_id = %run.id, attempt = run.attempt, "run claimed");
}

/// The spec snapshot taken at enqueue, validated again against the installation's
/// configured limits (the ones the API checked): limits or the spec format may have changed
/// since, and the engine only takes a [`ValidatedSpec`].
fn parse_run_spec(ctx: &RunContext) -> Result<ValidatedSpec, String> {
    match parse_task_input(&ctx.run.spec, &ctx.worker.config.limits) {
        Ok(input) => Ok(input.spec),
        Err(errors) => {
            let message = format!("the run's task spec no longer validates: {errors}");
            ctx.logs
                .error(message.clone(), json!({"errors": errors.0.len()}));
            Err(message)
        }
    }
}

fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Http => "http",
        Mode::Browser => "browser",
        Mode::Auto => "auto",
    }
}

/// The engine's options for this run: the process's fetchers, the per-run page
/// concurrency, the compute rates, the run id as sticky-proxy session and the plan's budget.
async fn engine_options(ctx: &RunContext, already_charged: u64) -> anyhow::Result<EngineOptions> {
    let worker = &ctx.worker;
    let store = &worker.deps.store;
    let user = retry_while_unavailable(ctx, "reading the run's user", || {
        store.find_user_by_id(&ctx.run.user_id)
    })
    .await
    .context("reading the run's user")?
    .with_context(|| format!("the run's user {} does not exist", ctx.run.user_id))?;
    let (_, plan) = worker.config.plans.plan_for(&user.plan);
    let balance = if plan.monthly_compute_units.is_some() {
        retry_while_unavailable(ctx, "reading the compute-unit balance", || {
            store.compute_unit_balance(&user.id)
        })
        .await
        .context("reading the compute-unit balance")?
    } else {
        0
    };
    let mut options = EngineOptions::new(worker.deps.http.clone());
    options.browser = worker.deps.browser.clone();
    options.concurrency = worker.config.engine_concurrency.max(1);
    options.rates = worker.config.rates;
    options.session_key = Some(ctx.run.id.clone());
    options.budget = budget_for_plan(&plan, balance, already_charged);
    Ok(options)
}

/// Handles engine events until the summary. `None` when the run was abandoned (lease lost)
/// or released (shutdown) before the engine finished.
async fn consume_engine_events(
    ctx: &RunContext,
    mut events: mpsc::Receiver<EngineEvent>,
    committed: &HashSet<String>,
) -> anyhow::Result<Option<Summary>> {
    while let Some(event) = events.recv().await {
        if ctx.control.is_lease_lost() {
            return Ok(None);
        }
        match event {
            EngineEvent::Page(page) => {
                if commit_engine_page(ctx, committed, *page).await? == PageCommitted::LeaseLost {
                    ctx.control.lose_lease();
                    return Ok(None);
                }
            }
            EngineEvent::Progress(engine_progress) => {
                ctx.update_progress(|progress| {
                    progress.pages_known = progress.pages_known.max(engine_progress.pages_known);
                });
            }
            EngineEvent::Log(line) => ctx
                .logs
                .push(line.level.as_str(), line.message, line.fields),
            EngineEvent::Done(summary) => return Ok(Some(summary)),
        }
    }
    anyhow::bail!("the engine stopped without a summary")
}

fn abandoned_or_released(ctx: &RunContext) -> RunEnd {
    if ctx.control.is_released() {
        RunEnd::Released
    } else {
        RunEnd::Abandoned
    }
}

/// The run's terminal state from the engine's summary and the reason it stopped.
async fn settle_run(ctx: &RunContext, summary: &Summary) -> anyhow::Result<RunEnd> {
    if ctx.control.is_released() || ctx.control.is_lease_lost() {
        return Ok(abandoned_or_released(ctx));
    }
    let (state, reason) = final_state(summary, ctx.control.is_user_cancelled());
    finish(ctx, state, reason, None).await
}

/// A user's cancel wins over how the engine happened to stop (the engine may have finished
/// its last page just as the cancel arrived). Otherwise the engine's verdict
/// ([`Summary::verdict`]) stands: running out of compute units or time ends `partial` when
/// some page succeeded, and `failed` when none did.
pub(crate) fn final_state(summary: &Summary, user_cancelled: bool) -> (RunState, &'static str) {
    if user_cancelled {
        return (RunState::Cancelled, "cancelled_by_user");
    }
    let verdict = summary.verdict();
    let state = match verdict {
        Verdict::Completed => RunState::Completed,
        Verdict::Partial(_) => RunState::Partial,
        Verdict::Failed(_) => RunState::Failed,
        Verdict::Cancelled => RunState::Cancelled,
    };
    (state, verdict.reason().as_str())
}

/// Writes the final log line and finishes the run with its outcome (change summary,
/// notifications), if this worker still holds its lease.
async fn finish(
    ctx: &RunContext,
    state: RunState,
    reason: &str,
    error: Option<&str>,
) -> anyhow::Result<RunEnd> {
    let progress = ctx.progress();
    ctx.logs.info(
        format!("finished: {state} ({reason})"),
        json!({"state": state.as_str(), "reason": reason, "pages_done": progress.pages_done,
               "pages_failed": progress.pages_failed, "records": progress.records,
               "compute_units": progress.compute_units}),
    );
    let store = &ctx.worker.deps.store;
    let ending = Ending {
        state,
        reason,
        error,
        progress: &progress,
        now_ms: now_ms(),
    };
    let outcome = run_outcome(ctx, &ending).await;
    ctx.logs.flush(store, &ctx.run.id).await;
    let finished = retry_while_unavailable(ctx, "finishing the run", || {
        store.finish_run_with_outcome(
            &ctx.run.id,
            ctx.worker_id(),
            state,
            reason,
            error,
            &progress,
            ending.now_ms,
            outcome.changes.as_ref(),
            &outcome.deliveries,
        )
    })
    .await
    .context("finishing the run")?;
    if !finished {
        ctx.logs.warn(
            "the lease was lost before the run could be finished",
            json!({}),
        );
        return Ok(RunEnd::Abandoned);
    }
    record_finished_run(state, ctx.mode(), ctx.started.elapsed());
    tracing::info!(run_id = %ctx.run.id, state = state.as_str(), reason, "run finished");
    Ok(RunEnd::Finished(state))
}

/// Records an execution error or panic as the run's failure, unless the run was already
/// handed to someone else (lease lost) or is being released by shutdown.
async fn record_worker_error(ctx: &RunContext, message: String) -> RunEnd {
    if ctx.control.is_released() || ctx.control.is_lease_lost() {
        return abandoned_or_released(ctx);
    }
    tracing::error!(run_id = %ctx.run.id, error = %message, "run execution failed");
    ctx.logs
        .error(format!("worker error: {message}"), json!({}));
    match finish(ctx, RunState::Failed, "worker_error", Some(&message)).await {
        Ok(end) => end,
        Err(error) => {
            // The database is unreachable too; the lease will expire and the run will be
            // retried by whichever worker claims it next.
            tracing::error!(run_id = %ctx.run.id, error = %format!("{error:#}"), "recording the failure failed");
            RunEnd::Abandoned
        }
    }
}

fn describe_join_error(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return "the run's task was cancelled".to_owned();
    }
    let payload = error.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned());
    format!("panic: {text}")
}

/// A spawned task that is aborted when its handle is dropped, so that aborting a run's
/// supervisor (shutdown) also stops the tasks it started.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use selextract_engine::{Progress, StopReason};

    use super::*;

    fn summary(stop: StopReason, pages_done: u64, pages_failed: u64) -> Summary {
        Summary {
            progress: Progress {
                pages_done,
                pages_failed,
                ..Progress::default()
            },
            stop,
            elapsed_ms: 1,
        }
    }

    #[test]
    fn a_user_cancel_wins_even_when_the_engine_had_just_finished() {
        let finished = summary(StopReason::Finished, 3, 0);
        assert_eq!(
            final_state(&finished, true),
            (RunState::Cancelled, "cancelled_by_user")
        );
        assert_eq!(final_state(&finished, false), (RunState::Completed, "ok"));
    }

    #[test]
    fn an_exhausted_budget_ends_partial_when_some_page_succeeded() {
        let exhausted = summary(StopReason::BudgetExhausted, 3, 0);
        assert_eq!(
            final_state(&exhausted, false),
            (RunState::Partial, "insufficient_compute_units")
        );
        let nothing = summary(StopReason::BudgetExhausted, 0, 0);
        assert_eq!(
            final_state(&nothing, false),
            (RunState::Failed, "insufficient_compute_units")
        );
    }

    #[test]
    fn a_time_limit_ends_partial_when_some_page_succeeded_and_failed_otherwise() {
        assert_eq!(
            final_state(&summary(StopReason::TimeLimit, 2, 0), false),
            (RunState::Partial, "time_limit")
        );
        assert_eq!(
            final_state(&summary(StopReason::TimeLimit, 1, 1), false),
            (RunState::Failed, "time_limit")
        );
    }

    #[test]
    fn failed_pages_make_a_run_partial_or_failed() {
        assert_eq!(
            final_state(&summary(StopReason::Finished, 3, 1), false),
            (RunState::Partial, "fetch_errors")
        );
        assert_eq!(
            final_state(&summary(StopReason::Finished, 2, 2), false),
            (RunState::Failed, "fetch_errors")
        );
    }
}
