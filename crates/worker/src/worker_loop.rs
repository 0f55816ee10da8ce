//! The worker's loop: keep the worker row alive, bring back runs whose worker was lost,
//! claim while below the concurrency, wait for work or a free slot, and on shutdown let
//! current runs finish within the grace period, release the rest, and deregister.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use selextract_store::{Run, WorkerHeartbeat};
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{WorkerConfig, WorkerDeps};
use crate::context::{RunControl, WorkerShared};
use crate::execute::{RunEnd, supervise_run};
use crate::time::now_ms;

/// How often the worker row's heartbeat is written (`selextract status` shows its age).
const WORKER_HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// After the grace period, how long released runs get to stop their engines and return
/// before their tasks are aborted.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Claims and executes runs until `shutdown` is cancelled; then stops claiming, lets current
/// runs finish within the grace period, releases (re-queues) those still running, and
/// deregisters. Fails only when the worker cannot register or deregister (database down);
/// errors of single runs are recorded on the runs.
pub async fn run_worker(
    config: WorkerConfig,
    deps: WorkerDeps,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let worker = Arc::new(WorkerShared {
        config,
        deps,
        processed: AtomicU64::new(0),
        active_runs: AtomicU32::new(0),
        started_at_ms: now_ms(),
    });
    write_worker_heartbeat(&worker)
        .await
        .context("registering the worker")?;
    tracing::info!(worker_id = %worker.config.worker_id, concurrency = worker.config.concurrency, "worker started");
    let stop_heartbeat = CancellationToken::new();
    let heartbeat = tokio::spawn(keep_worker_row_alive(
        worker.clone(),
        stop_heartbeat.clone(),
    ));

    let mut active = ActiveRuns::default();
    claim_until_shutdown(&worker, &mut active, &shutdown).await;
    drain_active_runs(&worker, &mut active).await;

    stop_heartbeat.cancel();
    let _ = heartbeat.await;
    worker
        .deps
        .store
        .remove_worker(&worker.config.worker_id)
        .await
        .context("deregistering the worker")?;
    tracing::info!(worker_id = %worker.config.worker_id, "worker stopped");
    Ok(())
}

/// The runs this worker executes, each in its own task.
#[derive(Default)]
struct ActiveRuns {
    tasks: JoinSet<RunEnd>,
    by_task: HashMap<Id, (String, Arc<RunControl>)>,
}

impl ActiveRuns {
    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn start(&mut self, worker: &Arc<WorkerShared>, run: Run) {
        let control = Arc::new(RunControl::default());
        let run_id = run.id.clone();
        let handle = self
            .tasks
            .spawn(supervise_run(worker.clone(), run, control.clone()));
        self.by_task.insert(handle.id(), (run_id, control));
        worker
            .active_runs
            .store(count(self.tasks.len()), Ordering::SeqCst);
    }

    /// Books a run task that ended. Returns the run id when the run must be put back in the
    /// queue (released by shutdown, or its task was aborted before it could settle).
    fn on_joined(
        &mut self,
        worker: &WorkerShared,
        joined: Result<(Id, RunEnd), JoinError>,
    ) -> Option<String> {
        let (id, end) = match joined {
            Ok((id, end)) => (id, Some(end)),
            Err(error) => (error.id(), None),
        };
        worker
            .active_runs
            .store(count(self.tasks.len()), Ordering::SeqCst);
        let (run_id, control) = self.by_task.remove(&id)?;
        match end {
            Some(RunEnd::Finished(_)) => {
                worker.processed.fetch_add(1, Ordering::SeqCst);
                None
            }
            Some(RunEnd::Abandoned) => None,
            Some(RunEnd::Released) => Some(run_id),
            None if control.is_released() => Some(run_id),
            None => {
                // The supervisor catches everything a run does, so this is a bug in it; the
                // run's lease expires and another worker (or this one) retries it.
                tracing::error!(%run_id, "a run supervisor task failed");
                None
            }
        }
    }

    fn release_all(&self) {
        for (_, control) in self.by_task.values() {
            control.release();
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Claims until shutdown, keeping at most `concurrency` runs active.
async fn claim_until_shutdown(
    worker: &Arc<WorkerShared>,
    active: &mut ActiveRuns,
    shutdown: &CancellationToken,
) {
    let concurrency = worker.config.concurrency.max(1);
    let mut next_housekeeping = Instant::now();
    let mut in_maintenance = false;
    while !shutdown.is_cancelled() {
        while let Some(joined) = active.tasks.try_join_next_with_id() {
            active.on_joined(worker, joined);
        }
        if active.len() >= concurrency {
            wait_for_free_slot(worker, active, shutdown).await;
            continue;
        }
        if Instant::now() >= next_housekeeping {
            requeue_expired_runs(worker).await;
            remove_deleted_runs_objects(worker).await;
            in_maintenance = maintenance_mode_is_on(worker).await;
            next_housekeeping = Instant::now() + worker.config.poll_interval;
        }
        if in_maintenance {
            wait_for_work(worker, active, shutdown).await;
            continue;
        }
        match claim_next_run(worker).await {
            Some(run) => active.start(worker, run),
            None => wait_for_work(worker, active, shutdown).await,
        }
    }
}

/// Runs whose worker was lost come back to the queue (or fail after their last attempt)
/// before this worker claims, so lost work is picked up by whoever is alive.
async fn requeue_expired_runs(worker: &WorkerShared) {
    match worker.deps.store.requeue_expired_runs(now_ms()).await {
        Ok(report) => {
            if !report.requeued.is_empty()
                || !report.failed.is_empty()
                || !report.cancelled.is_empty()
            {
                tracing::warn!(
                    requeued = report.requeued.len(),
                    failed = report.failed.len(),
                    cancelled = report.cancelled.len(),
                    "runs of lost workers recovered"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "requeueing expired runs failed"),
    }
}

/// Removes the result objects of deleted runs that are due (store `deletion.rs`): the API
/// removes them right after a deletion, and this sweep retries what it could not and
/// sweeps again runs that were active when deleted, in case their worker wrote one more
/// page before it noticed.
async fn remove_deleted_runs_objects(worker: &WorkerShared) {
    let results = worker.deps.results.clone();
    let sweep = worker
        .deps
        .store
        .sweep_result_objects(now_ms(), |run_id| {
            let results = results.clone();
            async move { results.delete_run(&run_id).await }
        })
        .await;
    match sweep {
        Ok(report) => {
            for (run_id, error) in &report.failed {
                tracing::warn!(
                    run_id,
                    error,
                    "removing a deleted run's result objects failed; retrying later"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "sweeping deleted runs' result objects failed"),
    }
}

/// The installation-wide flag that `selextract maintenance on` and `POST /admin/maintenance`
/// set (SPEC §9): while it is set, workers finish their current runs and claim no new ones.
pub const MAINTENANCE_FLAG: &str = "maintenance";

/// Whether maintenance mode is on. An unreadable flag counts as off: the claim that follows
/// will hit the same database and report the real problem.
async fn maintenance_mode_is_on(worker: &WorkerShared) -> bool {
    match worker.deps.store.get_flag(MAINTENANCE_FLAG).await {
        Ok(flag) => flag.is_some(),
        Err(error) => {
            tracing::warn!(%error, "reading the maintenance flag failed");
            false
        }
    }
}

async fn claim_next_run(worker: &WorkerShared) -> Option<Run> {
    let config = &worker.config;
    match worker
        .deps
        .store
        .claim_next_run(&config.worker_id, config.lease, now_ms())
        .await
    {
        Ok(run) => run,
        Err(error) => {
            tracing::warn!(%error, "claiming the next run failed; retrying after the poll interval");
            None
        }
    }
}

/// Nothing to claim: wait for an enqueue (the waker), the poll interval, a run ending (it
/// may have been the user's last slot) or shutdown, whichever comes first.
async fn wait_for_work(
    worker: &WorkerShared,
    active: &mut ActiveRuns,
    shutdown: &CancellationToken,
) {
    let joined = tokio::select! {
        () = shutdown.cancelled() => None,
        () = worker.deps.waker.notified() => None,
        () = tokio::time::sleep(worker.config.poll_interval) => None,
        Some(joined) = active.tasks.join_next_with_id(), if !active.tasks.is_empty() => Some(joined),
    };
    if let Some(joined) = joined {
        active.on_joined(worker, joined);
    }
}

async fn wait_for_free_slot(
    worker: &WorkerShared,
    active: &mut ActiveRuns,
    shutdown: &CancellationToken,
) {
    let joined = tokio::select! {
        () = shutdown.cancelled() => None,
        joined = active.tasks.join_next_with_id() => joined,
    };
    if let Some(joined) = joined {
        active.on_joined(worker, joined);
    }
}

/// Shutdown: current runs get the grace period to finish; the rest are stopped and put back
/// in the queue without consuming an attempt.
async fn drain_active_runs(worker: &WorkerShared, active: &mut ActiveRuns) {
    if active.len() == 0 {
        return;
    }
    tracing::info!(runs = active.len(), grace = ?worker.config.grace_period, "shutting down: waiting for current runs");
    let mut to_release = Vec::new();
    let grace = tokio::time::sleep(worker.config.grace_period);
    tokio::pin!(grace);
    loop {
        let joined = tokio::select! {
            () = &mut grace => break,
            joined = active.tasks.join_next_with_id() => joined,
        };
        match joined {
            Some(joined) => to_release.extend(active.on_joined(worker, joined)),
            None => break,
        }
    }
    if active.len() > 0 {
        tracing::warn!(
            runs = active.len(),
            "grace period over: releasing the runs still going"
        );
        active.release_all();
        let stopped = tokio::time::timeout(RELEASE_WAIT, async {
            while let Some(joined) = active.tasks.join_next_with_id().await {
                to_release.extend(active.on_joined(worker, joined));
            }
        })
        .await;
        if stopped.is_err() {
            active.tasks.abort_all();
            while let Some(joined) = active.tasks.join_next_with_id().await {
                to_release.extend(active.on_joined(worker, joined));
            }
        }
    }
    for run_id in to_release {
        release_run(worker, &run_id).await;
    }
}

async fn release_run(worker: &WorkerShared, run_id: &str) {
    match worker
        .deps
        .store
        .release_run(run_id, &worker.config.worker_id)
        .await
    {
        Ok(true) => tracing::info!(%run_id, "run released back to the queue"),
        Ok(false) => {
            tracing::warn!(%run_id, "run was no longer held by this worker; nothing released")
        }
        // Its lease expires instead; requeueing then counts the attempt, which is the
        // price of a database that was down at shutdown.
        Err(error) => tracing::error!(%run_id, %error, "releasing the run failed"),
    }
}

async fn keep_worker_row_alive(worker: Arc<WorkerShared>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(WORKER_HEARTBEAT_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = write_worker_heartbeat(&worker).await {
            tracing::warn!(%error, "writing the worker heartbeat failed");
        }
    }
}

async fn write_worker_heartbeat(worker: &WorkerShared) -> Result<(), selextract_store::StoreError> {
    let config = &worker.config;
    let heartbeat = WorkerHeartbeat {
        id: config.worker_id.clone(),
        host: config.host.clone(),
        pid: std::process::id(),
        started_at_ms: worker.started_at_ms,
        heartbeat_at_ms: now_ms(),
        active_runs: worker.active_runs.load(Ordering::SeqCst),
        processed: worker.processed.load(Ordering::SeqCst),
    };
    worker.deps.store.upsert_worker_heartbeat(&heartbeat).await
}
