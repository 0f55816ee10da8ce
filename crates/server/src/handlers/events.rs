//! `GET /tasks/{id}/events`: Server-Sent Events for a task's latest run.
//!
//! The stream polls the run row instead of listening to the worker, so it works the same
//! whether the worker runs in this process or on another machine (no broker). Events: `state`
//! on every state change (and first sight of a run), `progress` when the counters move, `log`
//! per new log line, and `done` with the final run, after which the stream ends. A stream
//! that ends for any other reason says why in a last `end` event.
//!
//! A stream is a held resource, so it is bounded: it takes a slot under the per-user and
//! per-process caps (given back when the response body is dropped), it polls less often
//! while nothing changes and ends when a task without a run stays idle, and every second it
//! asks the store whether the key that opened it is still valid and the task still exists —
//! the 30 s key cache would let a revoked key watch on otherwise.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use selextract_store::{ApiKeyStanding, OwnedRun, Page, Progress, Run, RunState};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::auth::{Caller, Credential};
use crate::error::ApiError;
use crate::event_streams::{PollSchedule, StreamSlot};
use crate::handlers::tasks::find_task;
use crate::state::AppState;
use crate::time::now_ms;
use crate::views::{log_json, progress_json, run_json};

const LOG_BATCH: u32 = 100;
/// Settings beyond this are treated as this, so that adding them to an instant cannot
/// overflow (a year is "never" for a stream).
const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

pub(crate) async fn task_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    find_task(&state, &caller, &task_id).await?;
    let slot = state.event_streams.try_open(&caller.user_id)?;
    let (tx, events) = mpsc::channel(32);
    let watch = Watch {
        user_id: caller.user_id.clone(),
        credential: caller.credential.clone(),
        task_id,
        state,
    };
    tokio::spawn(watch_task(watch, tx));
    Ok(Sse::new(EventBody {
        events,
        slot: Some(slot),
    })
    .keep_alive(KeepAlive::default()))
}

/// The response body: the watcher's events, holding the stream's slot under the caps until
/// the stream ends or the body is dropped (the client went away), whichever comes first.
pub(crate) struct EventBody {
    events: mpsc::Receiver<Event>,
    slot: Option<StreamSlot>,
}

impl Stream for EventBody {
    type Item = Result<Event, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let body = self.get_mut();
        let next = body.events.poll_recv(cx);
        if let Poll::Ready(None) = next {
            body.slot = None;
        }
        next.map(|event| event.map(Ok))
    }
}

/// Who watches which task.
struct Watch {
    state: AppState,
    user_id: String,
    credential: Credential,
    task_id: String,
}

/// What the client has been told about the run being watched.
struct Seen {
    run_id: String,
    state: RunState,
    progress: Progress,
    log_lines: u64,
}

/// Why a stream ended without `done`; sent as the `end` event's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndReason {
    Idle,
    TaskDeleted,
    KeyRevoked,
    KeyExpired,
    AccountDisabled,
    Shutdown,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::TaskDeleted => "task_deleted",
            EndReason::KeyRevoked => "key_revoked",
            EndReason::KeyExpired => "key_expired",
            EndReason::AccountDisabled => "account_disabled",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// What one poll of the latest run found.
enum Polled {
    /// Something was sent.
    News,
    /// Nothing changed; `run_unfinished` when a run is queued or running.
    Quiet { run_unfinished: bool },
    /// The run ended and `done` was sent.
    Done,
}

/// Follows the task until its latest run ends, the client goes away, or the stream must end
/// for one of the [`EndReason`]s, which the client is then told.
async fn watch_task(watch: Watch, tx: mpsc::Sender<Event>) {
    if let Ok(Some(reason)) = follow_task(&watch, &tx).await {
        if matches!(reason, EndReason::KeyRevoked | EndReason::AccountDisabled) {
            // Let this process refuse the key at once, not only when its cache entry expires.
            if let Credential::ApiKey { key_id } = &watch.credential {
                watch.state.keys.evict_key(key_id);
            }
        }
        // Best effort: the client may be gone already.
        let _ = send(&tx, "end", json!({"reason": reason.as_str()})).await;
    }
}

/// Polls on the [`PollSchedule`] and checks the key on its own interval. `Ok(None)` after
/// `done`, `Ok(Some(reason))` when the stream must end early, `Err(Closed)` when the client
/// is gone.
async fn follow_task(watch: &Watch, tx: &mpsc::Sender<Event>) -> Result<Option<EndReason>, Closed> {
    let config = watch.state.config.event_streams;
    let idle_timeout = config.idle_timeout.min(LONGEST_WAIT);
    let key_check_interval = config
        .key_check_interval
        .clamp(Duration::from_millis(1), LONGEST_WAIT);
    let mut schedule = PollSchedule::new(&config);
    let mut seen: Option<Seen> = None;
    let mut last_news = Instant::now();
    let mut next_poll = last_news;
    // The request was just authenticated, so the first check can wait one interval.
    let mut next_check = last_news + key_check_interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_poll.min(next_check)) => {}
            () = watch.state.shutdown.cancelled() => return Ok(Some(EndReason::Shutdown)),
            () = tx.closed() => return Err(Closed),
        }
        let now = Instant::now();
        if now >= next_check {
            if let Some(reason) = check_key_and_task(watch).await {
                return Ok(Some(reason));
            }
            next_check = Instant::now() + key_check_interval;
        }
        if now < next_poll {
            continue;
        }
        let interval = match poll_latest_run(watch, &mut seen, tx).await? {
            Polled::Done => return Ok(None),
            Polled::News => {
                last_news = now;
                schedule.after_news()
            }
            Polled::Quiet { run_unfinished } => {
                if !run_unfinished && now.duration_since(last_news) >= idle_timeout {
                    return Ok(Some(EndReason::Idle));
                }
                schedule.after_quiet(run_unfinished)
            }
        };
        next_poll = Instant::now() + interval.min(LONGEST_WAIT);
        if seen.is_none() {
            // Wake up in time to end an idle stream, not up to one interval late.
            next_poll = next_poll.min(last_news + idle_timeout);
        }
    }
}

/// One read of the latest run, and whatever the client has not been told yet.
async fn poll_latest_run(
    watch: &Watch,
    seen: &mut Option<Seen>,
    tx: &mpsc::Sender<Event>,
) -> Result<Polled, Closed> {
    watch.state.event_streams.record_poll();
    match watch
        .state
        .store
        .latest_run(&watch.user_id, &watch.task_id)
        .await
    {
        Ok(Some(run)) => send_changes(&watch.state, &run, seen, tx).await,
        Ok(None) => Ok(Polled::Quiet {
            run_unfinished: false,
        }),
        Err(error) => {
            tracing::warn!(%error, "event stream could not read the run");
            // An outage is not idleness: keep the stream until the store answers again.
            Ok(Polled::Quiet {
                run_unfinished: true,
            })
        }
    }
}

/// Asks the store (not the key cache) whether the stream may go on.
async fn check_key_and_task(watch: &Watch) -> Option<EndReason> {
    let standing = match &watch.credential {
        Credential::ApiKey { key_id } => {
            watch
                .state
                .store
                .api_key_standing(key_id, &watch.task_id)
                .await
        }
        // A session or a JWT: its standing in the store, shaped like a key's, so the stream
        // ends the same way when the login ends.
        other => login_standing(watch, other).await,
    };
    match standing {
        Ok(standing) => end_reason(standing, now_ms()),
        Err(error) => {
            // The key was valid at the last check; an outage does not end the stream.
            tracing::warn!(%error, "event stream could not check its API key");
            None
        }
    }
}

/// The standing of a session or JWT family (ended ones read as revoked), its user and the
/// task.
async fn login_standing(
    watch: &Watch,
    credential: &Credential,
) -> Result<Option<ApiKeyStanding>, selextract_store::StoreError> {
    let store = &watch.state.store;
    let now = now_ms();
    let ended = match credential {
        Credential::Session { session_id } => store
            .find_session(session_id)
            .await?
            .is_none_or(|session| session.revoked_at_ms.is_some() || session.expires_at_ms <= now),
        Credential::Jwt { family_id } => store
            .refresh_family_standing(family_id)
            .await?
            .is_none_or(|standing| standing.revoked),
        Credential::ApiKey { .. } => false,
    };
    let user_disabled = store
        .find_user_by_id(&watch.user_id)
        .await?
        .is_none_or(|user| user.disabled);
    let task_exists = store
        .find_task(&watch.user_id, &watch.task_id)
        .await?
        .is_some();
    Ok(Some(ApiKeyStanding {
        revoked_at_ms: ended.then_some(now),
        expires_at_ms: None,
        user_disabled,
        task_exists,
    }))
}

fn end_reason(standing: Option<ApiKeyStanding>, now_ms: i64) -> Option<EndReason> {
    let Some(standing) = standing else {
        return Some(EndReason::KeyRevoked);
    };
    if standing.revoked_at_ms.is_some() {
        Some(EndReason::KeyRevoked)
    } else if standing
        .expires_at_ms
        .is_some_and(|expires| expires <= now_ms)
    {
        Some(EndReason::KeyExpired)
    } else if standing.user_disabled {
        Some(EndReason::AccountDisabled)
    } else if !standing.task_exists {
        Some(EndReason::TaskDeleted)
    } else {
        None
    }
}

/// The client is gone.
struct Closed;

/// Sends what changed since `seen`.
async fn send_changes(
    state: &AppState,
    run: &OwnedRun,
    seen: &mut Option<Seen>,
    tx: &mpsc::Sender<Event>,
) -> Result<Polled, Closed> {
    let mut news = false;
    let seen = match seen {
        // A newer run of the task replaces the one being watched.
        Some(current) if current.run_id == run.id => current,
        _ => {
            send(tx, "state", state_json(run)).await?;
            send(tx, "progress", progress_json(run)).await?;
            news = true;
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
        news = true;
    }
    if seen.progress != run.progress {
        send(tx, "progress", progress_json(run)).await?;
        seen.progress = run.progress.clone();
        news = true;
    }
    news |= send_new_logs(state, run, seen, tx).await?;
    if run.state.is_terminal() {
        send(tx, "done", run_json(run)).await?;
        return Ok(Polled::Done);
    }
    Ok(if news {
        Polled::News
    } else {
        Polled::Quiet {
            run_unfinished: true,
        }
    })
}

/// Sends the run's log lines the client has not seen; `Ok(true)` when there were any.
async fn send_new_logs(
    state: &AppState,
    run: &OwnedRun,
    seen: &mut Seen,
    tx: &mpsc::Sender<Event>,
) -> Result<bool, Closed> {
    let mut sent_any = false;
    loop {
        let page_number =
            u32::try_from(seen.log_lines / u64::from(LOG_BATCH) + 1).unwrap_or(u32::MAX);
        let already_on_page = usize::try_from(seen.log_lines % u64::from(LOG_BATCH)).unwrap_or(0);
        let lines = match state
            .store
            .list_run_logs(run, Page::new(page_number, LOG_BATCH))
            .await
        {
            Ok(lines) => lines,
            Err(error) => {
                tracing::warn!(%error, "event stream could not read run logs");
                return Ok(sent_any);
            }
        };
        let fresh: Vec<_> = lines.items.iter().skip(already_on_page).collect();
        if fresh.is_empty() {
            return Ok(sent_any);
        }
        for line in fresh {
            send(tx, "log", log_json(line)).await?;
            seen.log_lines += 1;
            sent_any = true;
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
