//! What the tasks working on one run share: the claimed run, its control flags, its
//! committed progress and its log buffer.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use selextract_store::{Progress, Run};
use tokio_util::sync::CancellationToken;

use crate::config::{WorkerConfig, WorkerDeps};
use crate::run_log::LogBuffer;

/// State of the whole worker, shared by its loop and all its runs.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) config: WorkerConfig,
    pub(crate) deps: WorkerDeps,
    /// Runs this worker finished (any terminal state), for the workers table.
    pub(crate) processed: AtomicU64,
    /// Runs being executed right now, for the workers table.
    pub(crate) active_runs: AtomicU32,
    pub(crate) started_at_ms: i64,
}

/// Why the engine of a run was stopped, set by whoever stops it. The engine sees only one
/// cancellation token; these flags tell the run what to do once it has stopped.
#[derive(Debug, Default)]
pub(crate) struct RunControl {
    engine: CancellationToken,
    user_cancelled: AtomicBool,
    lease_lost: AtomicBool,
    released: AtomicBool,
}

impl RunControl {
    /// The token the engine runs under.
    pub(crate) fn engine_token(&self) -> CancellationToken {
        self.engine.clone()
    }

    /// The user asked to cancel: stop fetching, keep what was fetched, end `cancelled`.
    pub(crate) fn cancel_by_user(&self) {
        self.user_cancelled.store(true, Ordering::SeqCst);
        self.engine.cancel();
    }

    /// Another worker owns the run now: stop, and neither commit nor finish anything more.
    pub(crate) fn lose_lease(&self) {
        self.lease_lost.store(true, Ordering::SeqCst);
        self.engine.cancel();
    }

    /// Shutdown outlasted the grace period: stop, and leave the run for the worker loop to
    /// put back in the queue.
    pub(crate) fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.engine.cancel();
    }

    pub(crate) fn is_user_cancelled(&self) -> bool {
        self.user_cancelled.load(Ordering::SeqCst)
    }

    pub(crate) fn is_lease_lost(&self) -> bool {
        self.lease_lost.load(Ordering::SeqCst)
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }
}

/// One claimed run being executed.
#[derive(Debug)]
pub(crate) struct RunContext {
    pub(crate) run: Run,
    pub(crate) worker: Arc<WorkerShared>,
    pub(crate) control: Arc<RunControl>,
    pub(crate) logs: LogBuffer,
    /// Counters of committed pages (plus the engine's count of known pages).
    progress: Mutex<Progress>,
    /// The task's mode (`http`, `browser`, `auto`) once the spec parsed, for metric labels.
    mode: OnceLock<&'static str>,
    pub(crate) started: Instant,
}

impl RunContext {
    pub(crate) fn new(run: Run, worker: Arc<WorkerShared>, control: Arc<RunControl>) -> Self {
        RunContext {
            run,
            worker,
            control,
            logs: LogBuffer::default(),
            progress: Mutex::new(Progress::default()),
            mode: OnceLock::new(),
            started: Instant::now(),
        }
    }

    pub(crate) fn worker_id(&self) -> &str {
        &self.worker.config.worker_id
    }

    pub(crate) fn progress(&self) -> Progress {
        self.progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn update_progress(&self, change: impl FnOnce(&mut Progress)) {
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut progress);
        // Known pages can never be fewer than the pages already finished either way.
        progress.pages_known = progress
            .pages_known
            .max(progress.pages_done + progress.pages_failed);
    }

    pub(crate) fn set_mode(&self, mode: &'static str) {
        let _ = self.mode.set(mode);
    }

    /// `unknown` until the spec parsed (a run whose spec no longer validates has no mode).
    pub(crate) fn mode(&self) -> &'static str {
        self.mode.get().copied().unwrap_or("unknown")
    }
}
