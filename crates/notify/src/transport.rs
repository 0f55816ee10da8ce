//! Posting a JSON body to a receiver through the fetcher's URL guard: one reqwest client
//! whose DNS resolver returns only addresses the guard allows, IP-literal hosts checked
//! before sending, no proxy, no redirects followed, each request bounded by the attempt
//! timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use selextract_fetch::guard::{GuardError, GuardPolicy, GuardedResolver, NameResolver};

use crate::config::NotifyConfig;

/// The webhook client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the webhook HTTP client: {0}")]
pub struct TransportBuildError(String);

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The receiver answered with this status.
    Status(u16),
    /// No answer within the attempt timeout.
    Timeout,
    /// Connecting or sending failed (refused, reset, TLS, DNS).
    Unreachable(String),
    /// The URL guard refused the address, or the URL cannot be a webhook.
    Refused(String),
}

pub(crate) struct Transport {
    client: reqwest::Client,
    policy: GuardPolicy,
}

impl Transport {
    pub(crate) fn new(
        config: &NotifyConfig,
        resolver: Option<Arc<dyn NameResolver>>,
    ) -> Result<Transport, TransportBuildError> {
        let mut policy = GuardPolicy {
            allow_private_networks: config.allow_private_networks,
            allowed_private_addrs: config.allowed_private_addrs.clone(),
            ..GuardPolicy::default()
        };
        if let Some(resolver) = resolver {
            policy.resolver = resolver;
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(policy.clone(), Vec::new())))
            .timeout(config.attempt_timeout)
            .connect_timeout(config.attempt_timeout)
            .user_agent(concat!("Selextract-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| TransportBuildError(error.to_string()))?;
        Ok(Transport { client, policy })
    }

    /// POSTs `body` (JSON) to `url` with `headers`.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Sent {
        let url = match self.vet(url).await {
            Ok(url) => url,
            Err(refusal) => return Sent::Refused(refusal),
        };
        let mut request = self
            .client
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.body(body).send().await {
            Ok(response) => Sent::Status(response.status().as_u16()),
            Err(error) => classify(&error),
        }
    }

    /// Parses the URL and applies the checks the resolver cannot: the scheme, IP-literal
    /// hosts, and the port of an `ip:port` exception.
    async fn vet(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{} URLs cannot receive webhooks", parsed.scheme()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // Credentials belong in the receiver's checks of the signature, not the URL.
            return Err("URLs with a user name or password are refused".to_owned());
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        match parsed.host() {
            None => return Err("the URL has no host".to_owned()),
            Some(url::Host::Ipv4(ip)) => self.check(SocketAddr::new(IpAddr::V4(ip), port))?,
            Some(url::Host::Ipv6(ip)) => self.check(SocketAddr::new(IpAddr::V6(ip), port))?,
            Some(url::Host::Domain(host)) => {
                if !self.policy.allow_private_networks
                    && !self.policy.allowed_private_addrs.is_empty()
                {
                    // The resolver matches an `ip:port` exception by address only; the
                    // port is checked here against what the name resolves to.
                    selextract_fetch::guard::resolve_allowed(&self.policy, host, port)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(parsed)
    }

    fn check(&self, addr: SocketAddr) -> Result<(), String> {
        self.policy.check_addr(addr).map_err(|e| e.to_string())
    }
}

/// A guard refusal anywhere in the error's chain is a refusal; else timeouts and the rest.
fn classify(error: &reqwest::Error) -> Sent {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refusal) = current.downcast_ref::<GuardError>() {
            return Sent::Refused(refusal.to_string());
        }
        source = current.source();
    }
    if error.is_timeout() {
        return Sent::Timeout;
    }
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        message.push_str(": ");
        message.push_str(&current.to_string());
        source = current.source();
    }
    Sent::Unreachable(message)
}
