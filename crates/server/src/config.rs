//! The server's own settings, filled in by the CLI from the one configuration tree.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use selextract_config::SecretString;
use serde::{Deserialize, Serialize};

/// Everything the API needs to know that is not a connection. The settings section
/// `[server]` deserializes straight into this type (so its defaults are the only ones); the
/// fields marked `skip` come from other sections and are filled in by the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where `selextract serve` listens (127.0.0.1:8000); the CLI binds the listener.
    pub bind: SocketAddr,
    /// The address people reach this installation at (`https://scrape.example.com`), for
    /// the links in e-mails and the first-start setup link. Empty (the default) means
    /// `http://` + `bind`, with an unspecified bind address (`0.0.0.0`) shown as 127.0.0.1.
    pub public_url: String,
    /// The installation's data directory (`./data`): the embedded SQLite database, local
    /// results and browser runtime directories live there. Used by the CLI's wiring.
    pub data_dir: PathBuf,
    /// Largest accepted request body in bytes (2 MiB).
    #[serde(rename = "request_body_limit_bytes")]
    pub request_body_limit: usize,
    /// Requests per minute per API key (600).
    pub rate_limit_per_minute: u32,
    /// How often a process compares the store's credential revision with the one its
    /// cache of verified keys was built under (1 s): a key revoked or a user disabled
    /// through any process or the CLI is refused by every process within this interval.
    /// 0 compares on every request.
    #[serde(
        rename = "credential_check_interval_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub credential_check_interval: Duration,
    /// Who may read `/metrics` (the `[metrics]` section).
    #[serde(skip)]
    pub metrics: MetricsConfig,
    #[serde(skip)]
    pub limits: selextract_spec::Limits,
    #[serde(skip)]
    pub plans: selextract_store::Plans,
    /// Compute-unit prices, for the 402 check and preview charges.
    #[serde(skip)]
    pub rates: selextract_engine::ComputeRates,
    /// Attempts a run gets before a lost worker fails it (`worker.max_attempts`).
    #[serde(skip)]
    pub max_attempts: u32,
    /// Reported by `/health`.
    #[serde(skip)]
    pub version: &'static str,
    /// Caps and timings of live event streams (SSE).
    pub event_streams: EventStreamConfig,
    /// The `[auth]` section: signup policy, password cost, session and token lifetimes,
    /// lockout.
    #[serde(skip)]
    pub auth: selextract_accounts::AuthConfig,
}

impl ServerConfig {
    /// The public base URL without a trailing slash (see [`ServerConfig::public_url`]).
    pub fn public_base_url(&self) -> String {
        let configured = self.public_url.trim().trim_end_matches('/');
        if !configured.is_empty() {
            return configured.to_owned();
        }
        let mut bind = self.bind;
        if bind.ip().is_unspecified() {
            bind.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        format!("http://{bind}")
    }

    /// A link to `path` on this installation carrying `token` in its query string. The
    /// token is base64url, which needs no escaping in a query.
    pub fn link(&self, path: &str, token: &str) -> String {
        format!("{}{path}?token={token}", self.public_base_url())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8000)),
            data_dir: PathBuf::from("./data"),
            request_body_limit: 2 * 1024 * 1024,
            rate_limit_per_minute: 600,
            credential_check_interval: Duration::from_secs(1),
            metrics: MetricsConfig::default(),
            limits: selextract_spec::Limits::default(),
            plans: selextract_store::Plans::default(),
            rates: selextract_engine::ComputeRates::default(),
            max_attempts: selextract_store::DEFAULT_MAX_ATTEMPTS,
            version: env!("CARGO_PKG_VERSION"),
            event_streams: EventStreamConfig::default(),
            public_url: String::new(),
            auth: selextract_accounts::AuthConfig::default(),
        }
    }
}

/// Who may read `/metrics`: the settings section `[metrics]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Client addresses or networks (`10.0.0.0/8`) allowed without a token (loopback by
    /// default).
    #[serde(with = "selextract_config::ip_networks")]
    pub allow: Vec<IpNet>,
    /// When set, `Authorization: Bearer <token>` also grants access, from anywhere. Empty in
    /// the settings means unset; printed masked.
    #[serde(with = "selextract_config::optional_secret")]
    pub bearer_token: Option<SecretString>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            allow: vec![
                IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
            bearer_token: None,
        }
    }
}

/// Live event streams (`GET /tasks/{id}/events`): how many may be open, and how a stream
/// with nothing to report slows down and ends. The settings section `[server.event_streams]`
/// deserializes straight into this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventStreamConfig {
    /// Streams one user may hold open at once, over all their keys (8).
    pub max_per_user: usize,
    /// Streams this process holds open at once (1024).
    pub max_open: usize,
    /// The poll interval of a stream that just reported something (250 ms); unchanged
    /// polls double it, up to 1 s while a run is unfinished.
    #[serde(
        rename = "poll_interval_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub poll_interval: Duration,
    /// The longest interval between polls of a task that has no run (5 s).
    #[serde(
        rename = "max_poll_interval_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub max_poll_interval: Duration,
    /// A stream on a task with no run ends (event `end`, reason `idle`) after this long
    /// (300 s).
    #[serde(
        rename = "idle_timeout_seconds",
        with = "selextract_config::units::duration_seconds"
    )]
    pub idle_timeout: Duration,
    /// How often the key that opened a stream is checked in the store (revoked, expired,
    /// owner disabled) together with the task (deleted) (1 s).
    #[serde(
        rename = "key_check_interval_ms",
        with = "selextract_config::units::duration_ms"
    )]
    pub key_check_interval: Duration,
}

impl Default for EventStreamConfig {
    fn default() -> Self {
        EventStreamConfig {
            max_per_user: 8,
            max_open: 1024,
            poll_interval: Duration::from_millis(250),
            max_poll_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            key_check_interval: Duration::from_secs(1),
        }
    }
}
