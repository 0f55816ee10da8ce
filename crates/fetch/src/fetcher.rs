//! `HttpFetcher`: configuration, construction of its reqwest clients, and the retry loop
//! around single attempts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::{Host, Url};

use crate::error::{BuildError, FetchError};
use crate::guard::{GuardPolicy, GuardedResolver, IpNet, NameResolver, SystemResolver};
use crate::politeness::{HostLimits, LocalPoliteness, Politeness};
use crate::proxy::{ProxyPool, display_proxy};
use crate::retry::{MAX_RETRY_AFTER, backoff_delay, is_retryable_status};
use crate::robots::RobotsCache;
use crate::transfer::{Attempted, Transfer};
use crate::{FetchRequest, FetchResponse, Fetcher};

const DEFAULT_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Operator settings of the HTTP fetcher (one per process): the `[fetch]` section of the
/// settings tree deserializes straight into it, with the key names and units the operator
/// writes (`connect_timeout_ms`, `proxy_cooldown_seconds`). The wiring (`resolver`,
/// `allowed_private_addrs`) is not a setting and is filled in by whoever builds the fetcher.
/// Neither `Debug` nor `Serialize` shows proxy credentials.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpFetcherConfig {
    /// Lifts the URL guard entirely (test suites and trusted intranets).
    pub allow_private_networks: bool,
    /// Exact `ip:port` pairs allowed although the guard would refuse their address.
    #[serde(skip)]
    pub allowed_private_addrs: Vec<SocketAddr>,
    /// Networks allowed although the guard would refuse them (see [`GuardPolicy`]):
    /// addresses or CIDR networks.
    #[serde(with = "selextract_config::ip_networks")]
    pub allowed_networks: Vec<IpNet>,
    /// Resolves every name the guard vets (the system resolver by default).
    #[serde(skip, default = "system_resolver")]
    pub resolver: Arc<dyn NameResolver>,
    /// When false, a request's `respect_robots_txt: false` is ignored.
    pub allow_robots_txt_opt_out: bool,
    pub user_agent: String,
    pub max_body_bytes: u64,
    #[serde(
        rename = "connect_timeout_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub connect_timeout: Duration,
    /// Longest wait for the response head or between two body chunks.
    #[serde(
        rename = "read_timeout_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub read_timeout: Duration,
    /// Longest one attempt's network work may take (resolving, redirects, body), whatever
    /// the request's own `timeout` says (zero or huge): a body dripping one byte just inside
    /// `read_timeout` cannot hold a fetch for longer than this.
    #[serde(
        rename = "max_transfer_time_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub max_transfer_time: Duration,
    pub max_redirects: usize,
    /// `http://`, `https://`, `socks5://` or `socks5h://`, with optional `user:pass@`.
    #[serde(with = "masked_urls")]
    pub proxies: Vec<Url>,
    /// How long a proxy that kept failing is left out of the rotation.
    #[serde(
        rename = "proxy_cooldown_seconds",
        with = "selextract_config::units::duration_seconds"
    )]
    pub proxy_cooldown: Duration,
    /// Consecutive failures that bench a proxy (the task spec's `proxy.max_failures`).
    pub proxy_max_failures: u32,
    /// The installation's per-host rate, the same for every task ([`HostLimits`], see
    /// [`HttpFetcherConfig::host_limits`]): the minimum spacing between request starts to
    /// one host (robots.txt `Crawl-delay` raises it); 0: none. A task's own `rate_limit`
    /// applies on top, within the task's politeness scope only.
    #[serde(
        rename = "host_min_interval_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub host_min_interval: Duration,
    /// Requests in flight to one host at once, per process; 0: no cap.
    pub host_max_in_flight: u32,
    /// The longest a request may wait for its turn at a host before it fails as
    /// `politeness_wait_exceeded`.
    #[serde(
        rename = "max_politeness_wait_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub max_politeness_wait: Duration,
}

fn system_resolver() -> Arc<dyn NameResolver> {
    Arc::new(SystemResolver)
}

impl HttpFetcherConfig {
    /// The installation's per-host limits, as politeness takes them.
    pub fn host_limits(&self) -> HostLimits {
        HostLimits {
            min_interval: self.host_min_interval,
            max_in_flight: self.host_max_in_flight,
            max_wait: self.max_politeness_wait,
        }
    }
}

impl std::fmt::Debug for HttpFetcherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let HttpFetcherConfig {
            allow_private_networks,
            allowed_private_addrs,
            allowed_networks,
            resolver,
            allow_robots_txt_opt_out,
            user_agent,
            max_body_bytes,
            connect_timeout,
            read_timeout,
            max_transfer_time,
            max_redirects,
            proxies,
            proxy_cooldown,
            proxy_max_failures,
            host_min_interval,
            host_max_in_flight,
            max_politeness_wait,
        } = self;
        let proxies: Vec<String> = proxies.iter().map(crate::proxy::display_proxy).collect();
        f.debug_struct("HttpFetcherConfig")
            .field("allow_private_networks", allow_private_networks)
            .field("allowed_private_addrs", allowed_private_addrs)
            .field("allowed_networks", allowed_networks)
            .field("resolver", resolver)
            .field("allow_robots_txt_opt_out", allow_robots_txt_opt_out)
            .field("user_agent", user_agent)
            .field("max_body_bytes", max_body_bytes)
            .field("connect_timeout", connect_timeout)
            .field("read_timeout", read_timeout)
            .field("max_transfer_time", max_transfer_time)
            .field("max_redirects", max_redirects)
            .field("proxies", &proxies)
            .field("proxy_cooldown", proxy_cooldown)
            .field("proxy_max_failures", proxy_max_failures)
            .field("host_min_interval", host_min_interval)
            .field("host_max_in_flight", host_max_in_flight)
            .field("max_politeness_wait", max_politeness_wait)
            .finish()
    }
}

impl Default for HttpFetcherConfig {
    fn default() -> Self {
        let host_limits = HostLimits::default();
        HttpFetcherConfig {
            allow_private_networks: false,
            allowed_private_addrs: Vec::new(),
            allowed_networks: Vec::new(),
            resolver: system_resolver(),
            allow_robots_txt_opt_out: true,
            user_agent: format!("Selextract/{}", env!("CARGO_PKG_VERSION")),
            max_body_bytes: 10 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_transfer_time: Duration::from_secs(5 * 60),
            max_redirects: 10,
            proxies: Vec::new(),
            proxy_cooldown: Duration::from_secs(60),
            proxy_max_failures: 3,
            host_min_interval: host_limits.min_interval,
            host_max_in_flight: host_limits.max_in_flight,
            max_politeness_wait: host_limits.max_wait,
        }
    }
}

/// `serde(with = …)` for the proxy list: read as URLs (an error says which entry and why,
/// never the URL, which may hold a password), written back as the operator wrote them with
/// the password masked ([`selextract_config::mask_url`]), so `config print` shows no secret.
mod masked_urls {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use url::Url;

    pub fn serialize<S: Serializer>(urls: &[Url], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(urls.iter().map(|url| {
            // `Url` adds a `/` path to `http://host:3128`; a proxy has no path to show.
            let text = url.as_str();
            let text = if url.path() == "/" && url.query().is_none() && url.fragment().is_none() {
                text.strip_suffix('/').unwrap_or(text)
            } else {
                text
            };
            selextract_config::mask_url(text)
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Url>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                Url::parse(raw.trim()).map_err(|error| {
                    D::Error::custom(format!("entry {index} is not a URL: {error}"))
                })
            })
            .collect()
    }
}

/// Fetches over HTTP(S) with reqwest. One instance serves all concurrent fetches of a
/// process (robots.txt cache and politeness state live inside it); cloning is cheap and
/// shares that state.
#[derive(Clone)]
pub struct HttpFetcher {
    inner: Arc<Transfer>,
}

impl std::fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetcher").finish_non_exhaustive()
    }
}

impl HttpFetcher {
    /// Builds the fetcher with in-process politeness.
    pub fn new(config: HttpFetcherConfig) -> Result<Self, BuildError> {
        Self::with_politeness(config, Arc::new(LocalPoliteness::new()))
    }

    /// Builds the fetcher with another politeness implementation (e.g. one shared through
    /// Redis by all workers).
    pub fn with_politeness(
        config: HttpFetcherConfig,
        politeness: Arc<dyn Politeness>,
    ) -> Result<Self, BuildError> {
        let policy = GuardPolicy {
            allow_private_networks: config.allow_private_networks,
            allowed_private_addrs: config.allowed_private_addrs.clone(),
            allowed_networks: config.allowed_networks.clone(),
            resolver: Arc::clone(&config.resolver),
        };
        let user_agent =
            HeaderValue::from_str(&config.user_agent).map_err(|_| BuildError::InvalidUserAgent)?;

        let direct_resolver = Arc::new(GuardedResolver::new(policy.clone(), Vec::new()));
        let direct = build_client(&config, &user_agent, Arc::clone(&direct_resolver), None)?;

        // Proxy hosts were chosen by the operator and may well live on a private network, so
        // their names are exempt from the guard; the targets are not.
        let proxy_names: Vec<String> = config
            .proxies
            .iter()
            .filter_map(|p| match p.host() {
                Some(Host::Domain(name)) => Some(name.to_owned()),
                _ => None,
            })
            .collect();
        let proxy_resolver = Arc::new(GuardedResolver::new(policy.clone(), proxy_names));
        let mut proxy_clients = Vec::with_capacity(config.proxies.len());
        for proxy_url in &config.proxies {
            let display = display_proxy(proxy_url);
            if !matches!(proxy_url.scheme(), "http" | "https" | "socks5" | "socks5h")
                || proxy_url.host().is_none()
            {
                return Err(BuildError::InvalidProxy {
                    proxy: display,
                    reason: "expected http://, https://, socks5:// or socks5h:// with a host"
                        .to_owned(),
                });
            }
            let proxy = reqwest::Proxy::all(proxy_url.as_str()).map_err(|err| {
                BuildError::InvalidProxy {
                    proxy: display.clone(),
                    reason: err.without_url().to_string(),
                }
            })?;
            let client = build_client(
                &config,
                &user_agent,
                Arc::clone(&proxy_resolver),
                Some(proxy),
            )?;
            proxy_clients.push((display, client));
        }

        let robots_agent = config
            .user_agent
            .split('/')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let proxies = ProxyPool::new(
            proxy_clients,
            config.proxy_max_failures,
            config.proxy_cooldown,
        );
        Ok(HttpFetcher {
            inner: Arc::new(Transfer {
                config,
                policy,
                direct_resolver,
                direct,
                proxies,
                robots: RobotsCache::default(),
                robots_agent,
                politeness,
            }),
        })
    }
}

fn build_client(
    config: &HttpFetcherConfig,
    user_agent: &HeaderValue,
    resolver: Arc<GuardedResolver>,
    proxy: Option<reqwest::Proxy>,
) -> Result<reqwest::Client, BuildError> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(DEFAULT_ACCEPT));
    // `no_proxy` first: it also stops reqwest from picking up HTTP_PROXY from the
    // environment, which would route around the guard.
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .user_agent(user_agent.clone())
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .dns_resolver(resolver);
    if let Some(proxy) = proxy {
        builder = builder.proxy(proxy);
    }
    builder
        .build()
        .map_err(|err| BuildError::Client(err.to_string()))
}

#[async_trait::async_trait]
impl Fetcher for HttpFetcher {
    async fn fetch(
        &self,
        req: &FetchRequest,
        cancel: &CancellationToken,
    ) -> Result<FetchResponse, FetchError> {
        // Dropping the retry loop drops any in-flight request, sleep or politeness wait.
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(FetchError::Cancelled),
            result = fetch_with_retries(&self.inner, req) => result,
        }
    }
}

async fn fetch_with_retries(
    transfer: &Transfer,
    req: &FetchRequest,
) -> Result<FetchResponse, FetchError> {
    let started = Instant::now();
    transfer.validate_url(&req.url)?;
    let headers = transfer.request_headers(req)?;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let retries_left = attempt <= req.max_retries;
        let proxy = if req.use_proxy {
            Some(transfer.proxies.select(req.session_key.as_deref())?)
        } else {
            None
        };
        match transfer.attempt(req, &headers, proxy).await {
            Ok(Attempted {
                mut response,
                retry_after,
            }) => {
                if let Some(index) = proxy {
                    transfer.proxies.report_success(index);
                }
                response.attempts = attempt;
                response.elapsed = started.elapsed();
                if !retries_left || !is_retryable_status(response.status) {
                    return Ok(response);
                }
                let wait = match retry_after.filter(|_| matches!(response.status, 429 | 503)) {
                    // The server asks for longer than a run should stall: give its answer back.
                    Some(wait) if wait > MAX_RETRY_AFTER => return Ok(response),
                    Some(wait) => wait,
                    None => backoff_delay(req.retry_delay, attempt - 1),
                };
                tracing::debug!(url = %response.url, status = response.status, attempt, "retrying after status");
                tokio::time::sleep(wait).await;
            }
            Err(err) => {
                if let Some(index) = proxy
                    && counts_against_proxy(&err)
                {
                    transfer
                        .proxies
                        .report_failure(index, req.proxy_max_failures);
                }
                if !retries_left || !err.is_retryable() {
                    return Err(err);
                }
                tracing::debug!(url = %req.url, class = err.class(), attempt, "retrying after error");
                tokio::time::sleep(backoff_delay(req.retry_delay, attempt - 1)).await;
            }
        }
    }
}

fn counts_against_proxy(err: &FetchError) -> bool {
    matches!(
        err,
        FetchError::Proxy { .. }
            | FetchError::Timeout {
                stage: "connect",
                ..
            }
    )
}
