//! In-process politeness: one lane per host and one per (scope, host), each with a count of
//! requests in flight and the earliest next start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Politeness, PolitenessPermit, Turn, WaitExceeded};

/// Forget idle hosts once this many are tracked, so a long crawl does not grow without bound.
const MAX_TRACKED_HOSTS: usize = 10_000;
/// Forget a host's idle scopes once it has this many (finished runs leave theirs behind).
pub const MAX_SCOPES_PER_HOST: usize = 1_000;

#[derive(Default)]
struct LaneState {
    in_flight: u32,
    /// The earliest instant the next request may start.
    next_start: Option<Instant>,
}

/// Requests in flight and the next allowed start of one host, or of one scope on one host.
#[derive(Default)]
pub(crate) struct Lane {
    state: Mutex<LaneState>,
    slot_freed: Notify,
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether forgetting the lane would lose something: a request holds or awaits it, or
    /// a reserved start lies ahead.
    fn is_busy(self: &Arc<Self>, now: Instant) -> bool {
        let state = self.lock();
        state.in_flight > 0
            || state.next_start.is_some_and(|t| t > now)
            || Arc::strong_count(self) > 1
    }

    /// Waits for one of `limit` concurrency slots; `None` when none frees before `deadline`.
    /// The returned slot gives itself back when dropped.
    pub(crate) async fn acquire_slot(
        self: &Arc<Self>,
        limit: u32,
        deadline: Option<Instant>,
    ) -> Option<Slot> {
        let limit = limit.max(1);
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between the check and the wait is
            // not missed.
            freed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.in_flight < limit {
                    state.in_flight += 1;
                    break;
                }
            }
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, freed).await.ok()?,
                None => freed.await,
            }
        }
        Some(Slot {
            lane: Arc::clone(self),
        })
    }
}

/// One concurrency slot of a lane, held for one request; released when dropped.
pub(crate) struct Slot {
    lane: Arc<Lane>,
}

impl Slot {
    /// Reserves the next start in this process's view of the lane: the later of now and the
    /// lane's next allowed start; the one after is `interval` later. Reserves nothing and
    /// answers `None` when that start is after `deadline`.
    pub(crate) fn reserve_start(
        &self,
        interval: std::time::Duration,
        deadline: Option<Instant>,
    ) -> Option<Instant> {
        let mut state = self.lane.lock();
        let now = Instant::now();
        let start = state.next_start.map_or(now, |t| t.max(now));
        if deadline.is_some_and(|deadline| start > deadline) {
            return None;
        }
        // `interval` is capped (MAX_INTERVAL), so this cannot overflow in practice; if it
        // did, the lane would simply stay closed as long as representable.
        state.next_start = Some(start.checked_add(interval).unwrap_or(start));
        Some(start)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.lane.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        drop(state);
        self.lane.slot_freed.notify_waiters();
    }
}

/// Sleeps until `start` unless it has already come (no timer for the common case).
pub(crate) async fn wait_until(start: Instant) {
    if start > Instant::now() {
        tokio::time::sleep_until(start).await;
    }
}

/// The lanes of one host: its own and those of the scopes that sent requests to it.
#[derive(Default)]
struct HostLanes {
    host: Arc<Lane>,
    anonymous: Arc<Lane>,
    scopes: HashMap<Box<str>, Arc<Lane>>,
}

impl HostLanes {
    fn is_busy(&self, now: Instant) -> bool {
        self.host.is_busy(now)
            || self.anonymous.is_busy(now)
            || self.scopes.values().any(|lane| lane.is_busy(now))
    }

    fn scope(&mut self, scope: Option<&str>, now: Instant) -> Arc<Lane> {
        let Some(scope) = scope else {
            return Arc::clone(&self.anonymous);
        };
        if let Some(lane) = self.scopes.get(scope) {
            return Arc::clone(lane);
        }
        if self.scopes.len() >= MAX_SCOPES_PER_HOST {
            self.scopes.retain(|_, lane| lane.is_busy(now));
        }
        Arc::clone(self.scopes.entry(scope.into()).or_default())
    }
}

/// In-process politeness, shared by all fetches of one `HttpFetcher`.
#[derive(Default)]
pub struct LocalPoliteness {
    hosts: Mutex<HashMap<Box<str>, HostLanes>>,
}

impl LocalPoliteness {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many scopes this process tracks on `host` (idle ones are forgotten once a host
    /// has [`MAX_SCOPES_PER_HOST`]), for tests and diagnostics.
    pub fn tracked_scopes(&self, host: &str) -> usize {
        let hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.get(host).map_or(0, |lanes| lanes.scopes.len())
    }

    /// The host's lane and the lane of `scope` on that host.
    pub(crate) fn lanes(&self, host: &str, scope: Option<&str>) -> (Arc<Lane>, Arc<Lane>) {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if !hosts.contains_key(host) && hosts.len() >= MAX_TRACKED_HOSTS {
            hosts.retain(|_, lanes| lanes.is_busy(now));
        }
        let lanes = hosts.entry(host.into()).or_default();
        (Arc::clone(&lanes.host), lanes.scope(scope, now))
    }
}

#[async_trait::async_trait]
impl Politeness for LocalPoliteness {
    async fn acquire(&self, turn: &Turn<'_>) -> Result<PolitenessPermit, WaitExceeded> {
        let exceeded = WaitExceeded {
            limit: turn.limits.max_wait,
        };
        let deadline = turn.deadline(Instant::now());
        let (host_lane, scope_lane) = self.lanes(turn.host, turn.scope);
        // The scope first, slot before start: a start reserved while waiting for a slot
        // would be wasted, and requests queued behind a full scope would then start back to
        // back. If this future is dropped while waiting, the slots' guards give them back.
        let scope_slot = scope_lane
            .acquire_slot(turn.rate.concurrency_per_domain, deadline)
            .await
            .ok_or(exceeded)?;
        let start = scope_slot
            .reserve_start(turn.scope_interval(), deadline)
            .ok_or(exceeded)?;
        wait_until(start).await;
        // Only now the host: a scope sitting out its own delay holds no place in the
        // host's queue.
        let host_slot = host_lane
            .acquire_slot(host_cap(turn), deadline)
            .await
            .ok_or(exceeded)?;
        let start = host_slot
            .reserve_start(turn.host_interval(), deadline)
            .ok_or(exceeded)?;
        wait_until(start).await;
        Ok(PolitenessPermit::releasing(Box::new((
            scope_slot, host_slot,
        ))))
    }
}

/// The installation's cap on requests in flight to the host; 0 means none.
pub(crate) fn host_cap(turn: &Turn<'_>) -> u32 {
    match turn.limits.max_in_flight {
        0 => u32::MAX,
        cap => cap,
    }
}
