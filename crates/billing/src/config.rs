//! `[billing.lemon_squeezy]`: the provider account, the webhook signing secret, and which
//! Lemon Squeezy variant sells which configured plan. Off by default (self-hosting needs
//! no payment provider).

use std::collections::BTreeMap;

use selextract_config::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Lemon Squeezy's API root. Tests point `api_base` at the test kit's fake instead.
pub const DEFAULT_API_BASE: &str = "https://api.lemonsqueezy.com/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LemonSqueezyConfig {
    /// With this off, the provider routes (checkout, subscription changes, portal, invoices,
    /// webhooks) answer 404 `billing_disabled`.
    pub enabled: bool,
    /// API key (Settings → API in the Lemon Squeezy dashboard). Never printed.
    #[serde(with = "selextract_config::optional_secret")]
    pub api_key: Option<SecretString>,
    /// The webhook's signing secret: the key of the `X-Signature` HMAC. Never printed.
    #[serde(with = "selextract_config::optional_secret")]
    pub signing_secret: Option<SecretString>,
    /// The store that sells the plans (its numeric id).
    pub store_id: u64,
    /// Overridable so that tests (and a staging proxy) can stand in for the provider.
    pub api_base: String,
    /// Plan name (a key of `[billing.plans]`) → the variant id that sells it.
    pub variants: BTreeMap<String, u64>,
    /// Create checkouts in test mode (no real payments).
    pub test_mode: bool,
}

impl Default for LemonSqueezyConfig {
    fn default() -> Self {
        LemonSqueezyConfig {
            enabled: false,
            api_key: None,
            signing_secret: None,
            store_id: 0,
            api_base: DEFAULT_API_BASE.to_owned(),
            variants: BTreeMap::new(),
            test_mode: false,
        }
    }
}

/// Secrets compare by value: configurations are compared in tests and by `config print`
/// round trips, never on a request path.
impl PartialEq for LemonSqueezyConfig {
    fn eq(&self, other: &Self) -> bool {
        let secret = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
        self.enabled == other.enabled
            && secret(&self.api_key) == secret(&other.api_key)
            && secret(&self.signing_secret) == secret(&other.signing_secret)
            && self.store_id == other.store_id
            && self.api_base == other.api_base
            && self.variants == other.variants
            && self.test_mode == other.test_mode
    }
}

impl Eq for LemonSqueezyConfig {}

impl LemonSqueezyConfig {
    /// The plan a variant sells, if any configured plan is sold by it.
    pub fn plan_for_variant(&self, variant_id: u64) -> Option<&str> {
        self.variants
            .iter()
            .find(|(_, id)| **id == variant_id)
            .map(|(plan, _)| plan.as_str())
    }

    /// The variant that sells `plan`.
    pub fn variant_for_plan(&self, plan: &str) -> Option<u64> {
        self.variants.get(plan).copied()
    }

    /// When enabled, everything the provider routes need is set, and every variant sells a
    /// plan that exists (`plan_exists`). Errors name the key.
    pub fn check(&self, plan_exists: impl Fn(&str) -> bool) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let prefix = "billing.lemon_squeezy";
        if self.api_key.is_none() {
            return Err(format!("{prefix}.api_key: required when enabled"));
        }
        if self.signing_secret.is_none() {
            return Err(format!("{prefix}.signing_secret: required when enabled"));
        }
        if self.store_id == 0 {
            return Err(format!("{prefix}.store_id: required when enabled"));
        }
        if !(self.api_base.starts_with("https://") || self.api_base.starts_with("http://")) {
            return Err(format!("{prefix}.api_base: must be an http(s) URL"));
        }
        if self.variants.is_empty() {
            return Err(format!(
                "{prefix}.variants: name at least one plan's variant id when enabled"
            ));
        }
        let mut seen = BTreeMap::new();
        for (plan, variant) in &self.variants {
            if !plan_exists(plan) {
                return Err(format!("{prefix}.variants.{plan}: no plan named {plan:?}"));
            }
            if let Some(other) = seen.insert(*variant, plan) {
                return Err(format!(
                    "{prefix}.variants.{plan}: variant {variant} already sells {other:?}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_off_and_point_at_the_provider() {
        let config: LemonSqueezyConfig = toml::from_str("").unwrap();
        assert!(!config.enabled);
        assert_eq!(config.api_base, DEFAULT_API_BASE);
        assert!(config.check(|_| false).is_ok());
    }

    #[test]
    fn enabled_without_secrets_or_with_unknown_plans_names_the_key() {
        let mut config: LemonSqueezyConfig =
            toml::from_str("enabled = true\nstore_id = 7\nvariants = { starter = 11 }").unwrap();
        assert!(config.check(|_| true).unwrap_err().contains("api_key"));
        config.api_key = Some("k".into());
        assert!(
            config
                .check(|_| true)
                .unwrap_err()
                .contains("signing_secret")
        );
        config.signing_secret = Some("s".into());
        assert!(config.check(|_| true).is_ok());
        let error = config.check(|plan| plan != "starter").unwrap_err();
        assert!(error.contains("variants.starter"), "{error}");
        config.variants.insert("pro".into(), 11);
        let error = config.check(|_| true).unwrap_err();
        assert!(error.contains("already sells"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused_and_secrets_are_masked_when_printed() {
        assert!(toml::from_str::<LemonSqueezyConfig>("api_kee = \"x\"").is_err());
        let config: LemonSqueezyConfig =
            toml::from_str("api_key = \"live-key\"\nsigning_secret = \"whsec\"").unwrap();
        let printed = toml::to_string(&config).unwrap();
        assert!(
            !printed.contains("live-key") && !printed.contains("whsec"),
            "{printed}"
        );
        assert_eq!(config.plan_for_variant(3), None);
    }
}
