//! selextract-config: the few types that the crates' own configuration structs share, so
//! that the one settings tree (loaded by the CLI) can deserialize straight into them.
//!
//! - Secrets: [`SecretString`] (from `secrecy`) for tokens and [`SecretUrl`] for connection
//!   URLs. Neither shows its secret through `Debug` or `Serialize`; a URL shows itself with
//!   the password masked, so logs and `selextract config print` stay useful. Only
//!   `expose_secret()` gives the real value, at the one place that connects or compares.
//! - Units: `serde(with = …)` modules that keep the settings' integer keys (`*_ms`,
//!   `*_seconds`, `*_minutes`, `*_mb`) while the structs hold `Duration`s and byte counts.
//!
//! - Networks: [`ip_networks`] reads a list of addresses and CIDR networks.
//!
//! No IO, no async: a leaf crate that every configurable crate may depend on.

mod secret;
pub mod units;

pub use ipnet::IpNet;

pub use secrecy::{ExposeSecret, SecretString};
pub use secret::{MASK, SecretUrl, mask_url, optional_secret};

/// `serde(with = "selextract_config::ip_networks")` for a `Vec<IpNet>` written as a list of
/// addresses (`127.0.0.1`, a host network) and CIDR networks (`10.0.0.0/8`). A host network
/// prints back as its bare address.
pub mod ip_networks {
    use std::net::IpAddr;

    use ipnet::IpNet;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(nets: &[IpNet], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(nets.iter().map(|net| {
            if net.prefix_len() == net.max_prefix_len() {
                net.addr().to_string()
            } else {
                net.to_string()
            }
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|raw| {
                let raw = raw.trim();
                raw.parse::<IpNet>()
                    .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        D::Error::custom(format!(
                            "{raw:?} is neither an IP address nor a network such as 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }
}
