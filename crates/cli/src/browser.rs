//! Wiring of the Chromium pool: which binary, which limits, and the fetcher the engine and
//! the API's previews use. Browsers are launched on demand, so a process that never renders
//! never starts Chromium.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use selextract_browser::{BrowserFetcher, BrowserPool, find_chromium};
use selextract_fetch::Fetcher;
use selextract_fetch::guard::GuardPolicy;

use crate::config::Settings;

/// A started pool and its fetcher; shut the pool down on exit so no Chromium survives.
pub struct Browser {
    pub pool: Arc<BrowserPool>,
    pub fetcher: Arc<dyn Fetcher>,
}

/// Says only that a pool runs: the pool's config holds the proxy URLs, which may carry
/// passwords.
impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").finish_non_exhaustive()
    }
}

impl Browser {
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
    }
}

/// Start the pool when browser rendering is enabled and Chromium is installed; `None`
/// (with a log line saying why) otherwise — `browser`/`auto` tasks then fail or fall back
/// to HTTP with a clear message.
pub async fn start_browser(
    settings: &Settings,
    allow_private_networks: bool,
    runtime_dir: &Path,
) -> anyhow::Result<Option<Browser>> {
    let mut config = settings.browser.clone();
    if !config.enabled {
        return Ok(None);
    }
    if config.executable.as_os_str().is_empty() {
        match find_chromium() {
            Some(path) => config.executable = path,
            None => {
                tracing::info!(
                    "browser rendering unavailable: no Chromium found (scripts/ensure-test-services installs \
                     it; or `apt-get install chromium-headless-shell`, or set browser.executable)"
                );
                return Ok(None);
            }
        }
    } else if !config.executable.is_file() {
        bail!(
            "configuration key `browser.executable`: {} does not exist",
            config.executable.display()
        );
    }
    std::fs::create_dir_all(runtime_dir)
        .with_context(|| format!("creating {}", runtime_dir.display()))?;
    config.runtime_dir = runtime_dir.to_path_buf();
    // Floors rather than errors: a zero here would make a pool that can never render.
    config.max_browsers = config.max_browsers.max(1);
    config.pages_per_browser = config.pages_per_browser.max(1);
    config.recycle_after_pages = config.recycle_after_pages.max(1);
    config.recycle_after = config.recycle_after.max(Duration::from_secs(60));
    config.memory_cap_bytes = config.memory_cap_bytes.max(64 * 1024 * 1024);
    config.js_heap_mb = config.js_heap_mb.max(16);
    config.launch_timeout = config.launch_timeout.max(Duration::from_secs(1));
    // One DOM size cap: the installation's limit, also when a render does not name one.
    config.max_snapshot_bytes = settings.limits.max_snapshot_bytes;
    // The same guard and proxies as the HTTP fetcher's.
    let fetch = crate::platform::fetcher_config(settings, allow_private_networks);
    config.guard = GuardPolicy {
        allow_private_networks: fetch.allow_private_networks,
        allowed_networks: fetch.allowed_networks,
        ..GuardPolicy::default()
    };
    config.proxies = fetch
        .proxies
        .iter()
        .map(|proxy| proxy.as_str().to_owned())
        .collect();
    let pool = BrowserPool::start(config)
        .await
        .context("starting the browser pool")?;
    let fetcher: Arc<dyn Fetcher> = Arc::new(BrowserFetcher::new(pool.clone()));
    Ok(Some(Browser { pool, fetcher }))
}
