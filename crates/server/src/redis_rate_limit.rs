//! Per-API-key request limits shared by every API process through Redis (`REDIS_URL`): one
//! key's budget is one budget, whichever process serves the request. While Redis is
//! unavailable each process limits on its own (the in-memory limiter) and the link's
//! metrics say so; shared limits resume when Redis answers again.

use redis::{RedisError, Script};
use selextract_fetch::RedisLink;
use selextract_fetch::redis_politeness::KEY_PREFIX;

use crate::rate_limit::{InMemoryRateLimiter, RateDecision, RateLimiter, WINDOW};

/// Counts one request in the key's window and answers `{count, milliseconds left}`. The
/// window starts at the key's first request, as in memory; `INCR` and `PEXPIRE` run as one
/// script so that a crash between them cannot leave a counter that never expires.
const COUNT_REQUEST: &str = r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
";

/// A fixed one-minute window per API key, counted in Redis.
pub struct RedisRateLimiter {
    link: RedisLink,
    script: Script,
    fallback: InMemoryRateLimiter,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A limiter on the Redis at `url`; connects on the first request, so the API starts
    /// even while Redis is down.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(RedisRateLimiter {
            link: RedisLink::new(url, "rate_limit")?,
            script: Script::new(COUNT_REQUEST),
            fallback: InMemoryRateLimiter::default(),
        })
    }

    /// The Redis connection, for its health and fallback count.
    pub fn link(&self) -> &RedisLink {
        &self.link
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    fn shared_backend_up(&self) -> Option<bool> {
        Some(self.link.is_up())
    }

    async fn check(&self, key: &str, limit_per_minute: u32) -> RateDecision {
        let window_ms = u64::try_from(WINDOW.as_millis()).unwrap_or(60_000);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{KEY_PREFIX}rate:{key}"))
            .arg(window_ms);
        match self.link.invoke::<(u64, i64)>(&invocation).await {
            Some((count, ttl_ms)) => decision(count, ttl_ms, limit_per_minute),
            None => self.fallback.check(key, limit_per_minute).await,
        }
    }
}

/// The decision for the `count`th request of a window with `ttl_ms` left.
fn decision(count: u64, ttl_ms: i64, limit: u32) -> RateDecision {
    let used = u32::try_from(count).unwrap_or(u32::MAX);
    let ttl = u64::try_from(ttl_ms).unwrap_or(0);
    RateDecision {
        allowed: used <= limit,
        limit,
        remaining: limit.saturating_sub(used),
        reset_after_secs: ttl.div_ceil(1000).max(1),
    }
}
