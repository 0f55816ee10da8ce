//! robots.txt rules: parsed for our user agent and cached per origin (scheme, host, port).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use url::{Position, Url};

/// How long fetched rules are trusted before robots.txt is fetched again.
pub(crate) const ROBOTS_TTL: Duration = Duration::from_secs(3600);

/// robots.txt files larger than this are cut here (Google reads the first 500 KiB too).
pub(crate) const ROBOTS_MAX_BYTES: u64 = 512 * 1024;

/// A `Crawl-delay` above this is treated as this: a hostile robots.txt must not stall a run
/// for hours, and at this rate the host still sees a very slow crawler.
const MAX_CRAWL_DELAY: Duration = Duration::from_secs(120);

/// Forget expired origins once this many are cached.
const MAX_CACHED_ORIGINS: usize = 10_000;

/// The rules that apply to our user agent on one origin.
#[derive(Debug)]
pub enum RobotsRules {
    /// No usable robots.txt (missing, 4xx, unreachable, 5xx): everything is allowed.
    AllowAll,
    Parsed(texting_robots::Robot),
}

impl RobotsRules {
    /// Parses a robots.txt body for `agent` (the product token, e.g. `Selextract`). A file
    /// that cannot be parsed is treated as absent.
    pub fn parse(agent: &str, body: &[u8]) -> RobotsRules {
        match texting_robots::Robot::new(agent, body) {
            Ok(robot) => RobotsRules::Parsed(robot),
            Err(err) => {
                tracing::debug!(error = %err, "unparseable robots.txt treated as allow-all");
                RobotsRules::AllowAll
            }
        }
    }

    pub fn allows(&self, url: &Url) -> bool {
        match self {
            RobotsRules::AllowAll => true,
            RobotsRules::Parsed(robot) => {
                robot.allowed(&url[Position::BeforePath..Position::AfterQuery])
            }
        }
    }

    /// The `Crawl-delay` for our agent, capped.
    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            RobotsRules::AllowAll => None,
            RobotsRules::Parsed(robot) => robot
                .delay
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| Duration::from_secs_f32(d.min(MAX_CRAWL_DELAY.as_secs_f32()))),
        }
    }
}

struct Cached {
    fetched: Instant,
    rules: Arc<RobotsRules>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Cached rules per origin. Concurrent fetches to one origin wait for a single robots.txt
/// request instead of each sending their own.
#[derive(Default)]
pub(crate) struct RobotsCache {
    origins: Mutex<HashMap<String, Slot>>,
}

impl RobotsCache {
    /// The cache key: scheme, host and port.
    pub(crate) fn origin_key(url: &Url) -> String {
        format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(0)
        )
    }

    /// Returns the cached rules for `url`'s origin, or runs `fetch` (once, even under
    /// concurrency) and caches its result.
    pub(crate) async fn rules_for<F, Fut>(&self, url: &Url, fetch: F) -> Arc<RobotsRules>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = RobotsRules>,
    {
        let slot = self.slot(&Self::origin_key(url));
        let mut cached = slot.lock().await;
        if let Some(entry) = cached.as_ref().filter(|c| c.fetched.elapsed() < ROBOTS_TTL) {
            return Arc::clone(&entry.rules);
        }
        let rules = Arc::new(fetch().await);
        *cached = Some(Cached {
            fetched: Instant::now(),
            rules: Arc::clone(&rules),
        });
        rules
    }

    fn slot(&self, key: &str) -> Slot {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        if origins.len() >= MAX_CACHED_ORIGINS && !origins.contains_key(key) {
            // A slot being fetched is locked; keep it (and any fresh one).
            origins.retain(|_, slot| {
                slot.try_lock().map_or(true, |c| {
                    c.as_ref().is_some_and(|c| c.fetched.elapsed() < ROBOTS_TTL)
                })
            });
        }
        Arc::clone(origins.entry(key.to_owned()).or_default())
    }
}
