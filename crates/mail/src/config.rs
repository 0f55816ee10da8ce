//! `[smtp]`: which server carries the mail, how to reach it, and who the mail is from.

use std::time::Duration;

use selextract_config::SecretString;
use serde::{Deserialize, Serialize};

/// The settings section `[smtp]`. Without a `host` the installation sends no mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The SMTP server's host name or address; empty means mail is not configured.
    pub host: String,
    /// The server's port; unset means the usual one for `tls`: 25 for `none`, 587 for
    /// `starttls`, 465 for `tls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// User name for SMTP AUTH; empty means no authentication.
    pub username: String,
    /// Password for SMTP AUTH; printed masked.
    #[serde(with = "selextract_config::optional_secret")]
    pub password: Option<SecretString>,
    /// The sender, as an address or `Name <address>`.
    pub from: String,
    /// `starttls` (default: plain connection upgraded with STARTTLS, refused if the server
    /// cannot), `tls` (TLS from the first byte, "SMTPS") or `none` (plain text: only for a
    /// relay on the same host or a test sink).
    pub tls: TlsMode,
    /// How long one SMTP command may take before sending gives up (30 s).
    #[serde(
        rename = "timeout_seconds",
        with = "selextract_config::units::duration_seconds"
    )]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: None,
            username: String::new(),
            password: None,
            from: "Selextract <noreply@localhost>".to_owned(),
            tls: TlsMode::default(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl SmtpConfig {
    /// Whether a server is named at all.
    pub fn is_configured(&self) -> bool {
        !self.host.trim().is_empty()
    }

    /// The configured port, or the usual one for the TLS mode.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        })
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    None,
    #[default]
    Starttls,
    Tls,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use selextract_config::ExposeSecret;

    use super::*;

    #[test]
    fn an_empty_section_is_unconfigured_starttls_on_587() {
        let config: SmtpConfig = toml::from_str("").unwrap();
        assert!(!config.is_configured());
        assert_eq!(config.tls, TlsMode::Starttls);
        assert_eq!(config.effective_port(), 587);
        assert_eq!(config.timeout, Duration::from_secs(30));
    }

    #[test]
    fn every_key_reads_and_the_password_prints_masked() {
        let config: SmtpConfig = toml::from_str(
            "host = \"mail.example.com\"\nport = 2525\nusername = \"u\"\npassword = \"hunter22\"\n\
             from = \"Ops <ops@example.com>\"\ntls = \"tls\"\ntimeout_seconds = 5",
        )
        .unwrap();
        assert!(config.is_configured());
        assert_eq!(config.effective_port(), 2525);
        assert_eq!(config.tls, TlsMode::Tls);
        assert_eq!(
            config.password.as_ref().unwrap().expose_secret(),
            "hunter22"
        );
        assert_eq!(config.timeout, Duration::from_secs(5));
        let printed = toml::to_string(&config).unwrap();
        assert!(!printed.contains("hunter22"), "{printed}");
        assert!(!format!("{config:?}").contains("hunter22"));
    }

    #[test]
    fn the_port_follows_the_tls_mode_unless_set() {
        for (mode, port) in [("none", 25), ("starttls", 587), ("tls", 465)] {
            let config: SmtpConfig = toml::from_str(&format!("tls = \"{mode}\"")).unwrap();
            assert_eq!(config.effective_port(), port, "{mode}");
        }
    }

    #[test]
    fn unknown_keys_and_modes_are_refused() {
        let error = toml::from_str::<SmtpConfig>("server = \"x\"").unwrap_err();
        assert!(error.to_string().contains("server"), "{error}");
        let error = toml::from_str::<SmtpConfig>("tls = \"ssl\"").unwrap_err();
        assert!(error.to_string().contains("ssl"), "{error}");
    }
}
