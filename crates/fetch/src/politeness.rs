//! Politeness in two layers, so that one tenant's pacing never slows another's:
//!
//! - the **host layer**, shared by every request to a host whoever sends it: the
//!   installation's per-host rate ([`HostLimits`]: a minimum spacing between starts and a cap
//!   on requests in flight) and the host's robots.txt `Crawl-delay`;
//! - the **scope layer**, per (`FetchRequest::politeness_scope`, host): the task's own
//!   `rate_limit` (`delay_ms`, `jitter_ms`, `requests_per_minute`, `concurrency_per_domain`).
//!   A task's delay spaces only its own scope's requests.
//!
//! A request first waits for its turn in its scope, then for the host; the host's start is
//! reserved only once the scope's turn has come, so a scope waiting out a long delay holds no
//! place in the host's queue. The whole wait is bounded by [`HostLimits::max_wait`]: a turn
//! that would come later fails with [`WaitExceeded`] instead of hanging.
//!
//! The in-memory implementation ([`LocalPoliteness`]) serves one process; the trait lets a
//! shared (Redis) implementation take its place for a fleet of workers.

mod local;

use std::time::Duration;

use rand::Rng as _;
use selextract_spec::RateLimit;
use tokio::time::Instant;

pub use local::{LocalPoliteness, MAX_SCOPES_PER_HOST};
pub(crate) use local::{Slot, host_cap, wait_until};

/// Grants permission to start a request to a host. Dropping the permit ends the request's
/// turn (its concurrency slots are released).
#[async_trait::async_trait]
pub trait Politeness: Send + Sync {
    /// Waits until the request described by `turn` may start, or fails at once when its turn
    /// would come after `turn.limits.max_wait`. Cancel by dropping the future.
    async fn acquire(&self, turn: &Turn<'_>) -> Result<PolitenessPermit, WaitExceeded>;
}

/// The installation's own per-host limits (operator settings), the same for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Minimum spacing between request starts to one host, whoever sends them; a robots.txt
    /// `Crawl-delay` raises it for that host. Zero: no installation spacing.
    pub min_interval: Duration,
    /// Requests in flight to one host at once, whoever sends them (per process, like
    /// `concurrency_per_domain`). Zero: no cap.
    pub max_in_flight: u32,
    /// The longest a request may wait for its turn (its scope's slot and spacing, then the
    /// host's). A turn due later fails the request with [`WaitExceeded`].
    pub max_wait: Duration,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            min_interval: Duration::ZERO,
            max_in_flight: 0,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// Default of [`HostLimits::max_wait`]: longer than the waits a valid task usually causes
/// itself (at the default `concurrency_per_domain` of 8 and the largest `delay_ms` a spec may
/// ask by default, 60 s, the eighth request waits 8 minutes), short enough that a worker's
/// fetch is never parked for hours.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// Intervals are cut here, so that an absurd delay (`u64::MAX` ms) cannot overflow a clock;
/// anything this long already fails every later request of its scope with [`WaitExceeded`].
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);

/// One request's claim to a turn.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    pub host: &'a str,
    /// Whose pacing `rate` is (e.g. the run id); `None` is one anonymous scope.
    pub scope: Option<&'a str>,
    /// The task's own pacing, applied within its scope.
    pub rate: &'a RateLimit,
    /// The host's robots.txt `Crawl-delay` (host layer), when robots.txt applies.
    pub crawl_delay: Option<Duration>,
    pub limits: &'a HostLimits,
}

impl Turn<'_> {
    /// The spacing between starts within the scope (the task's own rate), for one request.
    pub fn scope_interval(&self) -> Duration {
        start_interval(self.rate, None).min(MAX_INTERVAL)
    }

    /// The spacing between starts to the host, whoever sends them.
    pub fn host_interval(&self) -> Duration {
        self.limits
            .min_interval
            .max(self.crawl_delay.unwrap_or(Duration::ZERO))
            .min(MAX_INTERVAL)
    }

    /// The instant after which the turn may not come; `None` when the bound is too far away
    /// to be represented (no bound).
    pub(crate) fn deadline(&self, from: Instant) -> Option<Instant> {
        from.checked_add(self.limits.max_wait)
    }
}

/// The request's turn would come later than [`HostLimits::max_wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the turn would come more than {limit:?} from now")]
pub struct WaitExceeded {
    pub limit: Duration,
}

/// Held for the duration of one request; releases its concurrency slots when dropped.
pub struct PolitenessPermit {
    _release: Option<Box<dyn Send + Sync>>,
}

impl PolitenessPermit {
    /// A permit that holds nothing (for implementations without concurrency slots).
    pub fn unbounded() -> Self {
        PolitenessPermit { _release: None }
    }

    /// A permit that runs `release`'s `Drop` when the request ends.
    pub fn releasing(release: Box<dyn Send + Sync>) -> Self {
        PolitenessPermit {
            _release: Some(release),
        }
    }
}

impl std::fmt::Debug for PolitenessPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolitenessPermit")
    }
}

/// The minimum spacing between request starts that `rate` and a `crawl_delay` ask for (the
/// scope layer passes no crawl delay: that belongs to the host layer).
pub fn start_interval(rate: &RateLimit, crawl_delay: Option<Duration>) -> Duration {
    let per_minute = rate
        .requests_per_minute
        .filter(|rpm| *rpm > 0)
        .map_or(Duration::ZERO, |rpm| Duration::from_secs(60) / rpm);
    let jitter = if rate.jitter_ms > 0 {
        rand::rng().random_range(0..=rate.jitter_ms)
    } else {
        0
    };
    let delay = Duration::from_millis(rate.delay_ms.saturating_add(jitter));
    per_minute
        .max(delay)
        .max(crawl_delay.unwrap_or(Duration::ZERO))
}
