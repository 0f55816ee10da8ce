//! The run as a whole: the state its chains share, one pagination chain per start URL with
//! `concurrency` chains at a time, the run's time limit, and the final summary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use selextract_extract::Extractor;
use selextract_spec::{Mode, TaskSpec, ValidatedSpec};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::chain::run_chain;
use crate::{
    EngineError, EngineEvent, EngineOptions, LogLevel, LogLine, PageResult, Progress, StopReason,
    Summary, millis,
};

/// Start running `spec`. Events arrive on the returned channel; the last one is
/// [`EngineEvent::Done`]. Cancelling `cancel` stops fetching promptly; pages already
/// fetched are still extracted and emitted. So does reaching `limits.max_run_seconds`.
pub fn start(
    spec: Arc<ValidatedSpec>,
    options: EngineOptions,
    cancel: CancellationToken,
) -> Result<mpsc::Receiver<EngineEvent>, EngineError> {
    let mode = spec.spec().mode;
    if mode == Mode::Browser && options.browser.is_none() {
        return Err(EngineError::BrowserUnavailable("browser"));
    }
    let (tx, rx) = mpsc::channel(256);
    let shared = Arc::new(Shared {
        extractor: Extractor::from_validated(&spec),
        politeness_scope: options
            .session_key
            .clone()
            .unwrap_or_else(anonymous_politeness_scope),
        started: Instant::now(),
        max_run_time: Duration::from_secs(spec.limits().max_run_seconds),
        spec,
        options,
        user_cancel: cancel.clone(),
        // Stops every chain and the fetches under way when the time runs out, without
        // looking like a user cancel.
        stop: cancel.child_token(),
        budget_exhausted: AtomicBool::new(false),
        time_limit_reached: AtomicBool::new(false),
        progress: Mutex::new(Progress::default()),
        tx,
    });
    tokio::spawn(drive(shared));
    Ok(rx)
}

/// What every chain of one run shares.
pub(crate) struct Shared {
    pub(crate) spec: Arc<ValidatedSpec>,
    pub(crate) extractor: Extractor,
    pub(crate) options: EngineOptions,
    /// Whose pacing the task's `rate_limit` is: the session key (the run id) when the caller
    /// gave one, else a scope of this engine run alone, so that one preview's delay never
    /// holds back another user's preview of the same host.
    pub(crate) politeness_scope: String,
    /// Tokio's clock, so that tests with paused time see the time limit deterministically.
    started: Instant,
    max_run_time: Duration,
    user_cancel: CancellationToken,
    /// Cancelled by the user's cancel or the time limit: fetches under way are abandoned.
    pub(crate) stop: CancellationToken,
    budget_exhausted: AtomicBool,
    time_limit_reached: AtomicBool,
    progress: Mutex<Progress>,
    tx: mpsc::Sender<EngineEvent>,
}

impl Shared {
    pub(crate) fn task(&self) -> &TaskSpec {
        self.spec.spec()
    }

    fn progress(&self) -> Progress {
        match self.progress.lock() {
            Ok(p) => *p,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    pub(crate) fn update_progress(&self, f: impl FnOnce(&mut Progress)) -> Progress {
        let mut guard = match self.progress.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard);
        *guard
    }

    pub(crate) async fn log(&self, level: LogLevel, message: String, fields: serde_json::Value) {
        let _ = self
            .tx
            .send(EngineEvent::Log(LogLine {
                level,
                message,
                fields,
            }))
            .await;
    }

    pub(crate) async fn emit_page(&self, page: PageResult) {
        let failed = !page.outcome.is_ok();
        let records = page.records.len() as u64;
        let dropped = page
            .diagnostics
            .as_ref()
            .map_or(0, |d| d.records_dropped_missing_required as u64);
        let cu = page.compute_units;
        let progress = self.update_progress(|p| {
            p.pages_done += 1;
            if failed {
                p.pages_failed += 1;
            }
            p.records += records;
            p.records_dropped += dropped;
            p.compute_units += cu;
        });
        let _ = self.tx.send(EngineEvent::Page(Box::new(page))).await;
        let _ = self.tx.send(EngineEvent::Progress(progress)).await;
    }

    /// Stops the run from starting further fetches because a reservation was refused.
    /// Fetches already under way keep going: their units are reserved, so their pages are
    /// paid for and delivered. Returns whether this call was the first, so the reason is
    /// logged once.
    pub(crate) fn exhaust_budget(&self) -> bool {
        !self.budget_exhausted.swap(true, Ordering::SeqCst)
    }

    /// Whether the run may start another fetch: not stopped, budget not exhausted, and
    /// within its time limit (which, once passed, stops the run).
    pub(crate) async fn may_fetch(&self) -> bool {
        if self.stop.is_cancelled() || self.budget_exhausted.load(Ordering::SeqCst) {
            return false;
        }
        if self.started.elapsed() >= self.max_run_time {
            self.reach_time_limit().await;
            return false;
        }
        true
    }

    /// Stops the run for its time limit, unless something else stopped it first.
    async fn reach_time_limit(&self) {
        if self.stop.is_cancelled() || self.time_limit_reached.swap(true, Ordering::SeqCst) {
            return;
        }
        self.stop.cancel();
        let seconds = self.max_run_time.as_secs();
        self.log(
            LogLevel::Warn,
            format!("the run reached its time limit of {seconds} s; fetching stops"),
            serde_json::json!({"max_run_seconds": seconds}),
        )
        .await;
    }

    fn stop_reason(&self) -> StopReason {
        if self.budget_exhausted.load(Ordering::SeqCst) {
            StopReason::BudgetExhausted
        } else if self.user_cancel.is_cancelled() {
            StopReason::Cancelled
        } else if self.time_limit_reached.load(Ordering::SeqCst) {
            StopReason::TimeLimit
        } else {
            StopReason::Finished
        }
    }
}

async fn drive(shared: Arc<Shared>) {
    let start_urls: Vec<Url> = shared.spec.start_urls().to_vec();
    shared.update_progress(|p| p.pages_known = start_urls.len() as u64);
    let concurrency = shared.options.concurrency.max(1);
    let chains = futures::stream::iter(start_urls.into_iter().enumerate())
        .map(|(index, url)| {
            run_chain(
                shared.clone(),
                u32::try_from(index).unwrap_or(u32::MAX),
                url,
            )
        })
        .buffer_unordered(concurrency)
        .for_each(|()| async {});
    tokio::pin!(chains);
    // `sleep` saturates a deadline past the clock's range to "far future", so even an
    // absurd `max_run_seconds` is safe.
    let time_limit = tokio::time::sleep(shared.max_run_time);
    tokio::select! {
        // Chains that end at the very moment the time runs out have not been stopped by it.
        biased;
        () = &mut chains => {}
        () = time_limit => {
            shared.reach_time_limit().await;
            // Fetches in flight end as cancelled; pages already fetched are still
            // extracted and emitted by their chains.
            chains.await;
        }
    }
    let summary = Summary {
        progress: shared.progress(),
        stop: shared.stop_reason(),
        elapsed_ms: millis(shared.started.elapsed()),
    };
    let _ = shared.tx.send(EngineEvent::Done(summary)).await;
}

/// A politeness scope unique to one engine run of this process (and, through the process id,
/// distinct from other processes sharing Redis).
fn anonymous_politeness_scope() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("anonymous-{}-{n}", std::process::id())
}
