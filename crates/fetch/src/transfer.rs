//! One attempt of a fetch: guard, robots.txt and politeness for every hop, manual
//! redirects, and a size- and time-bounded body read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    CONTENT_TYPE, COOKIE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER,
};
use url::{Host, Url};

use crate::error::FetchError;
use crate::fetcher::HttpFetcherConfig;
use crate::guard::{
    GuardError, GuardPolicy, GuardedResolver, ResolveError, is_localhost_name, resolve_all_allowed,
    resolve_allowed,
};
use crate::origin::same_origin;
use crate::politeness::{Politeness, Turn};
use crate::proxy::ProxyPool;
use crate::retry::parse_retry_after;
use crate::robots::{ROBOTS_MAX_BYTES, RobotsCache, RobotsRules};
use crate::{FetchRequest, FetchResponse};

/// robots.txt requests give up after this long (and the site is then treated as allow-all).
const ROBOTS_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed when fetching robots.txt.
const ROBOTS_MAX_REDIRECTS: usize = 5;

/// The time left of one attempt's `timeout`, spent only while talking to the network.
struct Budget {
    remaining: Option<Duration>,
    url: Url,
}

impl Budget {
    /// A zero timeout means no limit of the request's own; `cap` (the operator's) always
    /// applies.
    fn new(timeout: Duration, cap: Duration, url: &Url) -> Self {
        let remaining = if timeout.is_zero() {
            cap
        } else {
            timeout.min(cap)
        };
        Budget {
            remaining: Some(remaining),
            url: url.clone(),
        }
    }

    async fn run<T>(
        &mut self,
        step: impl Future<Output = Result<T, FetchError>>,
    ) -> Result<T, FetchError> {
        let Some(remaining) = self.remaining else {
            return step.await;
        };
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(remaining, step).await;
        self.remaining = Some(remaining.saturating_sub(started.elapsed()));
        result.unwrap_or_else(|_| {
            Err(FetchError::Timeout {
                url: self.url.clone(),
                stage: "total",
            })
        })
    }
}

/// Everything one `HttpFetcher` shares between its fetches.
pub(crate) struct Transfer {
    pub(crate) config: HttpFetcherConfig,
    pub(crate) policy: GuardPolicy,
    pub(crate) direct_resolver: Arc<GuardedResolver>,
    pub(crate) direct: reqwest::Client,
    pub(crate) proxies: ProxyPool,
    pub(crate) robots: RobotsCache,
    pub(crate) robots_agent: String,
    pub(crate) politeness: Arc<dyn Politeness>,
}

/// The result of one attempt, with what the retry loop needs beyond the response.
pub(crate) struct Attempted {
    pub(crate) response: FetchResponse,
    pub(crate) retry_after: Option<Duration>,
}

/// The client an attempt uses, and the proxy it goes through (for error messages).
struct Route<'a> {
    client: &'a reqwest::Client,
    proxy: Option<&'a str>,
}

impl Transfer {
    pub(crate) fn validate_url(&self, url: &Url) -> Result<(), FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::InvalidUrl {
                url: url.to_string(),
                reason: "only http and https are fetched".into(),
            });
        }
        if url.host().is_none() {
            return Err(FetchError::InvalidUrl {
                url: url.to_string(),
                reason: "no host".into(),
            });
        }
        Ok(())
    }

    /// Custom headers and the cookie header, validated once for all attempts.
    pub(crate) fn request_headers(&self, req: &FetchRequest) -> Result<HeaderMap, FetchError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &req.headers {
            let invalid = || FetchError::InvalidHeader { name: name.clone() };
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let header_value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            // A custom value replaces a default one (User-Agent, Accept) instead of adding to it.
            headers.insert(header_name, header_value);
        }
        if !req.cookies.is_empty() {
            let cookie = req
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            let mut value =
                HeaderValue::from_str(&cookie).map_err(|_| FetchError::InvalidHeader {
                    name: "Cookie".into(),
                })?;
            value.set_sensitive(true);
            headers.insert(COOKIE, value);
        }
        Ok(headers)
    }

    /// Runs one attempt through the proxy at `proxy` (an index into the pool) or directly.
    pub(crate) async fn attempt(
        &self,
        req: &FetchRequest,
        headers: &HeaderMap,
        proxy: Option<usize>,
    ) -> Result<Attempted, FetchError> {
        let route = match proxy.and_then(|index| self.proxies.get(index)) {
            Some(pooled) => Route {
                client: &pooled.client,
                proxy: Some(pooled.display.as_str()),
            },
            None => Route {
                client: &self.direct,
                proxy: None,
            },
        };
        let mut budget = Budget::new(req.timeout, self.config.max_transfer_time, &req.url);
        let mut url = req.url.clone();
        let mut redirects = Vec::new();
        let mut left_origin = false;
        loop {
            budget
                .run(self.check_target(&url, route.proxy.is_some()))
                .await?;
            // robots.txt (with its own timeout) and the politeness wait are not part of the
            // attempt's time budget: a request queued behind a slow crawl-delay has not
            // timed out.
            let crawl_delay = if self.robots_apply(req) {
                let rules = self.robots_rules(&url, &route).await;
                if !rules.allows(&url) {
                    return Err(FetchError::RobotsDisallowed { url });
                }
                rules.crawl_delay()
            } else {
                None
            };
            let turn = Turn {
                host: url.host_str().unwrap_or_default(),
                scope: req.politeness_scope.as_deref(),
                rate: &req.rate_limit,
                crawl_delay,
                limits: &self.config.host_limits(),
            };
            let permit = self.politeness.acquire(&turn).await.map_err(|exceeded| {
                FetchError::PolitenessWaitExceeded {
                    url: url.clone(),
                    limit: exceeded.limit,
                }
            })?;

            // The task's headers and cookies were meant for the origin it asked for: once a
            // redirect leaves that origin (another host or port, or https → http), none of
            // them is sent again, not even when a later hop comes back.
            left_origin = left_origin || !same_origin(&req.url, &url);
            let hop_headers = if left_origin {
                HeaderMap::new()
            } else {
                headers.clone()
            };
            tracing::debug!(url = %url, via_proxy = route.proxy.is_some(), "sending request");
            let send = route.client.get(url.clone()).headers(hop_headers).send();
            let response = budget
                .run(async { send.await.map_err(|err| classify(err, &url, route.proxy)) })
                .await?;
            let status = response.status().as_u16();
            tracing::debug!(url = %url, status, "response");

            if let Some(location) = redirect_location(&response) {
                drop(permit);
                if redirects.len() >= self.config.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        url: req.url.clone(),
                        limit: self.config.max_redirects,
                    });
                }
                let next = url.join(&location).map_err(|err| FetchError::InvalidUrl {
                    url: location.clone(),
                    reason: format!("bad redirect location: {err}"),
                })?;
                self.validate_url(&next)?;
                redirects.push(next.clone());
                url = next;
                continue;
            }

            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = budget
                .run(self.read_body(response, &url, route.proxy))
                .await?;
            drop(permit);
            return Ok(Attempted {
                response: FetchResponse {
                    url,
                    status,
                    content_type,
                    body,
                    redirects,
                    attempts: 0,
                    via_proxy: route.proxy.is_some(),
                    elapsed: Duration::ZERO,
                    rendered: false,
                },
                retry_after,
            });
        }
    }

    fn robots_apply(&self, req: &FetchRequest) -> bool {
        req.respect_robots_txt || !self.config.allow_robots_txt_opt_out
    }

    /// Refuses a target the guard does not allow, before anything is sent to it.
    ///
    /// IP literals never reach the resolver, so they are checked here. Names are checked by
    /// the client's resolver at connect time, except in three cases handled here:
    /// - `localhost` names are answered without DNS, so checking them here costs nothing and
    ///   gives a clear error early;
    /// - with `ip:port` exceptions, the resolver (which does not know the port) lets an
    ///   excepted IP through on any port, so the port is checked here. A name that resolves
    ///   differently between this check and the connection could still reach an excepted IP
    ///   on another port; exceptions are meant for test fixtures, so that window is accepted;
    /// - through a proxy, the proxy resolves the name itself. All addresses are checked here,
    ///   but a name whose DNS answer changes between this check and the proxy's own lookup
    ///   (DNS rebinding) can still lead the proxy elsewhere; only the proxy could close that
    ///   window.
    async fn check_target(&self, url: &Url, via_proxy: bool) -> Result<(), FetchError> {
        let port = url.port_or_known_default().unwrap_or(80);
        let blocked = |reason: GuardError| FetchError::Blocked {
            url: url.clone(),
            reason,
        };
        match url.host() {
            Some(Host::Ipv4(ip)) => self
                .policy
                .check_addr(SocketAddr::from((ip, port)))
                .map_err(blocked),
            Some(Host::Ipv6(ip)) => self
                .policy
                .check_addr(SocketAddr::from((ip, port)))
                .map_err(blocked),
            Some(Host::Domain(name)) => {
                let checked = if via_proxy {
                    resolve_all_allowed(&self.policy, name, port)
                        .await
                        .map(drop)
                } else if is_localhost_name(name) || self.direct_resolver.needs_port_check() {
                    resolve_allowed(&self.policy, name, port).await.map(drop)
                } else {
                    Ok(())
                };
                checked.map_err(|err| match err {
                    ResolveError::Refused(reason) => blocked(reason),
                    ResolveError::Lookup { message, .. } => FetchError::Connect {
                        url: url.clone(),
                        message,
                    },
                })
            }
            None => Err(FetchError::InvalidUrl {
                url: url.to_string(),
                reason: "no host".into(),
            }),
        }
    }

    async fn robots_rules(&self, url: &Url, route: &Route<'_>) -> Arc<RobotsRules> {
        self.robots
            .rules_for(url, || self.fetch_robots(url, route))
            .await
    }

    /// Fetches and parses robots.txt for `url`'s origin. Every failure means "allow all":
    /// missing (4xx), broken (5xx) or unreachable robots.txt does not stop a crawl.
    async fn fetch_robots(&self, url: &Url, route: &Route<'_>) -> RobotsRules {
        let Ok(mut robots_url) = url.join("/robots.txt") else {
            return RobotsRules::AllowAll;
        };
        let fetched = tokio::time::timeout(ROBOTS_TIMEOUT, async {
            for _ in 0..=ROBOTS_MAX_REDIRECTS {
                self.check_target(&robots_url, route.proxy.is_some()).await.ok()?;
                let response = route.client.get(robots_url.clone()).send().await.ok()?;
                if let Some(location) = redirect_location(&response) {
                    robots_url = robots_url.join(&location).ok()?;
                    self.validate_url(&robots_url).ok()?;
                    continue;
                }
                let status = response.status().as_u16();
                if !(200..300).contains(&status) {
                    tracing::debug!(url = %robots_url, status, "robots.txt not available; allowing all");
                    return None;
                }
                return read_capped(response, ROBOTS_MAX_BYTES).await;
            }
            None
        })
        .await;
        match fetched {
            Ok(Some(body)) => RobotsRules::parse(&self.robots_agent, &body),
            _ => {
                tracing::debug!(url = %url, "robots.txt unreachable; allowing all");
                RobotsRules::AllowAll
            }
        }
    }

    /// Reads the body chunk by chunk, refusing to go past `max_body_bytes` and to wait longer
    /// than `read_timeout` for any chunk.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        url: &Url,
        proxy: Option<&str>,
    ) -> Result<Bytes, FetchError> {
        let limit = self.config.max_body_bytes;
        let too_large = || FetchError::TooLarge {
            url: url.clone(),
            limit,
        };
        let declared = response.content_length();
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        let initial = declared.unwrap_or(0).min(limit).min(1024 * 1024);
        let mut body = BytesMut::with_capacity(usize::try_from(initial).unwrap_or(0));
        loop {
            let chunk = match tokio::time::timeout(self.config.read_timeout, response.chunk()).await
            {
                Err(_) => {
                    return Err(FetchError::Timeout {
                        url: url.clone(),
                        stage: "read",
                    });
                }
                Ok(Err(err)) => return Err(classify(err, url, proxy)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

/// The `Location` of a redirect response; `None` for other responses (a redirect status
/// without a usable `Location` is returned as it is).
fn redirect_location(response: &reqwest::Response) -> Option<String> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads at most `limit` bytes, dropping the rest (for robots.txt, where a prefix is useful).
async fn read_capped(mut response: reqwest::Response, limit: u64) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= limit {
            break;
        }
    }
    Some(body)
}

/// Maps a reqwest error to our error kinds.
fn classify(err: reqwest::Error, url: &Url, proxy: Option<&str>) -> FetchError {
    if let Some(reason) = find_source::<GuardError>(&err) {
        return FetchError::Blocked {
            url: url.clone(),
            reason: *reason,
        };
    }
    if find_source::<hyper::Error>(&err).is_some_and(hyper::Error::is_parse_too_large) {
        return FetchError::HeadTooLarge { url: url.clone() };
    }
    let err = err.without_url();
    let message = error_chain(&err);
    if err.is_timeout() {
        return FetchError::Timeout {
            url: url.clone(),
            stage: if err.is_connect() { "connect" } else { "read" },
        };
    }
    if looks_like_tls(&message) {
        return FetchError::Tls {
            url: url.clone(),
            message,
        };
    }
    if err.is_body() || err.is_decode() {
        return FetchError::Body {
            url: url.clone(),
            message,
        };
    }
    match proxy {
        // Through a proxy we cannot tell a dead proxy from a dead target at connect time;
        // treat it as the proxy's failure so the pool can route around it.
        Some(proxy) if err.is_connect() => FetchError::Proxy {
            proxy: proxy.to_owned(),
            message,
        },
        _ => FetchError::Connect {
            url: url.clone(),
            message,
        },
    }
}

fn find_source<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut current = err.source();
    while let Some(error) = current {
        let text = error.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

/// reqwest reports TLS failures as connect errors; the message is the only way to tell.
fn looks_like_tls(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["certificate", "tls", "ssl", "handshake"]
        .iter()
        .any(|needle| lower.contains(needle))
}
