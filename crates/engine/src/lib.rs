//! Runs one validated task spec end to end — fetch, extract, paginate — as a stream of
//! page results, progress and a final summary. Used by `selextract scrape` and by workers.
//!
//! Architecture invariants:
//! - The engine owns no storage: it emits [`EngineEvent`]s and the caller decides what to
//!   keep. Every page carries a deterministic [`PageKey`] (`s{start}-p{page}`), so a caller
//!   that re-executes a run after a crash can recognise pages it already stored.
//! - Compute units are reserved from the caller's [`Budget`] *before* a page is fetched or
//!   rendered — in browser mode for every snapshot the render may return — by one
//!   reservation step, and what was not used is refunded; a page is never charged twice.
//!   The engine stops with [`StopReason::BudgetExhausted`] when a reservation is refused.
//! - A run stops fetching once it has lasted `limits.max_run_seconds`
//!   ([`StopReason::TimeLimit`]); pages already fetched are still extracted and emitted.
//! - Within one start URL, pages are emitted in page order; across start URLs, in completion
//!   order.

mod chain;
mod extraction;
mod fetching;
mod reservation;
mod run;
mod verdict;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

pub use run::start;
pub use selextract_extract::Diagnostics;
pub use verdict::{Reason, Verdict};

/// Identifies a page within a run: which start URL, and how many pages into its
/// pagination chain (0 is the start page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PageKey {
    pub start_index: u32,
    pub page_index: u32,
}

impl fmt::Display for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}-p{}", self.start_index, self.page_index)
    }
}

/// What became of one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PageOutcome {
    /// A 2xx response, extracted.
    Ok,
    /// A non-2xx response (after retries); not extracted.
    HttpStatus { status: u16 },
    /// No response: the fetch failed (`class` is the stable [`FetchError`] class such as
    /// `timeout`, `blocked_address`, `robots_disallowed`); or the page's records exceeded
    /// the size limits (`records_too_large`), or extracting it needed more work than
    /// `limits.max_extraction_steps` (`extraction_too_costly`).
    ///
    /// [`FetchError`]: selextract_fetch::FetchError
    Error { class: String, message: String },
}

impl PageOutcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, PageOutcome::Ok)
    }

    /// A short stable label: `ok`, `http_404`, or the error class.
    pub fn label(&self) -> String {
        match self {
            PageOutcome::Ok => "ok".to_owned(),
            PageOutcome::HttpStatus { status } => format!("http_{status}"),
            PageOutcome::Error { class, .. } => class.clone(),
        }
    }
}

/// How a page was fetched, for metering and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchMode {
    Http,
    Browser,
}

impl FetchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchMode::Http => "http",
            FetchMode::Browser => "browser",
        }
    }
}

/// One finished page and the records extracted from it.
#[derive(Debug, Clone, Serialize)]
pub struct PageResult {
    pub key: PageKey,
    /// The URL requested.
    pub url: Url,
    /// The URL after redirects, when a response arrived.
    pub final_url: Option<Url>,
    pub status: Option<u16>,
    pub outcome: PageOutcome,
    pub records: Vec<Map<String, Value>>,
    #[serde(skip)]
    pub diagnostics: Option<Diagnostics>,
    pub compute_units: u64,
    pub mode: FetchMode,
    pub via_proxy: bool,
    pub attempts: u32,
    pub elapsed_ms: u64,
}

/// Counters after each page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub pages_done: u64,
    pub pages_failed: u64,
    /// Pages done plus pages discovered and not yet done.
    pub pages_known: u64,
    pub records: u64,
    pub records_dropped: u64,
    pub compute_units: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every chain ran to its end.
    Finished,
    Cancelled,
    BudgetExhausted,
    /// The run lasted `limits.max_run_seconds`.
    TimeLimit,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub progress: Progress,
    pub stop: StopReason,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// A line for the run's log. Never contains header values, cookies or keys.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
    pub fields: Value,
}

#[derive(Debug, Clone)]
pub enum EngineEvent {
    Page(Box<PageResult>),
    Progress(Progress),
    Log(LogLine),
    /// Always the last event.
    Done(Summary),
}

/// Compute-unit prices (SPEC §6). The settings section `[compute_units]` deserializes
/// straight into this type, so its defaults are the only ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeRates {
    pub http_page: u64,
    pub browser_page: u64,
    pub proxy_page: u64,
}

impl Default for ComputeRates {
    fn default() -> Self {
        ComputeRates {
            http_page: 1,
            browser_page: 5,
            proxy_page: 1,
        }
    }
}

/// Where compute units come from. The engine reserves before each fetch or render; a
/// refusal stops the run. `refund` returns units that a fetch did not use (no response, or
/// fewer browser snapshots than reserved).
pub trait Budget: Send + Sync {
    fn try_reserve(&self, units: u64) -> bool;
    fn refund(&self, units: u64);

    /// Reserves `unit` units for each of up to `pages` pages, as many as the budget allows;
    /// returns how many pages were granted (0 to `pages`). Asks for large chunks first and
    /// halves on refusal, so a render of many snapshots costs a few calls, not one per page.
    fn reserve_pages(&self, unit: u64, pages: u32) -> u32 {
        let mut granted = 0;
        let mut chunk = pages;
        while granted < pages && chunk > 0 {
            chunk = chunk.min(pages - granted);
            if self.try_reserve(unit.saturating_mul(u64::from(chunk))) {
                granted += chunk;
            } else {
                chunk /= 2;
            }
        }
        granted
    }
}

/// A budget without limit (the CLI; self-hosted plans).
#[derive(Debug, Default)]
pub struct Unlimited;

impl Budget for Unlimited {
    fn try_reserve(&self, _units: u64) -> bool {
        true
    }
    fn refund(&self, _units: u64) {}
}

/// Everything the engine needs besides the spec.
#[derive(Clone)]
pub struct EngineOptions {
    /// Pages in flight at once across all start URLs.
    pub concurrency: usize,
    pub rates: ComputeRates,
    pub budget: Arc<dyn Budget>,
    /// The HTTP fetcher (shared by all runs of a process, so politeness is shared too).
    pub http: Arc<dyn selextract_fetch::Fetcher>,
    /// The browser fetcher, when this process has one.
    pub browser: Option<Arc<dyn selextract_fetch::Fetcher>>,
    /// Sticky-proxy session key (e.g. the run id).
    pub session_key: Option<String>,
    /// Extractions running ahead of a pagination chain, bounding memory per chain.
    pub extraction_lookahead: usize,
}

impl EngineOptions {
    pub fn new(http: Arc<dyn selextract_fetch::Fetcher>) -> Self {
        EngineOptions {
            concurrency: 8,
            rates: ComputeRates::default(),
            budget: Arc::new(Unlimited),
            http,
            browser: None,
            session_key: None,
            extraction_lookahead: 4,
        }
    }
}

impl fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineOptions")
            .field("concurrency", &self.concurrency)
            .field("rates", &self.rates)
            .field("browser", &self.browser.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a run could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("mode \"{0}\" needs a browser, and this process has no browser fetcher")]
    BrowserUnavailable(&'static str),
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
