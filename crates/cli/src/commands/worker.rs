//! `selextract worker`: a worker process that claims runs from the shared queue.

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
    let mailer = std::sync::Arc::new(platform::mailer(&settings)?);
    let _metrics = platform::install_metrics()?;
    let services = platform::Services::start(&settings, args.allow_private_networks).await?;
    let shutdown = platform::shutdown_on_signal();
    services.spawn_scheduler(&settings, shutdown.clone());
    services.spawn_deliveries(
        &settings,
        args.allow_private_networks,
        mailer,
        shutdown.clone(),
    );
    let config = platform::worker_config(&settings);
    eprintln!("worker {} started", config.worker_id);
    let outcome = selextract_worker::run_worker(config, services.worker_deps(), shutdown).await;
    // No Chromium outlives the worker, whatever happened to the loop.
    services.shutdown().await;
    outcome
}
