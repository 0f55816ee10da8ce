//! The URL guard of one render: every host the page's requests name is resolved once, through
//! the guard's resolver, and that answer is pinned for the render's lifetime, so the CDP
//! interceptor and the guarding proxy judge (and the proxy connects to) the same addresses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use selextract_fetch::GuardError;
use selextract_fetch::guard::{GuardPolicy, ResolveError, resolve_all_allowed};
use tokio::sync::OnceCell;
use url::{Host, Url};

/// How many refused URLs a render reports by name.
const REPORTED_BLOCKED_URLS: usize = 5;
/// How many distinct host names one render may resolve; beyond that its requests are refused,
/// so a page cannot grow the pin table without bound.
const MAX_PINNED_NAMES: usize = 2048;

/// Decides whether the browser may make a request to `url`: `Ok` to continue it, `Err` with
/// the reason to fail it. Non-network schemes (`data:`, `blob:`, `about:`) are allowed;
/// schemes other than HTTP(S) and WebSocket are refused. A name is allowed only when every
/// address it resolves to is allowed. (A one-off check; renders use [`RenderGuard`].)
pub async fn check_request_url(policy: &GuardPolicy, url: &str) -> Result<(), String> {
    let Ok(url) = Url::parse(url) else {
        return Err("unparsable URL".to_owned());
    };
    match url.scheme() {
        "data" | "blob" | "about" => return Ok(()),
        "http" | "https" | "ws" | "wss" => {}
        other => return Err(format!("scheme {other} is not allowed")),
    }
    if policy.allow_private_networks {
        return Ok(());
    }
    let Some(port) = url.port_or_known_default() else {
        return Err("no port".to_owned());
    };
    match url.host() {
        Some(Host::Ipv4(ip)) => check_ip(policy, IpAddr::V4(ip), port),
        Some(Host::Ipv6(ip)) => check_ip(policy, IpAddr::V6(ip), port),
        Some(Host::Domain(name)) => resolve_all_allowed(policy, name, port)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => Err("no host".to_owned()),
    }
}

fn check_ip(policy: &GuardPolicy, ip: IpAddr, port: u16) -> Result<(), String> {
    policy
        .check_addr(SocketAddr::new(ip, port))
        .map_err(|e| e.to_string())
}

/// Why a render's request may not go where it asked.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Refusal {
    #[error(transparent)]
    Guard(GuardError),
    #[error("cannot resolve {host}: {message}")]
    Lookup { host: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl Refusal {
    /// Whether this is a refusal by the guard's rules (counted as a blocked request), rather
    /// than a name that does not resolve.
    pub(crate) fn is_blocked(&self) -> bool {
        !matches!(self, Refusal::Lookup { .. })
    }
}

type Pin = Arc<OnceCell<Result<Vec<IpAddr>, String>>>;

/// Refused requests of a render, as reported in `Rendered`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Blocked {
    pub(crate) count: u64,
    pub(crate) urls: Vec<String>,
}

/// The guard of one render (or of the pool's refuse-everything default proxy).
#[derive(Debug)]
pub(crate) struct RenderGuard {
    policy: GuardPolicy,
    /// With an upstream proxy, that proxy resolves names itself: every answer must then be
    /// allowed, not just one.
    upstream_resolves: bool,
    refuse_everything: bool,
    pins: Mutex<HashMap<String, Pin>>,
    blocked: Mutex<Blocked>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RenderGuard {
    pub(crate) fn new(policy: GuardPolicy, upstream_resolves: bool) -> Arc<RenderGuard> {
        Arc::new(RenderGuard {
            policy,
            upstream_resolves,
            refuse_everything: false,
            pins: Mutex::new(HashMap::new()),
            blocked: Mutex::new(Blocked::default()),
        })
    }

    /// A guard that refuses every target: for requests outside any render's context.
    pub(crate) fn refusing_everything() -> Arc<RenderGuard> {
        Arc::new(RenderGuard {
            policy: GuardPolicy::default(),
            upstream_resolves: false,
            refuse_everything: true,
            pins: Mutex::new(HashMap::new()),
            blocked: Mutex::new(Blocked::default()),
        })
    }

    /// Checks a URL the page asked for (CDP interception): non-network schemes pass, other
    /// schemes than HTTP(S) and WebSocket are refused, network targets are vetted.
    pub(crate) async fn check_url(&self, url: &str) -> Result<(), Refusal> {
        let Ok(url) = Url::parse(url) else {
            return Err(Refusal::Other("unparsable URL".to_owned()));
        };
        match url.scheme() {
            "data" | "blob" | "about" => return Ok(()),
            "http" | "https" | "ws" | "wss" => {}
            other => return Err(Refusal::Other(format!("scheme {other} is not allowed"))),
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(Refusal::Other("no host or port".to_owned()));
        };
        self.vet(host, port).await.map(drop)
    }

    /// The addresses a connection to `host:port` may use (`host` as in a URL: IPv6 literals
    /// in brackets). A name is resolved once per render and the answer pinned.
    pub(crate) async fn vet(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        if self.refuse_everything {
            return Err(Refusal::Other(
                "requests outside a render are refused".to_owned(),
            ));
        }
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, port);
            return self
                .policy
                .check_addr(addr)
                .map(|()| vec![addr])
                .map_err(Refusal::Guard);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let resolved = self.pinned_resolution(&name).await?;
        self.policy
            .vet_addrs(&name, &resolved, port, self.upstream_resolves)
            .map_err(|error| match error {
                ResolveError::Refused(reason) => Refusal::Guard(reason),
                ResolveError::Lookup { host, message } => Refusal::Lookup { host, message },
            })
    }

    async fn pinned_resolution(&self, name: &str) -> Result<Vec<IpAddr>, Refusal> {
        let pin = {
            let mut pins = lock(&self.pins);
            match pins.get(name) {
                Some(pin) => pin.clone(),
                None if pins.len() >= MAX_PINNED_NAMES => {
                    return Err(Refusal::Other(format!(
                        "more than {MAX_PINNED_NAMES} host names in one render"
                    )));
                }
                None => pins.entry(name.to_owned()).or_default().clone(),
            }
        };
        // Concurrent requests for one name wait for the same single resolution.
        let answer = pin
            .get_or_init(|| async {
                self.policy
                    .resolve_name(name)
                    .await
                    .map_err(|error| match error {
                        ResolveError::Lookup { message, .. } => message,
                        ResolveError::Refused(reason) => reason.to_string(),
                    })
            })
            .await;
        answer.clone().map_err(|message| Refusal::Lookup {
            host: name.to_owned(),
            message,
        })
    }

    /// Counts a refused request of this render and remembers the first few targets.
    pub(crate) fn record_blocked(&self, target: &str) {
        let mut blocked = lock(&self.blocked);
        blocked.count += 1;
        if blocked.urls.len() < REPORTED_BLOCKED_URLS {
            blocked.urls.push(target.to_owned());
        }
    }

    pub(crate) fn blocked(&self) -> Blocked {
        lock(&self.blocked).clone()
    }
}
