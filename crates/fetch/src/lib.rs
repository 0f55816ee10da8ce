//! Fetching pages over HTTP for extraction: the [`Fetcher`] trait and its reqwest
//! implementation [`HttpFetcher`], with the URL safety guard, robots.txt, per-host
//! politeness, retries and a proxy pool.
//!
//! Architecture invariants:
//! - No connection is made to an address the [`guard`] refuses: IP literals are checked
//!   before sending, names are resolved by a resolver that returns only allowed addresses,
//!   and every redirect hop is checked again.
//! - Any HTTP status is a response ([`FetchResponse`]); [`FetchError`] means no usable
//!   response exists.
//! - Header values and cookies are never logged; debug logs carry URLs and statuses only.
//! - A task's headers and cookies go only to the origin of the URL it asked for: after a
//!   redirect to another origin (including https → http) none of them is sent again.
//! - No request waits for its politeness turn longer than the installation's bound; one
//!   tenant's pacing spaces only its own requests (see [`politeness`]).

mod error;
mod fetcher;
pub mod guard;
mod origin;
pub mod politeness;
mod proxy;
pub mod redis_politeness;
pub mod retry;
mod robots;
mod transfer;

use std::time::Duration;

use bytes::Bytes;
use selextract_spec::{BrowserSpec, RateLimit};
use tokio_util::sync::CancellationToken;
use url::Url;

pub use error::{BuildError, FetchError};
pub use fetcher::{HttpFetcher, HttpFetcherConfig};
pub use guard::GuardError;
pub use origin::same_origin;
pub use politeness::{
    HostLimits, LocalPoliteness, Politeness, PolitenessPermit, Turn, WaitExceeded,
};
pub use proxy::display_proxy;
pub use redis_politeness::{RedisLink, RedisPoliteness};
pub use robots::RobotsRules;

/// Fetches one URL. Implemented over plain HTTP here and over a browser elsewhere.
#[async_trait::async_trait]
pub trait Fetcher: Send + Sync {
    /// Fetches `req.url`, following redirects and retrying as the request says; returns
    /// [`FetchError::Cancelled`] promptly once `cancel` fires.
    async fn fetch(
        &self,
        req: &FetchRequest,
        cancel: &CancellationToken,
    ) -> Result<FetchResponse, FetchError>;

    /// Fetches `req.url` as a browser would render it, with in-page pagination (clicking a
    /// button, scrolling) when `options` asks for it: one response per page. Fetchers that
    /// cannot render (plain HTTP) ignore `options` and return the single fetched response.
    async fn render(
        &self,
        req: &FetchRequest,
        options: &RenderOptions,
        cancel: &CancellationToken,
    ) -> Result<Rendered, FetchError> {
        let _ = options;
        let response = self.fetch(req, cancel).await?;
        Ok(Rendered {
            pages: vec![response],
            blocked_requests: 0,
            blocked_urls: Vec::new(),
        })
    }
}

/// How a browser renders a page: the task's `browser` section and in-page pagination.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    pub browser: BrowserSpec,
    /// CSS selector of the records, so that in-page pagination can hand out each record
    /// once: elements already returned are left out of later snapshots.
    pub item_selector: Option<String>,
    /// CSS selector of a "next"/"load more" control that is clicked when it is not a link.
    pub click_selector: Option<String>,
    /// Scroll to the bottom to load more items (infinite scroll).
    pub scroll: bool,
    /// Pages (snapshots) to return at most, the first one included; 0 means 1.
    pub max_pages: u32,
    /// In-page pagination stops after a snapshot on which this CSS selector matches.
    pub stop_selector: Option<String>,
    /// Bytes one DOM snapshot may have (the browser's `max_body_bytes`); `None` leaves the
    /// browser pool's own default. A larger snapshot fails the page as `body_too_large`.
    pub max_snapshot_bytes: Option<usize>,
}

/// What a render produced: the page snapshots in order, and the requests the page tried to
/// make that the URL guard refused.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub pages: Vec<FetchResponse>,
    pub blocked_requests: u64,
    /// The first few refused URLs (for the run log).
    pub blocked_urls: Vec<String>,
}

/// One page to fetch and how.
#[derive(Clone)]
pub struct FetchRequest {
    pub url: Url,
    /// Custom headers (a `User-Agent` here replaces the default).
    pub headers: Vec<(String, String)>,
    /// Sent as one `Cookie` header.
    pub cookies: Vec<(String, String)>,
    /// Time allowed for one attempt's network work (resolving, redirects, body), not counting
    /// politeness waits or robots.txt; zero means no limit but the fetcher's own
    /// `max_transfer_time`.
    pub timeout: Duration,
    pub max_retries: u32,
    /// Base of the exponential backoff between attempts.
    pub retry_delay: Duration,
    pub respect_robots_txt: bool,
    pub rate_limit: RateLimit,
    pub use_proxy: bool,
    /// Keeps the same proxy for the same key (e.g. the run id) while that proxy is healthy.
    pub session_key: Option<String>,
    /// Whose pacing `rate_limit` is (e.g. the run id): a task's own delay and per-minute
    /// cap space only the requests of its own scope, never another user's requests to the
    /// same host. `None` is one anonymous scope (one-shot CLI runs).
    pub politeness_scope: Option<String>,
    /// Consecutive failures that bench a proxy (the task's `proxy.max_failures`); `None`
    /// uses the fetcher's configured default.
    pub proxy_max_failures: Option<u32>,
}

impl FetchRequest {
    /// A request with the task spec's defaults: 30 s timeout, 3 retries from 2 s, robots.txt
    /// respected, default rate limit, no proxy.
    pub fn new(url: Url) -> Self {
        FetchRequest {
            url,
            headers: Vec::new(),
            cookies: Vec::new(),
            timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_delay: Duration::from_secs(2),
            respect_robots_txt: true,
            rate_limit: RateLimit::default(),
            use_proxy: false,
            session_key: None,
            politeness_scope: None,
            proxy_max_failures: None,
        }
    }
}

/// Header and cookie values stay out of debug output: they may hold secrets.
impl std::fmt::Debug for FetchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        let cookie_names: Vec<&str> = self.cookies.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("FetchRequest")
            .field("url", &self.url.as_str())
            .field("headers", &header_names)
            .field("cookies", &cookie_names)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_delay", &self.retry_delay)
            .field("respect_robots_txt", &self.respect_robots_txt)
            .field("rate_limit", &self.rate_limit)
            .field("use_proxy", &self.use_proxy)
            .field("session_key", &self.session_key)
            .field("politeness_scope", &self.politeness_scope)
            .finish()
    }
}

/// A response, whatever its status.
#[derive(Debug, Clone)]
pub struct FetchResponse {
    /// The final URL, after redirects.
    pub url: Url,
    pub status: u16,
    pub content_type: Option<String>,
    /// The body, decompressed.
    pub body: Bytes,
    /// The redirect targets followed, in order.
    pub redirects: Vec<Url>,
    /// Attempts made, including the one that produced this response.
    pub attempts: u32,
    pub via_proxy: bool,
    /// From the first attempt's start to the end of the body, waits included.
    pub elapsed: Duration,
    /// The body is a DOM snapshot from a browser that ran the page's JavaScript (so
    /// `<noscript>` content is text there), not the bytes a server sent.
    pub rendered: bool,
}
