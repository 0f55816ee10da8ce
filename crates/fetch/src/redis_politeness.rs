//! Limits shared through Redis (optional, `REDIS_URL`): [`RedisLink`], a connection that
//! falls back to in-process limits while Redis is unreachable, and [`RedisPoliteness`], the
//! per-host request spacing shared by every worker of an installation.
//!
//! Redis is an accelerator, never a dependency: when it is down, requests keep flowing under
//! each process's own limits, a warning is logged at most once a minute, and the metrics
//! `selextract_redis_up{component}` (gauge) and `selextract_redis_fallback_total{component}`
//! (counter) say so. Once Redis answers again, shared limits resume by themselves.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, RedisError, Script, ScriptInvocation};
use selextract_spec::RateLimit;
use tokio::time::Instant;

use crate::politeness::{LocalPoliteness, Politeness, PolitenessPermit, start_interval};

/// How long connecting and each command may take. Redis sits next to the processes that use
/// it; waiting longer than this would make every request slow while Redis is sick.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);
/// After a failure, Redis is not tried again for this long: in between every caller falls
/// back at once instead of paying the timeout.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// At most one "Redis is unavailable" warning per link in this period.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Every key this installation writes starts with this.
pub const KEY_PREFIX: &str = "selextract:";

/// A lazily opened, self-healing connection to Redis for one component (`rate_limit`,
/// `politeness`), with the fallback bookkeeping every shared limit needs.
pub struct RedisLink {
    client: redis::Client,
    component: &'static str,
    state: Mutex<LinkState>,
    /// Held while (re)connecting, so one caller connects and the others fall back.
    connecting: tokio::sync::Mutex<()>,
    up: AtomicBool,
    fallbacks: AtomicU64,
}

#[derive(Default)]
struct LinkState {
    connection: Option<MultiplexedConnection>,
    /// No connection attempt before this instant (set after a failure).
    retry_at: Option<Instant>,
    last_warning: Option<Instant>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only the component and whether Redis is up.
        f.debug_struct("RedisLink")
            .field("component", &self.component)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// Checks the URL (`redis://[:password@]host:port[/db]`) without connecting: the first
    /// use connects, so a process starts even while Redis is down.
    pub fn new(url: &str, component: &'static str) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        metrics::describe_gauge!(
            "selextract_redis_up",
            "1 when the last Redis command of the component succeeded, 0 while falling back"
        );
        metrics::describe_counter!(
            "selextract_redis_fallback_total",
            "Decisions taken by in-process limits because Redis was unavailable"
        );
        // No gauge until the first command: a component this process never uses (politeness
        // in an API-only process) must not look like a Redis outage.
        Ok(RedisLink {
            client,
            component,
            state: Mutex::new(LinkState::default()),
            connecting: tokio::sync::Mutex::new(()),
            up: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// Whether the last command succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// How many decisions fell back to in-process limits since this link was made.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Runs a Lua script; `None` when Redis is unavailable (the failure is counted, logged
    /// at most once a minute, and the caller decides with its in-process limit).
    pub async fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Option<T> {
        let Some(mut connection) = self.connection().await else {
            self.record_fallback(None);
            return None;
        };
        match invocation.invoke_async(&mut connection).await {
            Ok(value) => {
                self.record_success();
                Some(value)
            }
            Err(error) => {
                self.record_fallback(Some(&error));
                None
            }
        }
    }

    /// The open connection, or a new one when none is open and no recent attempt failed.
    async fn connection(&self) -> Option<MultiplexedConnection> {
        {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(connection) = &state.connection {
                return Some(connection.clone());
            }
            if state.retry_at.is_some_and(|at| Instant::now() < at) {
                return None;
            }
        }
        // One caller connects; the others wait for its outcome (bounded by the connection
        // timeout) instead of each opening a connection of their own.
        let _connecting = self.connecting.lock().await;
        {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(connection) = &state.connection {
                return Some(connection.clone());
            }
            if state.retry_at.is_some_and(|at| Instant::now() < at) {
                return None;
            }
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.connection = Some(connection.clone());
                state.retry_at = None;
                Some(connection)
            }
            Err(error) => {
                self.mark_down(&error);
                None
            }
        }
    }

    fn record_success(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            let was_warned = {
                let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.last_warning.is_some()
            };
            if was_warned {
                tracing::info!(
                    component = self.component,
                    "Redis is reachable again: shared limits resumed"
                );
            }
        }
        metrics::gauge!("selextract_redis_up", "component" => self.component).set(1.0);
    }

    fn record_fallback(&self, error: Option<&RedisError>) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("selextract_redis_fallback_total", "component" => self.component)
            .increment(1);
        if let Some(error) = error {
            self.mark_down(error);
        }
    }

    /// Drops the connection (a multiplexed connection does not reconnect by itself), waits
    /// [`RETRY_AFTER`] before the next attempt, and warns unless it warned recently.
    fn mark_down(&self, error: &RedisError) {
        self.up.store(false, Ordering::Relaxed);
        metrics::gauge!("selextract_redis_up", "component" => self.component).set(0.0);
        let now = Instant::now();
        let warn = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.connection = None;
            state.retry_at = Some(now + RETRY_AFTER);
            let due = state
                .last_warning
                .is_none_or(|last| now.duration_since(last) >= WARN_EVERY);
            if due {
                state.last_warning = Some(now);
            }
            due
        };
        if warn {
            tracing::warn!(
                component = self.component,
                %error,
                "Redis is unavailable: falling back to this process's own limits"
            );
        }
    }
}

/// Reserves a host's next start across processes: `start = max(now, stored)`, stores
/// `start + interval`, and answers how long the caller must wait, in microseconds. The clock
/// is Redis's own (`TIME`), so workers on machines whose clocks disagree still space their
/// requests correctly; each caller only sleeps a duration, never waits for a wall-clock time.
const RESERVE_START: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(now, stored)
local next_start = start + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_start), 'PX', math.floor((next_start - now) / 1000) + 60000)
return start - now
";

/// Per-host politeness shared by every process on one Redis: request spacing
/// (`requests_per_minute`, `delay_ms`, robots.txt `Crawl-delay`) holds for the whole
/// installation. `concurrency_per_domain` stays per process (N workers may have N times
/// that many requests in flight to one host), because a slot held in Redis by a worker that
/// dies would block the host until it expired.
pub struct RedisPoliteness {
    link: RedisLink,
    script: Script,
    /// Concurrency slots always, and start spacing while Redis is unavailable.
    local: LocalPoliteness,
}

impl std::fmt::Debug for RedisPoliteness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPoliteness")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl RedisPoliteness {
    /// Politeness through the Redis at `url`; does not connect until the first request.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(RedisPoliteness {
            link: RedisLink::new(url, "politeness")?,
            script: Script::new(RESERVE_START),
            local: LocalPoliteness::new(),
        })
    }

    /// The Redis connection, for its health and fallback count.
    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// How long to wait before starting, by Redis's reservation; `None` when Redis is
    /// unavailable.
    async fn reserve_shared_start(&self, host: &str, interval: Duration) -> Option<Duration> {
        let interval_us = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{KEY_PREFIX}politeness:{host}"))
            .arg(interval_us);
        let wait_us: i64 = self.link.invoke(&invocation).await?;
        Some(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)))
    }
}

#[async_trait::async_trait]
impl Politeness for RedisPoliteness {
    async fn acquire(
        &self,
        host: &str,
        rate: &RateLimit,
        crawl_delay: Option<Duration>,
    ) -> PolitenessPermit {
        // The slot first, as in-process: a start reserved while waiting for a slot would
        // be wasted, and requests queued behind a full host would then start back to back.
        let slot = self
            .local
            .acquire_slot(host, rate.concurrency_per_domain)
            .await;
        let interval = start_interval(rate, crawl_delay);
        if interval.is_zero() {
            // Nothing to space: no reason to ask Redis.
            return slot.into_permit();
        }
        let start = match self.reserve_shared_start(host, interval).await {
            Some(wait) => Instant::now() + wait,
            None => slot.reserve_local_start(interval),
        };
        tokio::time::sleep_until(start).await;
        slot.into_permit()
    }
}
