//! Limits shared through Redis (optional, `REDIS_URL`): [`RedisLink`], a connection that
//! falls back to in-process limits while Redis is unreachable, and [`RedisPoliteness`], the
//! request spacing (per host and per scope on a host) shared by every worker of an
//! installation.
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
use tokio::time::Instant;

use crate::politeness::{
    LocalPoliteness, Politeness, PolitenessPermit, Slot, Turn, WaitExceeded, host_cap, wait_until,
};

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

/// Reserves a lane's next start across processes: `start = max(now, stored)`, stores
/// `start + interval`, and answers how long the caller must wait, in microseconds — or `-1`,
/// reserving nothing, when that wait would exceed `ARGV[2]` (the caller's remaining bound;
/// negative for none). The clock is Redis's own (`TIME`), so workers on machines whose
/// clocks disagree still space their requests correctly; each caller only sleeps a duration,
/// never waits for a wall-clock time. Every key expires a minute after its next start has
/// passed, so keys of hosts and scopes no longer crawled do not pile up.
const RESERVE_START: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(now, stored)
if max_wait >= 0 and start - now > max_wait then
  return -1
end
local next_start = start + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_start), 'PX', math.floor((next_start - now) / 1000) + 60000)
return start - now
";

/// Politeness shared by every process on one Redis, in the same two layers as in-process:
/// request spacing of a host (the installation's `host_min_interval` and robots.txt
/// `Crawl-delay`, key `selextract:politeness:{host}`) and of a scope on a host (the task's
/// `requests_per_minute`, `delay_ms` and jitter, key
/// `selextract:politeness-scope:{host}[:{scope}]`) hold for the whole installation.
/// Concurrency (`concurrency_per_domain`, `host_max_in_flight`) stays per process (N workers
/// may have N times that many requests in flight to one host), because a slot held in Redis
/// by a worker that dies would block the host until it expired.
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

/// What a shared reservation answered.
enum Reserved {
    /// Start after this wait.
    After(Duration),
    /// The start would come after the caller's deadline; nothing was reserved.
    TooLate,
    /// Redis is unavailable: decide locally.
    Unavailable,
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

    /// Reserves the next start of the lane at `key`, at most until `deadline`.
    async fn reserve_shared_start(
        &self,
        key: String,
        interval: Duration,
        deadline: Option<Instant>,
    ) -> Reserved {
        let interval_us = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
        let max_wait_us = deadline.map_or(-1, |deadline| {
            let left = deadline.saturating_duration_since(Instant::now());
            i64::try_from(left.as_micros()).unwrap_or(i64::MAX)
        });
        let mut invocation = self.script.prepare_invoke();
        invocation.key(key).arg(interval_us).arg(max_wait_us);
        match self.link.invoke::<i64>(&invocation).await {
            None => Reserved::Unavailable,
            Some(wait_us) if wait_us < 0 => Reserved::TooLate,
            Some(wait_us) => {
                Reserved::After(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)))
            }
        }
    }

    /// The start of one layer: nothing to ask when the interval is zero (the common case
    /// costs no round trip), Redis when it answers, this process's lane otherwise.
    async fn reserve_start(
        &self,
        slot: &Slot,
        key: impl FnOnce() -> String,
        interval: Duration,
        deadline: Option<Instant>,
    ) -> Option<Instant> {
        if interval.is_zero() {
            return slot.reserve_start(interval, deadline);
        }
        match self.reserve_shared_start(key(), interval, deadline).await {
            Reserved::After(wait) => Some(Instant::now() + wait),
            Reserved::TooLate => None,
            Reserved::Unavailable => slot.reserve_start(interval, deadline),
        }
    }
}

/// Redis key of the host layer.
fn host_key(host: &str) -> String {
    format!("{KEY_PREFIX}politeness:{host}")
}

/// Redis key of a scope's lane on a host. A host name holds no `:` outside the brackets of
/// an IPv6 literal, so the key is unambiguous whatever the scope holds.
fn scope_key(host: &str, scope: Option<&str>) -> String {
    match scope {
        Some(scope) => format!("{KEY_PREFIX}politeness-scope:{host}:{scope}"),
        None => format!("{KEY_PREFIX}politeness-scope:{host}"),
    }
}

#[async_trait::async_trait]
impl Politeness for RedisPoliteness {
    async fn acquire(&self, turn: &Turn<'_>) -> Result<PolitenessPermit, WaitExceeded> {
        let exceeded = WaitExceeded {
            limit: turn.limits.max_wait,
        };
        let deadline = turn.deadline(Instant::now());
        let (host_lane, scope_lane) = self.local.lanes(turn.host, turn.scope);
        // The same steps as in-process: the scope's slot and start, then the host's; see
        // `LocalPoliteness::acquire` for why in this order.
        let scope_slot = scope_lane
            .acquire_slot(turn.rate.concurrency_per_domain, deadline)
            .await
            .ok_or(exceeded)?;
        let start = self
            .reserve_start(
                &scope_slot,
                || scope_key(turn.host, turn.scope),
                turn.scope_interval(),
                deadline,
            )
            .await
            .ok_or(exceeded)?;
        wait_until(start).await;
        let host_slot = host_lane
            .acquire_slot(host_cap(turn), deadline)
            .await
            .ok_or(exceeded)?;
        let start = self
            .reserve_start(
                &host_slot,
                || host_key(turn.host),
                turn.host_interval(),
                deadline,
            )
            .await
            .ok_or(exceeded)?;
        wait_until(start).await;
        Ok(PolitenessPermit::releasing(Box::new((
            scope_slot, host_slot,
        ))))
    }
}
