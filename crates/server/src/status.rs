//! The installation's operational status (SPEC §9 `selextract status`), read from the shared
//! database so that any process — an API process, the CLI on an operator's laptop — sees
//! every worker and the whole queue. `GET /api/v1/admin/workers` and `/admin/queue` serve
//! parts of the same value.

use std::collections::BTreeMap;
use std::time::Duration;

use selextract_store::{Store, StoreError, WorkerHeartbeat};
use serde::Serialize;

use crate::time::rfc3339;

/// A worker is live when its heartbeat is at most this old (the same bound as `/metrics`).
pub const WORKER_LIVENESS: Duration = Duration::from_secs(30);
const HOUR_MS: i64 = 60 * 60 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Everything `selextract status --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SystemStatus {
    pub version: String,
    /// When this status was read (RFC 3339).
    pub generated_at: String,
    pub workers: Vec<WorkerStatus>,
    pub queue: QueueStatus,
    pub last_hour: RunActivity,
    /// Compute units charged since 00:00 UTC today, over all users.
    pub compute_units_today: u64,
}

/// One live worker process, from its heartbeat row.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: String,
    pub uptime_seconds: f64,
    pub heartbeat_age_seconds: f64,
    pub active_runs: u32,
    /// Runs this worker finished since it started.
    pub processed: u64,
}

/// The run queue now.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    /// Runs in each state, every state present.
    pub depth: BTreeMap<String, u64>,
    /// How long the oldest queued run has waited; `null` when nothing is queued.
    pub oldest_queued_age_seconds: Option<f64>,
}

/// Runs that finished in the last hour.
#[derive(Debug, Clone, Serialize)]
pub struct RunActivity {
    /// Finished runs by terminal state.
    pub finished: BTreeMap<String, u64>,
    pub finished_total: u64,
    /// `completed / (completed + partial + failed)`; runs cancelled by their user are a
    /// choice, not a failure, and are left out. `null` when no run counts.
    pub success_rate: Option<f64>,
}

/// Reads the whole status at `now_ms`.
pub async fn collect_status(
    store: &Store,
    version: &str,
    now_ms: i64,
) -> Result<SystemStatus, StoreError> {
    let (workers, queue, last_hour, compute_units_today) = tokio::try_join!(
        live_workers(store, now_ms),
        queue_status(store, now_ms),
        run_activity(store, now_ms),
        compute_units_today(store, now_ms),
    )?;
    Ok(SystemStatus {
        version: version.to_owned(),
        generated_at: rfc3339(now_ms),
        workers,
        queue,
        last_hour,
        compute_units_today,
    })
}

/// Workers whose heartbeat is recent, by id.
pub async fn live_workers(store: &Store, now_ms: i64) -> Result<Vec<WorkerStatus>, StoreError> {
    let workers = store.list_live_workers(WORKER_LIVENESS, now_ms).await?;
    Ok(workers
        .into_iter()
        .map(|worker| worker_status(worker, now_ms))
        .collect())
}

fn worker_status(worker: WorkerHeartbeat, now_ms: i64) -> WorkerStatus {
    WorkerStatus {
        started_at: rfc3339(worker.started_at_ms),
        uptime_seconds: seconds_between(worker.started_at_ms, now_ms),
        heartbeat_age_seconds: seconds_between(worker.heartbeat_at_ms, now_ms),
        id: worker.id,
        host: worker.host,
        pid: worker.pid,
        active_runs: worker.active_runs,
        processed: worker.processed,
    }
}

pub async fn queue_status(store: &Store, now_ms: i64) -> Result<QueueStatus, StoreError> {
    let (depth, oldest) =
        tokio::try_join!(store.queue_depth(), store.oldest_queued_age_ms(now_ms))?;
    Ok(QueueStatus {
        depth,
        oldest_queued_age_seconds: oldest.map(|age| age as f64 / 1000.0),
    })
}

pub async fn run_activity(store: &Store, now_ms: i64) -> Result<RunActivity, StoreError> {
    let finished = store.count_runs_finished_since(now_ms - HOUR_MS).await?;
    let count = |state: &str| finished.get(state).copied().unwrap_or(0);
    let judged = count("completed") + count("partial") + count("failed");
    Ok(RunActivity {
        finished_total: finished.values().sum(),
        success_rate: (judged > 0).then(|| count("completed") as f64 / judged as f64),
        finished,
    })
}

/// Compute units charged since 00:00 UTC today, over all users.
pub async fn compute_units_today(store: &Store, now_ms: i64) -> Result<u64, StoreError> {
    store
        .compute_units_charged_since(start_of_utc_day(now_ms))
        .await
}

fn seconds_between(earlier_ms: i64, later_ms: i64) -> f64 {
    later_ms.saturating_sub(earlier_ms).max(0) as f64 / 1000.0
}

/// 00:00 UTC of the day `now_ms` falls in (unix days are exactly 86,400 s).
fn start_of_utc_day(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(DAY_MS)
}
