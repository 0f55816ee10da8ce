//! Per-API-key request limits (SPEC §7): a fixed one-minute window per key.
//!
//! The limiter is a trait so that a shared implementation (Redis `INCR` + `EXPIRE`, for
//! several API processes behind a load balancer) can replace the in-memory one without
//! touching the middleware.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const WINDOW: Duration = Duration::from_secs(60);
const SHARDS: usize = 16;

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests left in the current window after this one.
    pub remaining: u32,
    /// Seconds until the window resets (at least 1).
    pub reset_after_secs: u64,
}

/// Counts requests per key against a per-minute limit.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request for `key` and says whether it may proceed.
    async fn check(&self, key: &str, limit_per_minute: u32) -> RateDecision;

    /// For a limiter shared through another service: whether that service answered at its
    /// last use (`/ready` reports it). `None` for a limiter kept in this process.
    fn shared_backend_up(&self) -> Option<bool> {
        None
    }
}

/// Windows kept in this process, sharded so that concurrent requests of different keys do
/// not contend on one lock.
#[derive(Debug)]
pub struct InMemoryRateLimiter {
    shards: Vec<Mutex<HashMap<String, Window>>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl Default for InMemoryRateLimiter {
    fn default() -> Self {
        InMemoryRateLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl InMemoryRateLimiter {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Window>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// The decision at `now`; separate from [`RateLimiter::check`] so the window logic is
    /// independent of the clock.
    fn check_at(&self, key: &str, limit: u32, now: Instant) -> RateDecision {
        let mut windows = match self.shard(key).lock() {
            Ok(guard) => guard,
            // A panic while holding the lock cannot leave a window half-written (plain
            // copies), so the data is still sound.
            Err(poisoned) => poisoned.into_inner(),
        };
        let window = match windows.get_mut(key) {
            Some(window) => window,
            None => {
                // Keys are API keys, so the map stays small; drop stale windows whenever it
                // grows so that revoked keys do not linger forever.
                if windows.len() >= 1024 {
                    windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
                }
                windows.entry(key.to_owned()).or_insert(Window {
                    started: now,
                    count: 0,
                })
            }
        };
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        let allowed = window.count < limit;
        if allowed {
            window.count += 1;
        }
        let elapsed = now.duration_since(window.started);
        let reset = WINDOW.saturating_sub(elapsed);
        RateDecision {
            allowed,
            limit,
            remaining: limit.saturating_sub(window.count),
            reset_after_secs: (reset.as_secs() + u64::from(reset.subsec_nanos() > 0)).max(1),
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn check(&self, key: &str, limit_per_minute: u32) -> RateDecision {
        self.check_at(key, limit_per_minute, Instant::now())
    }
}
