//! Browser rendering: headless Chromium driven over the DevTools protocol (chromiumoxide),
//! behind the engine's [`Fetcher`] interface, with a pool of browser processes that does
//! not leak.
//!
//! Architecture invariants:
//! - Every request a render makes (documents, sub-resources, XHR, redirects, WebSockets,
//!   and what Web, Shared and Service Workers import, fetch and open) leaves Chromium
//!   through a guarding proxy of that render on 127.0.0.1 ([`proxy`]), which vets each
//!   request (not each connection) with the same URL guard as HTTP mode and connects to the
//!   addresses the guard vetted: a name is resolved once per render, through the guard's
//!   resolver, and never again by anyone (no DNS rebinding). CDP `Fetch` interception sees
//!   the page's own requests first (same pinned answers), to report refused URLs, fail a
//!   refused start URL as `blocked_address`, add the task's headers and cookies to
//!   first-party requests only, and skip images; those requests bypass Service Workers, so
//!   a worker that controls the page cannot take them out of the interceptor's sight.
//!   Chromium is launched with a proxy that refuses everything, so nothing outside a
//!   render's context gets out. Downloads are denied.
//! - Each render gets a fresh incognito browser context, disposed afterwards: nothing
//!   (cookies, storage, cache, Service Worker registrations) leaks between tasks or users.
//! - The pool never runs more than `max_browsers` Chromium processes nor more than
//!   `pages_per_browser` pages in one; every Chromium runs in its own process group and is
//!   killed as a whole tree and reaped; a PID file per browser lets the next start reap
//!   trees left by a worker that died.
//! - chromiumoxide (and its ≈130 s protocol crate) is a dependency of this crate only.

mod first_party;
mod guard;
mod pool;
mod process;
mod proxy;
mod render;
mod snapshot;
mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use selextract_fetch::guard::GuardPolicy;
use selextract_fetch::{FetchError, FetchRequest, FetchResponse, Fetcher, RenderOptions, Rendered};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use guard::check_request_url;
pub use pool::{BrowserPool, PoolStats};
pub use process::{
    CHROMIUM_FLAGS, group_members, group_rss_bytes, process_groups_mentioning, processes_mentioning,
};

/// Where Debian puts Chromium: the headless shell first (faster launch, less memory), then
/// the full browser. `/usr/bin/chromium-headless-shell` is a wrapper that does not `exec`, so
/// the real binary is named.
pub const CHROMIUM_CANDIDATES: &[&str] = &[
    "/usr/lib/chromium/chromium-headless-shell",
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
];

/// The first Chromium binary found on this machine.
pub fn find_chromium() -> Option<PathBuf> {
    CHROMIUM_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

/// The pool's limits and where its browsers live. The `[browser]` section of the settings
/// tree deserializes straight into it, with the key names and units the operator writes
/// (`memory_cap_mb`, `launch_timeout_seconds`); the wiring (`runtime_dir`, `guard`,
/// `proxies`, `max_snapshot_bytes`, which come from elsewhere) is filled in by whoever starts
/// the pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserPoolConfig {
    /// Whether the process renders at all; read by whoever starts the pool (off: browser
    /// tasks are refused and auto tasks stay on HTTP).
    pub enabled: bool,
    /// Chromium binary; empty means the first of [`CHROMIUM_CANDIDATES`] that exists.
    pub executable: PathBuf,
    /// Holds one data directory and one PID file per browser; stale ones are reaped at start.
    #[serde(skip)]
    pub runtime_dir: PathBuf,
    pub max_browsers: usize,
    pub pages_per_browser: usize,
    /// A browser is recycled after this many pages...
    pub recycle_after_pages: u64,
    /// ...or this long after its launch...
    #[serde(
        rename = "recycle_after_minutes",
        with = "selextract_config::units::duration_minutes"
    )]
    pub recycle_after: Duration,
    /// ...or when its process tree's resident memory passes this many bytes.
    #[serde(rename = "memory_cap_mb", with = "selextract_config::units::mebibytes")]
    pub memory_cap_bytes: u64,
    /// The JavaScript heap limit of each renderer (V8's `--max-old-space-size`), so an
    /// allocation bomb crashes its renderer quickly instead of eating the machine.
    pub js_heap_mb: u64,
    /// How long a Chromium launch may take.
    #[serde(
        rename = "launch_timeout_seconds",
        with = "selextract_config::units::duration_seconds"
    )]
    pub launch_timeout: Duration,
    /// The same guard policy as the HTTP fetcher's.
    #[serde(skip)]
    pub guard: GuardPolicy,
    /// Proxy servers for tasks with `proxy.enabled` (`http://`, `socks5://` or `socks5h://`
    /// `host:port`, without credentials: the guarding proxy chains to them), chosen per
    /// session key; empty means such tasks render without a proxy.
    #[serde(skip)]
    pub proxies: Vec<String>,
    /// Bytes one DOM snapshot may have when the render does not say
    /// (`RenderOptions::max_snapshot_bytes`).
    #[serde(skip)]
    pub max_snapshot_bytes: usize,
}

impl BrowserPoolConfig {
    /// Defaults: 2 browsers of 4 pages, recycled after 100 pages, 30 minutes or 1 GiB; a
    /// 512 MiB JavaScript heap per renderer; 10 MiB per DOM snapshot.
    pub fn new(executable: impl Into<PathBuf>, runtime_dir: impl AsRef<Path>) -> Self {
        BrowserPoolConfig {
            enabled: true,
            executable: executable.into(),
            runtime_dir: runtime_dir.as_ref().to_path_buf(),
            max_browsers: 2,
            pages_per_browser: 4,
            recycle_after_pages: 100,
            recycle_after: Duration::from_secs(30 * 60),
            memory_cap_bytes: 1 << 30,
            js_heap_mb: 512,
            launch_timeout: Duration::from_secs(20),
            guard: GuardPolicy::default(),
            proxies: Vec::new(),
            max_snapshot_bytes: 10 * 1024 * 1024,
        }
    }
}

/// The defaults of [`BrowserPoolConfig::new`] with no executable named (found at start) and
/// no runtime directory yet.
impl Default for BrowserPoolConfig {
    fn default() -> Self {
        BrowserPoolConfig::new(PathBuf::new(), Path::new(""))
    }
}

/// Why the pool could not provide a browser.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("cannot launch Chromium {executable}: {message}")]
    Launch { executable: String, message: String },
    #[error("{what}: {message}")]
    Io { what: &'static str, message: String },
    #[error("DevTools protocol: {0}")]
    Protocol(String),
    #[error("the browser pool is shut down")]
    ShutDown,
}

/// The engine's browser fetcher: renders pages in the pool's Chromium.
#[derive(Debug, Clone)]
pub struct BrowserFetcher {
    pool: Arc<BrowserPool>,
}

impl BrowserFetcher {
    pub fn new(pool: Arc<BrowserPool>) -> Self {
        BrowserFetcher { pool }
    }

    pub fn pool(&self) -> &Arc<BrowserPool> {
        &self.pool
    }
}

#[async_trait::async_trait]
impl Fetcher for BrowserFetcher {
    async fn fetch(
        &self,
        req: &FetchRequest,
        cancel: &CancellationToken,
    ) -> Result<FetchResponse, FetchError> {
        let rendered = self
            .pool
            .render(req, &RenderOptions::default(), cancel)
            .await?;
        rendered
            .pages
            .into_iter()
            .next()
            .ok_or_else(|| FetchError::Body {
                url: req.url.clone(),
                message: "the browser returned no page".to_owned(),
            })
    }

    async fn render(
        &self,
        req: &FetchRequest,
        options: &RenderOptions,
        cancel: &CancellationToken,
    ) -> Result<Rendered, FetchError> {
        self.pool.render(req, options, cancel).await
    }
}
