//! Per-host politeness: how many requests may be in flight to one host and how far apart
//! their starts must be. The in-memory implementation serves one process; the trait lets a
//! shared (Redis) implementation take its place for a fleet of workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng as _;
use selextract_spec::RateLimit;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Grants permission to start a request to a host. Dropping the permit ends the request's
/// turn (its concurrency slot is released).
#[async_trait::async_trait]
pub trait Politeness: Send + Sync {
    /// Waits until a request to `host` may start under `rate` and the robots.txt
    /// `crawl_delay`. Cancel by dropping the future.
    async fn acquire(
        &self,
        host: &str,
        rate: &RateLimit,
        crawl_delay: Option<Duration>,
    ) -> PolitenessPermit;
}

/// Held for the duration of one request; releases the host's concurrency slot when dropped.
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

/// The minimum spacing between request starts to one host.
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

/// Forget idle hosts once this many are tracked, so a long crawl does not grow without bound.
const MAX_TRACKED_HOSTS: usize = 10_000;

#[derive(Default)]
struct HostState {
    in_flight: u32,
    /// The earliest instant the next request may start.
    next_start: Option<Instant>,
}

struct Host {
    state: Mutex<HostState>,
    slot_freed: Notify,
}

/// In-process politeness, shared by all fetches of one `HttpFetcher`.
#[derive(Default)]
pub struct LocalPoliteness {
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

impl LocalPoliteness {
    pub fn new() -> Self {
        Self::default()
    }

    fn host(&self, host: &str) -> Arc<Host> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if hosts.len() >= MAX_TRACKED_HOSTS && !hosts.contains_key(host) {
            let now = Instant::now();
            hosts.retain(|_, h| {
                let state = h.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.in_flight > 0
                    || state.next_start.is_some_and(|t| t > now)
                    || Arc::strong_count(h) > 1
            });
        }
        Arc::clone(hosts.entry(host.to_owned()).or_insert_with(|| {
            Arc::new(Host {
                state: Mutex::new(HostState::default()),
                slot_freed: Notify::new(),
            })
        }))
    }
}

impl LocalPoliteness {
    /// Waits for one of the host's `limit` concurrency slots; the returned guard gives it
    /// back when dropped. Shared with the Redis implementation, whose concurrency limit
    /// stays per process.
    pub(crate) async fn acquire_slot(&self, host: &str, limit: u32) -> HostSlot {
        let host = self.host(host);
        let limit = limit.max(1);
        loop {
            let freed = host.slot_freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between the check and the wait is
            // not missed.
            freed.as_mut().enable();
            {
                let mut state = host.state.lock().unwrap_or_else(PoisonError::into_inner);
                if state.in_flight < limit {
                    state.in_flight += 1;
                    break;
                }
            }
            freed.await;
        }
        HostSlot { host }
    }
}

/// One concurrency slot of a host, held for one request; released when dropped.
pub(crate) struct HostSlot {
    host: Arc<Host>,
}

impl HostSlot {
    /// Reserves the next start time in this process's view of the host: the later of now
    /// and the host's next allowed start; the one after is `interval` later.
    pub(crate) fn reserve_local_start(&self, interval: Duration) -> Instant {
        let mut state = self
            .host
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let start = state.next_start.map_or(now, |t| t.max(now));
        state.next_start = Some(start + interval);
        start
    }

    pub(crate) fn into_permit(self) -> PolitenessPermit {
        PolitenessPermit::releasing(Box::new(self))
    }
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        let mut state = self
            .host
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.in_flight = state.in_flight.saturating_sub(1);
        drop(state);
        self.host.slot_freed.notify_waiters();
    }
}

#[async_trait::async_trait]
impl Politeness for LocalPoliteness {
    async fn acquire(
        &self,
        host: &str,
        rate: &RateLimit,
        crawl_delay: Option<Duration>,
    ) -> PolitenessPermit {
        // First a concurrency slot, then a start time: reserving start times first would let
        // requests queued behind a full host start back to back once a slot frees. If this
        // future is dropped while sleeping, the slot's guard gives the slot back.
        let slot = self.acquire_slot(host, rate.concurrency_per_domain).await;
        let start = slot.reserve_local_start(start_interval(rate, crawl_delay));
        tokio::time::sleep_until(start).await;
        slot.into_permit()
    }
}
