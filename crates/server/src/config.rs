//! The server's own settings, filled in by the CLI from the one configuration tree.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Everything the API needs to know that is not a connection.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body in bytes (2 MiB).
    pub request_body_limit: usize,
    /// Requests per minute per API key (600).
    pub rate_limit_per_minute: u32,
    /// Client networks allowed to read `/metrics` without a token (loopback by default).
    pub metrics_allow: Vec<IpNet>,
    /// A bearer token that also grants `/metrics`, from anywhere.
    pub metrics_bearer_token: Option<String>,
    pub limits: selextract_spec::Limits,
    pub plans: selextract_store::Plans,
    /// Compute-unit prices, for the 402 check and preview charges.
    pub rates: selextract_engine::ComputeRates,
    /// Attempts a run gets before a lost worker fails it (3).
    pub max_attempts: u32,
    /// Reported by `/health`.
    pub version: &'static str,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            request_body_limit: 2 * 1024 * 1024,
            rate_limit_per_minute: 600,
            metrics_allow: vec![
                IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
            metrics_bearer_token: None,
            limits: selextract_spec::Limits::default(),
            plans: selextract_store::Plans::default(),
            rates: selextract_engine::ComputeRates::default(),
            max_attempts: 3,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}
