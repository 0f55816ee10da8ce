//! Plans (SPEC §6): compute-unit grants, concurrency caps and prices, from configuration.
//! Not SQL, but shared by the server (402 checks, plan listings) and the workers (budgets),
//! so it lives beside the repositories both already depend on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Compute units granted each month; `None` means unlimited (still metered).
    #[serde(default)]
    pub monthly_compute_units: Option<u64>,
    pub max_concurrent_runs: u32,
    /// Monthly price in US cents (0 for free and self-hosted).
    #[serde(default)]
    pub price_cents: u64,
    /// Compute units a user may go below zero before runs stop.
    #[serde(default)]
    pub overage_compute_units: u64,
    /// API requests per minute per key (and per user for sessions and JWTs); `None` uses
    /// `server.rate_limit_per_minute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plans {
    /// With billing disabled (the self-host default) every user is on `default_plan`.
    #[serde(default, rename = "enabled")]
    pub billing_enabled: bool,
    #[serde(default = "default_plan_name")]
    pub default_plan: String,
    #[serde(default = "default_plans")]
    pub plans: BTreeMap<String, Plan>,
    /// `[billing.lemon_squeezy]`: the payment provider that moves users between plans.
    #[serde(default)]
    pub lemon_squeezy: selextract_billing::LemonSqueezyConfig,
}

impl Default for Plans {
    fn default() -> Self {
        Plans {
            billing_enabled: false,
            default_plan: default_plan_name(),
            plans: default_plans(),
            lemon_squeezy: selextract_billing::LemonSqueezyConfig::default(),
        }
    }
}

impl Plans {
    /// The plan a user is on: their own plan when billing is enabled, else the default.
    pub fn plan_for<'a>(&'a self, user_plan: &'a str) -> (&'a str, Plan) {
        let name = if self.billing_enabled {
            user_plan
        } else {
            self.default_plan.as_str()
        };
        match self.plans.get(name) {
            Some(plan) => (name, plan.clone()),
            None => (name, unlimited_plan()),
        }
    }

    /// Every configured plan must exist where it is referenced.
    pub fn check(&self) -> Result<(), String> {
        if !self.plans.contains_key(&self.default_plan) {
            return Err(format!(
                "billing.default_plan: no plan named {:?}",
                self.default_plan
            ));
        }
        for (name, plan) in &self.plans {
            if plan.max_concurrent_runs == 0 {
                return Err(format!(
                    "billing.plans.{name}.max_concurrent_runs: must be at least 1"
                ));
            }
            if plan.rate_limit_per_minute == Some(0) {
                return Err(format!(
                    "billing.plans.{name}.rate_limit_per_minute: must be at least 1"
                ));
            }
        }
        if self.lemon_squeezy.enabled && !self.billing_enabled {
            return Err(
                "billing.lemon_squeezy.enabled: needs billing.enabled = true (plans apply only \
                 with billing on)"
                    .to_owned(),
            );
        }
        self.lemon_squeezy
            .check(|name| self.plans.contains_key(name))
    }
}

fn default_plan_name() -> String {
    "self-hosted".to_owned()
}

fn unlimited_plan() -> Plan {
    Plan {
        monthly_compute_units: None,
        max_concurrent_runs: 8,
        price_cents: 0,
        overage_compute_units: 0,
        rate_limit_per_minute: None,
    }
}

fn default_plans() -> BTreeMap<String, Plan> {
    let plan = |cu: u64, runs: u32, cents: u64| Plan {
        monthly_compute_units: Some(cu),
        max_concurrent_runs: runs,
        price_cents: cents,
        overage_compute_units: 0,
        rate_limit_per_minute: None,
    };
    BTreeMap::from([
        ("self-hosted".to_owned(), unlimited_plan()),
        ("free".to_owned(), plan(100, 1, 0)),
        ("starter".to_owned(), plan(1_000, 3, 1_900)),
        ("professional".to_owned(), plan(5_000, 10, 4_900)),
        ("enterprise".to_owned(), plan(25_000, 50, 9_900)),
    ])
}
