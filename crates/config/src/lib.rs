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
//! No IO, no async: a leaf crate that every configurable crate may depend on.

mod secret;
pub mod units;

pub use secrecy::{ExposeSecret, SecretString};
pub use secret::{MASK, SecretUrl, mask_url, optional_secret};
