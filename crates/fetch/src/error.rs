//! Why a fetch or the construction of a fetcher failed.

use std::time::Duration;

use url::Url;

use crate::guard::GuardError;

/// Why a fetch failed. Any HTTP status is a response, not an error: these are the cases where
/// no usable response exists.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A custom header (or the cookies) cannot be sent; the value is never part of the message.
    #[error("invalid request header {name}")]
    InvalidHeader { name: String },
    #[error("refused to fetch {url}: {reason}")]
    Blocked { url: Url, reason: GuardError },
    #[error("robots.txt disallows {url}")]
    RobotsDisallowed { url: Url },
    #[error("{stage} timeout fetching {url}")]
    Timeout { url: Url, stage: &'static str },
    #[error("response from {url} exceeds the {limit}-byte limit")]
    TooLarge { url: Url, limit: u64 },
    /// The response head (status line and headers) is larger than the HTTP client accepts
    /// (about 400 KiB, or more than 100 headers).
    #[error("the response head from {url} is too large")]
    HeadTooLarge { url: Url },
    #[error("more than {limit} redirects fetching {url}")]
    TooManyRedirects { url: Url, limit: usize },
    #[error("cannot connect to {url}: {message}")]
    Connect { url: Url, message: String },
    /// `proxy` never contains credentials.
    #[error("proxy {proxy}: {message}")]
    Proxy { proxy: String, message: String },
    #[error("TLS error with {url}: {message}")]
    Tls { url: Url, message: String },
    #[error("error reading the response from {url}: {message}")]
    Body { url: Url, message: String },
    /// The browser rendering the page crashed (or its renderer did) on every attempt.
    #[error("the browser crashed rendering {url}: {message}")]
    Crashed { url: Url, message: String },
    /// The request's turn under politeness (its task's own pacing and the host's) would
    /// have come more than `limit` after it asked; it was not sent.
    #[error("waiting for a turn to fetch {url} would take longer than {limit:?}")]
    PolitenessWaitExceeded { url: Url, limit: Duration },
    #[error("fetch cancelled")]
    Cancelled,
}

impl FetchError {
    /// A stable snake_case name for metrics, logs and run diagnostics.
    pub fn class(&self) -> &'static str {
        match self {
            FetchError::InvalidUrl { .. } => "invalid_url",
            FetchError::InvalidHeader { .. } => "invalid_header",
            FetchError::Blocked { .. } => "blocked_address",
            FetchError::RobotsDisallowed { .. } => "robots_disallowed",
            FetchError::Timeout { .. } => "timeout",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::HeadTooLarge { .. } => "head_too_large",
            FetchError::TooManyRedirects { .. } => "too_many_redirects",
            FetchError::Connect { .. } => "connect",
            FetchError::Proxy { .. } => "proxy",
            FetchError::Tls { .. } => "tls",
            FetchError::Body { .. } => "body",
            FetchError::Crashed { .. } => "browser_crashed",
            FetchError::PolitenessWaitExceeded { .. } => "politeness_wait_exceeded",
            FetchError::Cancelled => "cancelled",
        }
    }

    /// Whether another attempt may succeed: transient network trouble, not a refusal. A
    /// browser crash is not: the browser pool has already retried the page in a fresh browser.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FetchError::Timeout { .. }
                | FetchError::Connect { .. }
                | FetchError::Proxy { .. }
                | FetchError::Body { .. }
        )
    }
}

/// Why an [`HttpFetcher`](crate::HttpFetcher) could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `proxy` is shown without credentials.
    #[error("invalid proxy {proxy}: {reason}")]
    InvalidProxy { proxy: String, reason: String },
    #[error("invalid user agent")]
    InvalidUserAgent,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}
