//! What one worker needs: its settings ([`WorkerConfig`]) and the services it runs on
//! ([`WorkerDeps`]), passed explicitly by whoever starts it (the CLI or the all-in-one
//! server).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use selextract_engine::ComputeRates;
use selextract_fetch::Fetcher;
use selextract_results::ResultStore;
use selextract_spec::Limits;
use selextract_store::{Plans, Store};
use serde::{Deserialize, Serialize};

/// Settings of one worker. The settings section `[worker]` deserializes straight into this
/// type (so its defaults are the only ones); the fields marked `skip` are the process's
/// identity or come from other sections, filled in by the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Unique among live workers; the lease owner written on claimed runs.
    #[serde(skip)]
    pub worker_id: String,
    /// Shown in `selextract status` and the admin workers page.
    #[serde(skip)]
    pub host: String,
    /// Runs executed at once by this worker.
    pub concurrency: usize,
    /// How long a claim (and each renewal) holds a run before another worker may take it.
    #[serde(
        rename = "lease_seconds",
        with = "selextract_config::units::duration_seconds"
    )]
    pub lease: Duration,
    /// How often a running run renews its lease, persists progress and logs, and reads its
    /// cancel flag. Must be well below `lease` and at most one second (SPEC §4: a cancel
    /// reaches the run within one second).
    #[serde(
        rename = "heartbeat_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub heartbeat_interval: Duration,
    /// How long an idle worker sleeps between claims when nobody wakes it.
    #[serde(rename = "poll_ms", with = "selextract_config::units::duration_ms")]
    pub poll_interval: Duration,
    /// On shutdown, how long current runs may take to finish before they are released.
    #[serde(
        rename = "grace_seconds",
        with = "selextract_config::units::duration_seconds"
    )]
    pub grace_period: Duration,
    /// Attempts a run gets before a lost worker fails it; the API writes it on each run it
    /// enqueues.
    pub max_attempts: u32,
    /// Pages in flight per run.
    pub engine_concurrency: usize,
    /// Compute-unit prices (`[compute_units]`).
    #[serde(skip)]
    pub rates: ComputeRates,
    /// `[billing]`.
    #[serde(skip)]
    pub plans: Plans,
    /// The installation's spec limits (`[limits]`): a run's saved spec is validated again
    /// against these, the same numbers the API accepted it with, and the engine enforces
    /// their run-time bounds.
    #[serde(skip)]
    pub limits: Limits,
    /// `[notifications]` (with the public URL its links use): the deadlines and links of the
    /// deliveries a run's end queues.
    #[serde(skip)]
    pub notify: selextract_notify::NotifyConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            worker_id: default_worker_id(),
            host: hostname(),
            concurrency: 4,
            lease: Duration::from_secs(30),
            heartbeat_interval: Duration::from_millis(500),
            poll_interval: Duration::from_millis(500),
            grace_period: Duration::from_secs(30),
            max_attempts: selextract_store::DEFAULT_MAX_ATTEMPTS,
            engine_concurrency: 8,
            rates: ComputeRates::default(),
            plans: Plans::default(),
            limits: Limits::default(),
            notify: selextract_notify::NotifyConfig::default(),
        }
    }
}

/// The services a worker runs on. Cheap to clone: every member is shared.
#[derive(Clone)]
pub struct WorkerDeps {
    pub store: Store,
    pub results: ResultStore,
    /// Shared by every run of the process, so per-domain politeness is shared too.
    pub http: Arc<dyn Fetcher>,
    /// Present when this process can render pages in Chromium.
    pub browser: Option<Arc<dyn Fetcher>>,
    /// Notified by the API after an enqueue, so an idle embedded worker claims at once
    /// instead of waiting for its next poll.
    pub waker: Arc<tokio::sync::Notify>,
}

impl fmt::Debug for WorkerDeps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerDeps")
            .field("browser", &self.browser.is_some())
            .finish_non_exhaustive()
    }
}

/// `{hostname}-{pid}-{6 random hex digits}`: readable in `selextract status`, and unique even
/// when a restarted process gets the pid of a dead one whose row has not expired yet.
pub fn default_worker_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let short = random.get(..6).unwrap_or(&random);
    format!("{}-{}-{}", hostname(), std::process::id(), short)
}

/// The machine's host name, from the kernel (Linux) or the `HOSTNAME` variable; `localhost`
/// when neither is available. Read without a dependency because it is only a label.
pub fn hostname() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let from_env = std::env::var("HOSTNAME").ok();
    from_kernel
        .into_iter()
        .chain(from_env)
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
