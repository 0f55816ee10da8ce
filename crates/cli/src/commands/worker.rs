//! `selextract worker`: a worker process that claims runs from the shared queue.

use std::sync::Arc;

use crate::platform::{self, CommonArgs};

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Allow fetching loopback, private and link-local addresses (off by default).
    #[arg(long)]
    pub allow_private_networks: bool,
    /// Runs executed at once (overrides `worker.concurrency`).
    #[arg(long)]
    pub concurrency: Option<usize>,
}

pub async fn run(common: CommonArgs, args: WorkerArgs) -> anyhow::Result<()> {
    let mut settings = platform::load_settings(&common)?;
    if let Some(concurrency) = args.concurrency {
        settings.worker.concurrency = concurrency.max(1);
    }
    let _metrics = platform::install_metrics()?;
    let store = platform::open_store(&settings).await?;
    let results = platform::open_results(&settings)?;
    let http = platform::build_fetcher(&settings, args.allow_private_networks)?;
    let browser = crate::browser::start_browser(
        &settings,
        args.allow_private_networks,
        &settings.server.data_dir.join("browsers"),
    )
    .await?;
    let waker = Arc::new(tokio::sync::Notify::new());
    // On PostgreSQL, an enqueue in any process wakes this worker at once (LISTEN/NOTIFY);
    // on SQLite there is no cross-process signal and the poll interval applies.
    let _queue_wakeups = store.subscribe_queue_wakeups(waker.clone());
    let deps = selextract_worker::WorkerDeps {
        store,
        results,
        http,
        browser: browser.as_ref().map(|b| b.fetcher.clone()),
        waker,
    };
    let shutdown = platform::shutdown_on_signal();
    tokio::spawn(selextract_worker::run_monthly_grants(
        deps.store.clone(),
        settings.billing.clone(),
        std::time::Duration::from_secs(3600),
        shutdown.clone(),
    ));
    let config = platform::worker_config(&settings);
    eprintln!("worker {} started", config.worker_id);
    let outcome = selextract_worker::run_worker(config, deps, shutdown).await;
    // No Chromium outlives the worker, whatever happened to the loop.
    if let Some(browser) = &browser {
        browser.shutdown().await;
    }
    outcome
}
