//! Wiring shared by the platform commands: opening the store and the result store,
//! building the process's one HTTP fetcher, the metrics recorder, and the small config
//! structs each crate takes, all from the one settings tree.

use std::sync::Arc;

use anyhow::Context;
use selextract_config::ExposeSecret;
use selextract_fetch::{HttpFetcher, HttpFetcherConfig, RedisPoliteness};
use selextract_results::ResultStore;
use selextract_server::{InMemoryRateLimiter, RateLimiter, RedisRateLimiter};
use selextract_store::Store;

use crate::config::Settings;

/// Options every platform command accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Configuration file (default: ./selextract.toml when present).
    #[arg(long, global = true)]
    pub config: Option<std::path::PathBuf>,
    /// Data directory for the embedded default (SQLite database and results).
    #[arg(long, global = true)]
    pub data_dir: Option<std::path::PathBuf>,
}

pub fn load_settings(common: &CommonArgs) -> anyhow::Result<Settings> {
    let (mut settings, _) = crate::config::load(common.config.as_deref())?;
    if let Some(dir) = &common.data_dir {
        settings.server.data_dir = dir.clone();
    }
    Ok(settings)
}

/// Connects to the database (creating the embedded one and its directory when missing)
/// without looking at its schema: for `migrate`, which is what changes it.
pub async fn connect_store(settings: &Settings) -> anyhow::Result<Store> {
    if settings.database.url.is_empty() {
        std::fs::create_dir_all(&settings.server.data_dir).with_context(|| {
            format!(
                "creating the data directory {}",
                settings.server.data_dir.display()
            )
        })?;
    }
    let url = settings.database_url();
    Store::connect(url.expose_secret())
        .await
        .context("connecting to the database")
}

/// Connects to the database and checks its schema before anything uses it: a fresh
/// database is initialised; an older one is migrated only when `database.migrate_on_start`
/// is set (else the error says to back up and run `selextract migrate`); a newer one is
/// used with a warning unless a contract migration took it past this build, which fails,
/// as does a history that does not match this build's.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = connect_store(settings).await?;
    store
        .check_schema_at_start(settings.database.migrate_on_start)
        .await
        .context("checking the database schema")?;
    Ok(store)
}

pub fn open_results(settings: &Settings) -> anyhow::Result<ResultStore> {
    if settings.results.url.is_empty() {
        let dir = settings.server.data_dir.join("results");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    ResultStore::from_url(&settings.results_url()).context("opening the results storage")
}

pub fn build_fetcher(
    settings: &Settings,
    allow_private_networks: bool,
) -> anyhow::Result<Arc<HttpFetcher>> {
    let config = fetcher_config(settings, allow_private_networks);
    let fetcher = match redis_url(settings) {
        // Per-domain spacing shared by every worker of the installation.
        Some(url) => {
            let politeness = RedisPoliteness::new(url)
                .context("configuration key `redis.url`: not a Redis URL")?;
            HttpFetcher::with_politeness(config, Arc::new(politeness))
        }
        None => HttpFetcher::new(config),
    };
    Ok(Arc::new(fetcher.context("building the HTTP client")?))
}

/// The `[fetch]` section with the command line's `--allow-private-networks`, which only ever
/// lifts the guard further.
pub fn fetcher_config(settings: &Settings, allow_private_networks: bool) -> HttpFetcherConfig {
    HttpFetcherConfig {
        allow_private_networks: settings.fetch.allow_private_networks || allow_private_networks,
        ..settings.fetch.clone()
    }
}

/// The API's per-key rate limiter: shared by every API process through Redis when
/// `redis.url` is set (falling back to in-process limits while Redis is down), else kept
/// in this process.
pub fn rate_limiter(settings: &Settings) -> anyhow::Result<Arc<dyn RateLimiter>> {
    Ok(match redis_url(settings) {
        Some(url) => Arc::new(
            RedisRateLimiter::new(url).context("configuration key `redis.url`: not a Redis URL")?,
        ),
        None => Arc::new(InMemoryRateLimiter::default()),
    })
}

fn redis_url(settings: &Settings) -> Option<&str> {
    Some(settings.redis.url.expose_secret().trim()).filter(|url| !url.is_empty())
}

/// The `[worker]` section with what it takes from `[compute_units]`, `[billing]`,
/// `[limits]` and `[notifications]`.
pub fn worker_config(settings: &Settings) -> selextract_worker::WorkerConfig {
    selextract_worker::WorkerConfig {
        rates: settings.compute_units,
        plans: settings.billing.clone(),
        limits: settings.limits,
        // Deliveries queued at a run's end only take their deadlines and links from it;
        // the address guard is applied by the delivery loop's own config.
        notify: notify_config(settings, false),
        ..settings.worker.clone()
    }
}

/// The `[notifications]` section with what it takes from `[server]` (the public URL links
/// point to) and `[fetch]` (webhooks pass the same URL guard as fetching).
pub fn notify_config(
    settings: &Settings,
    allow_private_networks: bool,
) -> selextract_notify::NotifyConfig {
    selextract_notify::NotifyConfig {
        public_url: Some(settings.server.public_base_url()),
        allow_private_networks: allow_private_networks || settings.fetch.allow_private_networks,
        ..settings.notifications.clone()
    }
}

/// The `[scheduler]` section with what it takes from `[billing]` and `worker.max_attempts`.
pub fn scheduler_config(settings: &Settings) -> selextract_scheduler::SchedulerConfig {
    selextract_scheduler::SchedulerConfig {
        plans: settings.billing.clone(),
        max_attempts: settings.worker.max_attempts,
        ..settings.scheduler.clone()
    }
}

/// The `[server]` section with what it takes from `[metrics]`, `[limits]`, `[billing]`,
/// `[compute_units]`, `[auth]` and `worker.max_attempts`.
pub fn server_config(settings: &Settings) -> selextract_server::ServerConfig {
    selextract_server::ServerConfig {
        metrics: settings.metrics.clone(),
        limits: settings.limits,
        plans: settings.billing.clone(),
        rates: settings.compute_units,
        max_attempts: settings.worker.max_attempts,
        auth: settings.auth.clone(),
        ..settings.server.clone()
    }
}

/// The account-mail sender from `[smtp]` (one that refuses to send when no host is set).
pub fn mailer(settings: &Settings) -> anyhow::Result<selextract_mail::Mailer> {
    selextract_mail::Mailer::from_config(&settings.smtp)
        .map_err(|e| anyhow::anyhow!("configuration key {e}"))
}

/// Install the process-wide metrics recorder once and return the handle `/metrics` renders.
pub fn install_metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    let (recorder, handle) = selextract_server::build_metrics_recorder();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    selextract_worker::describe_worker_metrics();
    selextract_server::describe_server_metrics();
    selextract_notify::describe_notify_metrics();
    Ok(handle)
}

/// Cancelled on SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        trigger.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}

pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX)
}

/// What every long-running role (`serve`, `worker`) opens: the store, the results, the
/// process's one HTTP fetcher, the browser pool when Chromium is there, and the queue waker
/// (fed by `LISTEN/NOTIFY` on PostgreSQL, so an enqueue anywhere wakes this process).
pub struct Services {
    pub store: Store,
    pub results: ResultStore,
    pub http: Arc<HttpFetcher>,
    pub browser: Option<crate::browser::Browser>,
    pub waker: Arc<tokio::sync::Notify>,
    _queue_wakeups: Option<selextract_store::QueueWakeups>,
}

/// Names what is open, never how it was reached (connection URLs carry passwords).
impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("store", &self.store)
            .field("results", &self.results)
            .field("http", &self.http)
            .field("browser", &self.browser.is_some())
            .finish_non_exhaustive()
    }
}

impl Services {
    pub async fn start(
        settings: &Settings,
        allow_private_networks: bool,
    ) -> anyhow::Result<Services> {
        let store = open_store(settings).await?;
        let results = open_results(settings)?;
        let http = build_fetcher(settings, allow_private_networks)?;
        let browser = crate::browser::start_browser(
            settings,
            allow_private_networks,
            &settings.server.data_dir.join("browsers"),
        )
        .await?;
        let waker = Arc::new(tokio::sync::Notify::new());
        let queue_wakeups = store.subscribe_queue_wakeups(waker.clone());
        Ok(Services {
            store,
            results,
            http,
            browser,
            waker,
            _queue_wakeups: queue_wakeups,
        })
    }

    pub fn browser_fetcher(&self) -> Option<Arc<dyn selextract_fetch::Fetcher>> {
        self.browser.as_ref().map(|b| b.fetcher.clone())
    }

    pub fn worker_deps(&self) -> selextract_worker::WorkerDeps {
        selextract_worker::WorkerDeps {
            store: self.store.clone(),
            results: self.results.clone(),
            http: self.http.clone(),
            browser: self.browser_fetcher(),
            waker: self.waker.clone(),
        }
    }

    /// The scheduler loop (task schedules and the installation's jobs, the monthly
    /// compute-unit grant among them). Every `serve` and `worker` process runs it: the
    /// store's claim records each tick exactly once however many do.
    pub fn spawn_scheduler(
        &self,
        settings: &Settings,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        tokio::spawn(selextract_scheduler::run_scheduler(
            self.store.clone(),
            scheduler_config(settings),
            shutdown,
        ));
    }

    /// The notification delivery loop (and the sweep of runs settled elsewhere). Every
    /// process that runs workers runs it; leases make each attempt one process's.
    pub fn spawn_deliveries(
        &self,
        settings: &Settings,
        allow_private_networks: bool,
        mailer: Arc<selextract_mail::Mailer>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let deps = selextract_notify::NotifyDeps {
            mailer,
            resolver: None,
            owner: format!("{}/notify", worker_config(settings).worker_id),
        };
        let config = notify_config(settings, allow_private_networks);
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) =
                selextract_notify::run_deliveries(store, config, deps, shutdown).await
            {
                tracing::error!(%error, "the notification delivery loop could not start");
            }
        });
    }

    /// Stops the browser pool so that no Chromium outlives the process.
    pub async fn shutdown(&self) {
        if let Some(browser) = &self.browser {
            browser.shutdown().await;
        }
    }
}
