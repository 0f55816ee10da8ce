//! `GET /tasks/{id}/events`: Server-Sent Events for a task's latest run.
//!
//! The stream polls the run row every 250 ms instead of listening to the worker, so it works
//! the same whether the worker runs in this process or on another machine (no broker).
//! Events: `state` on every state change (and first sight of a run), `progress` when the
//! counters move, `log` per new log line, and `done` with the final run, after which the
//! stream ends.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use futures::StreamExt;
use selextract_store::{Page, Progress, Run, RunState};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::tasks::find_task;
use crate::state::AppState;
use crate::views::{log_json, progress_json, run_json};

const POLL_INTERVAL: Duration = Duration::from_millis(250);
const LOG_BATCH: u32 = 100;

pub(crate) async fn task_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    find_task(&state, &caller, &task_id).await?;
    let (tx, mut rx) = mpsc::channel(32);
    tokio::spawn(watch_task(state, caller.user_id.clone(), task_id, tx));
    let events = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// What the client has been told about the run being watched.
struct Seen {
    run_id: String,
    state: RunState,
    progress: Progress,
    log_lines: u64,
}

/// Polls until the latest run ends, the client goes away or the server shuts down.
async fn watch_task(state: AppState, user_id: String, task_id: String, tx: mpsc::Sender<Event>) {
    let mut seen: Option<Seen> = None;
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = state.shutdown.cancelled() => return,
            () = tx.closed() => return,
        }
        let run = match state.store.latest_run(&user_id, &task_id).await {
            Ok(Some(run)) => run,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, "event stream could not read the run");
                continue;
            }
        };
        match send_changes(&state, &run, &mut seen, &tx).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(Closed) => return,
        }
    }
}

/// The client is gone.
struct Closed;

/// Sends what changed since `seen`; `Ok(true)` once the run is over and `done` was sent.
async fn send_changes(
    state: &AppState,
    run: &Run,
    seen: &mut Option<Seen>,
    tx: &mpsc::Sender<Event>,
) -> Result<bool, Closed> {
    let seen = match seen {
        // A newer run of the task replaces the one being watched.
        Some(current) if current.run_id == run.id => current,
        _ => {
            send(tx, "state", state_json(run)).await?;
            send(tx, "progress", progress_json(run)).await?;
            seen.insert(Seen {
                run_id: run.id.clone(),
                state: run.state,
                progress: run.progress.clone(),
                log_lines: 0,
            })
        }
    };
    if seen.state != run.state {
        send(tx, "state", state_json(run)).await?;
        seen.state = run.state;
    }
    if seen.progress != run.progress {
        send(tx, "progress", progress_json(run)).await?;
        seen.progress = run.progress.clone();
    }
    send_new_logs(state, run, seen, tx).await?;
    if run.state.is_terminal() {
        send(tx, "done", run_json(run)).await?;
        return Ok(true);
    }
    Ok(false)
}

async fn send_new_logs(
    state: &AppState,
    run: &Run,
    seen: &mut Seen,
    tx: &mpsc::Sender<Event>,
) -> Result<(), Closed> {
    loop {
        let page_number =
            u32::try_from(seen.log_lines / u64::from(LOG_BATCH) + 1).unwrap_or(u32::MAX);
        let already_on_page = usize::try_from(seen.log_lines % u64::from(LOG_BATCH)).unwrap_or(0);
        let lines = match state
            .store
            .list_run_logs(&run.id, Page::new(page_number, LOG_BATCH))
            .await
        {
            Ok(lines) => lines,
            Err(error) => {
                tracing::warn!(%error, "event stream could not read run logs");
                return Ok(());
            }
        };
        let fresh: Vec<_> = lines.items.iter().skip(already_on_page).collect();
        if fresh.is_empty() {
            return Ok(());
        }
        for line in fresh {
            send(tx, "log", log_json(line)).await?;
            seen.log_lines += 1;
        }
    }
}

fn state_json(run: &Run) -> Value {
    json!({"run_id": run.id, "state": run.state.as_str(), "reason": run.reason})
}

async fn send(tx: &mpsc::Sender<Event>, name: &'static str, data: Value) -> Result<(), Closed> {
    tx.send(Event::default().event(name).data(data.to_string()))
        .await
        .map_err(|_| Closed)
}
