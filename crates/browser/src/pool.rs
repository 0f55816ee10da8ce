//! The browser pool: at most `max_browsers` Chromium processes with at most
//! `pages_per_browser` pages each, recycled after N pages, M minutes or a memory cap; a
//! crashed or hung browser is killed with its process tree and replaced, and only the pages
//! it had in flight are retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use futures::StreamExt;
use selextract_fetch::{FetchError, FetchRequest, RenderOptions, Rendered};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::guard::RenderGuard;
use crate::process::{self, ChromiumProcess};
use crate::proxy::{self, GuardProxy};
use crate::render::{self, RenderFailure};
use crate::upstream::Upstream;
use crate::{BrowserError, BrowserPoolConfig};

/// One pooled Chromium.
pub(crate) struct Instance {
    pub(crate) browser: chromiumoxide::Browser,
    process: Mutex<Option<ChromiumProcess>>,
    pub(crate) pgid: i32,
    started: Instant,
    pages_started: AtomicU64,
    open_pages: AtomicUsize,
    /// No new pages; killed once its open pages are done.
    retired: AtomicBool,
    /// The DevTools connection ended (the browser exited or crashed).
    disconnected: Arc<AtomicBool>,
    handler: JoinHandle<()>,
}

impl Instance {
    fn usable(&self) -> bool {
        !self.retired.load(Ordering::SeqCst) && !self.disconnected.load(Ordering::SeqCst)
    }

    /// Kills the browser's process tree and waits until it is gone. The process lock is held
    /// throughout, so a second, concurrent kill (a crash seen by a page and by the pool at
    /// once) waits for the first instead of returning early — otherwise the pool could launch
    /// a replacement while this browser is still alive, exceeding `max_browsers`.
    async fn kill(&self) {
        self.retired.store(true, Ordering::SeqCst);
        let mut process = self.process.lock().await;
        if let Some(running) = process.as_mut() {
            running.kill_tree().await;
        }
        *process = None;
        self.handler.abort();
    }
}

/// Counters for tests, benchmarks and the status page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub browsers_live: usize,
    pub pages_open: usize,
    pub launches: u64,
    /// Browsers killed because they crashed, hung or lost their connection.
    pub restarts: u64,
    /// Browsers retired after their page count, age or memory cap.
    pub recycles: u64,
}

/// A bounded pool of headless Chromium processes. Call [`BrowserPool::shutdown`] before
/// dropping it; a pool dropped without it still kills its browsers (kill-on-drop), but
/// cannot wait for them.
pub struct BrowserPool {
    config: BrowserPoolConfig,
    instances: Mutex<Vec<Arc<Instance>>>,
    changed: Notify,
    closed: AtomicBool,
    launches: AtomicU64,
    restarts: AtomicU64,
    recycles: AtomicU64,
    pages_open: AtomicUsize,
    /// Chromium's launch-time proxy: refuses everything (renders use their own).
    refusing_proxy: GuardProxy,
}

impl std::fmt::Debug for BrowserPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserPool")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The right to render one page in one browser.
struct Lease {
    instance: Arc<Instance>,
}

enum Health {
    Good,
    /// Crashed, hung or disconnected: kill the browser now.
    Broken,
}

impl BrowserPool {
    /// Creates the pool (no browser is launched until the first page) after reaping
    /// Chromium trees a previous process left in `config.runtime_dir`.
    pub async fn start(config: BrowserPoolConfig) -> Result<Arc<BrowserPool>, BrowserError> {
        if !config.executable.is_file() {
            return Err(BrowserError::Launch {
                executable: config.executable.display().to_string(),
                message: "no such file".to_owned(),
            });
        }
        process::become_subreaper();
        let reaped = process::reap_stale(&config.runtime_dir).await;
        if reaped > 0 {
            tracing::warn!(reaped, dir = %config.runtime_dir.display(), "killed stale Chromium trees");
        }
        let refusing_proxy = proxy::start(RenderGuard::refusing_everything(), None)
            .await
            .map_err(|e| BrowserError::Io {
                what: "starting the guarding proxy",
                message: e.to_string(),
            })?;
        Ok(Arc::new(BrowserPool {
            refusing_proxy,
            config,
            instances: Mutex::new(Vec::new()),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
            launches: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            recycles: AtomicU64::new(0),
            pages_open: AtomicUsize::new(0),
        }))
    }

    pub fn config(&self) -> &BrowserPoolConfig {
        &self.config
    }

    pub async fn stats(&self) -> PoolStats {
        let instances = self.instances.lock().await;
        PoolStats {
            browsers_live: instances.len(),
            pages_open: self.pages_open.load(Ordering::SeqCst),
            launches: self.launches.load(Ordering::SeqCst),
            restarts: self.restarts.load(Ordering::SeqCst),
            recycles: self.recycles.load(Ordering::SeqCst),
        }
    }

    /// Process-group ids of the live browsers (for tests and memory sampling).
    pub async fn browser_pgids(&self) -> Vec<i32> {
        self.instances.lock().await.iter().map(|i| i.pgid).collect()
    }

    /// Resident memory of every live browser's process tree, in bytes.
    pub async fn memory_bytes(&self) -> u64 {
        let pgids = self.browser_pgids().await;
        pgids.into_iter().map(process::group_rss_bytes).sum()
    }

    /// Kills every browser and refuses further pages. Idempotent.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let drained: Vec<Arc<Instance>> = self.instances.lock().await.drain(..).collect();
        for instance in drained {
            instance.kill().await;
        }
        self.changed.notify_waiters();
        self.publish_gauges().await;
    }

    /// Renders `req` with `options`; a page whose browser crashed or lost its connection is
    /// retried once in another browser.
    pub async fn render(
        &self,
        req: &FetchRequest,
        options: &RenderOptions,
        cancel: &CancellationToken,
    ) -> Result<Rendered, FetchError> {
        let options = &RenderOptions {
            max_snapshot_bytes: Some(
                options
                    .max_snapshot_bytes
                    .unwrap_or(self.config.max_snapshot_bytes),
            ),
            ..options.clone()
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lease = match self.acquire(cancel).await {
                Ok(lease) => lease,
                Err(None) => return Err(FetchError::Cancelled),
                Err(Some(error)) => {
                    return Err(FetchError::Connect {
                        url: req.url.clone(),
                        message: error.to_string(),
                    });
                }
            };
            let (guard, guard_proxy) = match self.guard_for(req).await {
                Ok(pair) => pair,
                Err(error) => {
                    self.release(lease, Health::Good).await;
                    return Err(error);
                }
            };
            let outcome = render::render_page(
                &lease.instance,
                req,
                options,
                &guard,
                &guard_proxy.server(),
                cancel,
            )
            .await;
            // The render's proxy stops with its connections and tunnels.
            drop(guard_proxy);
            match outcome {
                Ok(rendered) => {
                    self.release(lease, Health::Good).await;
                    return Ok(rendered);
                }
                Err(RenderFailure::Fetch(error)) => {
                    self.release(lease, Health::Good).await;
                    return Err(error);
                }
                Err(RenderFailure::Hung(error)) => {
                    tracing::warn!(url = %req.url, "page hung; restarting its browser");
                    self.release(lease, Health::Broken).await;
                    return Err(error);
                }
                Err(RenderFailure::BrowserLost(message)) => {
                    tracing::warn!(url = %req.url, %message, "browser lost; restarting it");
                    self.release(lease, Health::Broken).await;
                    if attempt >= 2 || cancel.is_cancelled() {
                        return Err(if cancel.is_cancelled() {
                            FetchError::Cancelled
                        } else {
                            FetchError::Crashed {
                                url: req.url.clone(),
                                message: format!("{message} (twice, in two browsers)"),
                            }
                        });
                    }
                }
            }
        }
    }

    /// The guard of one render and its guarding proxy, chained to the task's upstream proxy
    /// when it has one.
    async fn guard_for(
        &self,
        req: &FetchRequest,
    ) -> Result<(Arc<RenderGuard>, GuardProxy), FetchError> {
        let upstream = match self.proxy_for(req) {
            Some(proxy) => Some(
                Upstream::parse(&proxy).map_err(|message| FetchError::Proxy {
                    proxy: display_proxy(&proxy),
                    message,
                })?,
            ),
            None => None,
        };
        let resolves_names = upstream.as_ref().is_some_and(Upstream::resolves_names);
        let guard = RenderGuard::new(self.config.guard.clone(), resolves_names);
        let guard_proxy =
            proxy::start(guard.clone(), upstream)
                .await
                .map_err(|e| FetchError::Connect {
                    url: req.url.clone(),
                    message: format!("starting the guarding proxy: {e}"),
                })?;
        Ok((guard, guard_proxy))
    }

    fn proxy_for(&self, req: &FetchRequest) -> Option<String> {
        if !req.use_proxy || self.config.proxies.is_empty() {
            return None;
        }
        let key = req.session_key.as_deref().unwrap_or(req.url.as_str());
        let hash = key
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let index = usize::try_from(hash % self.config.proxies.len() as u64).unwrap_or(0);
        self.config.proxies.get(index).cloned()
    }

    /// Waits for a page slot; `Err(None)` means cancelled.
    async fn acquire(&self, cancel: &CancellationToken) -> Result<Lease, Option<BrowserError>> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::SeqCst) {
                return Err(Some(BrowserError::ShutDown));
            }
            {
                let mut instances = self.instances.lock().await;
                self.remove_finished(&mut instances).await;
                let limit = self.config.pages_per_browser.max(1);
                let free = instances
                    .iter()
                    .filter(|i| i.usable() && i.open_pages.load(Ordering::SeqCst) < limit)
                    .min_by_key(|i| i.open_pages.load(Ordering::SeqCst))
                    .cloned();
                let chosen = match free {
                    Some(instance) => Some(instance),
                    None if instances.len() < self.config.max_browsers.max(1)
                        && self.live_browsers() < self.config.max_browsers.max(1) =>
                    {
                        let instance = self.launch().await.map_err(Some)?;
                        instances.push(instance.clone());
                        Some(instance)
                    }
                    None => None,
                };
                if let Some(instance) = chosen {
                    instance.open_pages.fetch_add(1, Ordering::SeqCst);
                    instance.pages_started.fetch_add(1, Ordering::SeqCst);
                    self.pages_open.fetch_add(1, Ordering::SeqCst);
                    drop(instances);
                    self.publish_gauges().await;
                    return Ok(Lease { instance });
                }
            }
            tokio::select! {
                () = &mut notified => {}
                () = cancel.cancelled() => return Err(None),
                // A killed browser can take a moment to leave the process table; nobody
                // notifies when it has, so look again shortly.
                () = tokio::time::sleep(std::time::Duration::from_millis(25)) => {}
            }
        }
    }

    /// Chromium browsers (process groups) of this pool still in the process table (zombies
    /// excluded), whether or not the pool still tracks them: the limit is checked against the
    /// operating system, so a browser that is being killed still counts until it is gone.
    fn live_browsers(&self) -> usize {
        let prefix = format!(
            "{}/chromium-{}-",
            self.config.runtime_dir.display(),
            std::process::id()
        );
        process::process_groups_mentioning(&prefix).len()
    }

    async fn release(&self, lease: Lease, health: Health) {
        let instance = lease.instance;
        instance.open_pages.fetch_sub(1, Ordering::SeqCst);
        self.pages_open.fetch_sub(1, Ordering::SeqCst);
        let broken =
            matches!(health, Health::Broken) || instance.disconnected.load(Ordering::SeqCst);
        if broken {
            if !instance.retired.swap(true, Ordering::SeqCst) {
                self.restarts.fetch_add(1, Ordering::SeqCst);
                metrics::counter!("selextract_browser_restarts_total").increment(1);
            }
            // Killed at once: its other pages fail as "browser lost" and are retried.
            instance.kill().await;
        } else if instance.usable() && self.due_for_recycling(&instance) {
            instance.retired.store(true, Ordering::SeqCst);
            self.recycles.fetch_add(1, Ordering::SeqCst);
        }
        {
            let mut instances = self.instances.lock().await;
            self.remove_finished(&mut instances).await;
        }
        self.publish_gauges().await;
        self.changed.notify_waiters();
    }

    fn due_for_recycling(&self, instance: &Instance) -> bool {
        instance.pages_started.load(Ordering::SeqCst) >= self.config.recycle_after_pages.max(1)
            || instance.started.elapsed() >= self.config.recycle_after
            || process::group_rss_bytes(instance.pgid) > self.config.memory_cap_bytes
    }

    /// Kills and forgets browsers that are retired and idle, or whose connection ended.
    async fn remove_finished(&self, instances: &mut Vec<Arc<Instance>>) {
        let mut kept = Vec::with_capacity(instances.len());
        for instance in instances.drain(..) {
            let idle = instance.open_pages.load(Ordering::SeqCst) == 0;
            let disconnected = instance.disconnected.load(Ordering::SeqCst);
            let exited = match instance.process.lock().await.as_mut() {
                Some(process) => process.has_exited(),
                None => true,
            };
            if idle && (instance.retired.load(Ordering::SeqCst) || disconnected || exited) {
                if (disconnected || exited) && !instance.retired.swap(true, Ordering::SeqCst) {
                    self.restarts.fetch_add(1, Ordering::SeqCst);
                    metrics::counter!("selextract_browser_restarts_total").increment(1);
                }
                instance.kill().await;
            } else {
                kept.push(instance);
            }
        }
        *instances = kept;
    }

    async fn launch(&self) -> Result<Arc<Instance>, BrowserError> {
        let mut process = process::launch(
            &self.config.executable,
            &self.config.runtime_dir,
            self.config.js_heap_mb,
            self.config.launch_timeout,
            &self.refusing_proxy.server(),
        )
        .await?;
        let handler_config = chromiumoxide::handler::HandlerConfig {
            // The viewport is set per page from the task.
            viewport: None,
            request_timeout: std::time::Duration::from_secs(30),
            ..Default::default()
        };
        let connected =
            chromiumoxide::Browser::connect_with_config(process.ws_url.clone(), handler_config)
                .await;
        let (browser, mut handler) = match connected {
            Ok(pair) => pair,
            Err(error) => {
                process.kill_tree().await;
                return Err(BrowserError::Protocol(error.to_string()));
            }
        };
        let disconnected = Arc::new(AtomicBool::new(false));
        let flag = disconnected.clone();
        let handler = tokio::spawn(async move {
            // Drives the DevTools connection; it ends when the browser goes away.
            while let Some(event) = handler.next().await {
                if let Err(error) = event {
                    if matches!(error, chromiumoxide::error::CdpError::Ws(_)) {
                        break;
                    }
                    tracing::debug!(%error, "DevTools handler");
                }
            }
            flag.store(true, Ordering::SeqCst);
        });
        self.launches.fetch_add(1, Ordering::SeqCst);
        let pgid = process.pgid;
        Ok(Arc::new(Instance {
            browser,
            process: Mutex::new(Some(process)),
            pgid,
            started: Instant::now(),
            pages_started: AtomicU64::new(0),
            open_pages: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            disconnected,
            handler,
        }))
    }

    async fn publish_gauges(&self) {
        metrics::gauge!("selextract_browser_pages_open")
            .set(self.pages_open.load(Ordering::SeqCst) as f64);
        let pgids = self.browser_pgids().await;
        let memory: u64 = pgids.iter().map(|&p| process::group_rss_bytes(p)).sum();
        metrics::gauge!("selextract_browser_memory_bytes").set(memory as f64);
        metrics::gauge!("selextract_browser_processes").set(pgids.len() as f64);
    }
}

/// A proxy URL without credentials, for errors.
fn display_proxy(proxy: &str) -> String {
    match url::Url::parse(proxy) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "(unparsable proxy URL)".to_owned(),
    }
}
