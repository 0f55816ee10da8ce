//! The proxy pool: round-robin over healthy proxies, sticky sessions, and benching of
//! proxies that keep failing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use crate::error::FetchError;

/// Forget sticky sessions once this many are remembered (sessions are per run).
const MAX_STICKY_SESSIONS: usize = 10_000;

/// A proxy URL for messages and logs: scheme, host and port, never credentials.
pub fn display_proxy(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{}://{}:{}", url.scheme(), host, port),
        (Some(host), None) => format!("{}://{}", url.scheme(), host),
        _ => format!("{}://?", url.scheme()),
    }
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    benched_until: Option<Instant>,
}

pub(crate) struct PooledProxy {
    pub(crate) display: String,
    pub(crate) client: reqwest::Client,
    health: Mutex<Health>,
}

impl PooledProxy {
    fn is_available(&self, now: Instant) -> bool {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        match health.benched_until {
            Some(until) if until > now => false,
            Some(_) => {
                // The cooldown is over: the proxy gets a fresh start.
                *health = Health::default();
                true
            }
            None => true,
        }
    }
}

pub(crate) struct ProxyPool {
    proxies: Vec<PooledProxy>,
    next: AtomicUsize,
    sticky: Mutex<HashMap<String, usize>>,
    max_failures: u32,
    cooldown: Duration,
}

impl ProxyPool {
    pub(crate) fn new(
        proxies: Vec<(String, reqwest::Client)>,
        max_failures: u32,
        cooldown: Duration,
    ) -> Self {
        ProxyPool {
            proxies: proxies
                .into_iter()
                .map(|(display, client)| PooledProxy {
                    display,
                    client,
                    health: Mutex::new(Health::default()),
                })
                .collect(),
            next: AtomicUsize::new(0),
            sticky: Mutex::new(HashMap::new()),
            max_failures: max_failures.max(1),
            cooldown,
        }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&PooledProxy> {
        self.proxies.get(index)
    }

    /// Picks the proxy for one attempt: the session's proxy while it is healthy, otherwise the
    /// next healthy one in round-robin order.
    pub(crate) fn select(&self, session_key: Option<&str>) -> Result<usize, FetchError> {
        if self.proxies.is_empty() {
            return Err(FetchError::Proxy {
                proxy: "none".to_owned(),
                message: "the request asks for a proxy but no proxies are configured".to_owned(),
            });
        }
        let now = Instant::now();
        if let Some(key) = session_key {
            let mut sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(&index) = sticky.get(key)
                && self.proxies[index].is_available(now)
            {
                return Ok(index);
            }
            let index = self.next_available(now)?;
            if sticky.len() >= MAX_STICKY_SESSIONS {
                sticky.clear();
            }
            sticky.insert(key.to_owned(), index);
            return Ok(index);
        }
        self.next_available(now)
    }

    fn next_available(&self, now: Instant) -> Result<usize, FetchError> {
        let count = self.proxies.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&i| self.proxies[i].is_available(now))
            .ok_or_else(|| FetchError::Proxy {
                proxy: "none".to_owned(),
                message: format!(
                    "no proxy available: all {count} proxies are benched after repeated failures"
                ),
            })
    }

    pub(crate) fn report_success(&self, index: usize) {
        if let Some(proxy) = self.proxies.get(index) {
            *proxy.health.lock().unwrap_or_else(PoisonError::into_inner) = Health::default();
        }
    }

    /// Counts a connection or proxy failure; the `max_failures`-th in a row (the request's
    /// own limit when it has one) benches the proxy for the cooldown.
    pub(crate) fn report_failure(&self, index: usize, max_failures: Option<u32>) {
        let Some(proxy) = self.proxies.get(index) else {
            return;
        };
        let mut health = proxy.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.consecutive_failures += 1;
        if health.consecutive_failures >= max_failures.map_or(self.max_failures, |m| m.max(1)) {
            health.benched_until = Some(Instant::now() + self.cooldown);
            tracing::debug!(proxy = %proxy.display, "proxy benched after repeated failures");
        }
    }
}
