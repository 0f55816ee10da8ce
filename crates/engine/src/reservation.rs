//! The one compute-unit reservation step: every fetch and render reserves here, before it
//! starts, and settles afterwards, refunding what it did not use.

use serde_json::json;

use crate::run::Shared;
use crate::{FetchMode, LogLevel, PageKey};

/// Compute units held for up to `pages` pages of `unit` units each.
#[derive(Debug)]
#[must_use = "a reservation is settled, or its units stay taken"]
pub(crate) struct Reservation {
    /// What one page (one HTTP response or one browser snapshot) costs.
    pub(crate) unit: u64,
    /// Pages granted: at least 1, at most what was asked for.
    pub(crate) pages: u32,
}

impl Reservation {
    /// Keeps the units of `used` pages and refunds the rest; `used` beyond the grant
    /// counts as the grant, so nothing is ever charged that was not reserved.
    pub(crate) fn settle(self, shared: &Shared, used: u32) {
        let unused = self.pages.saturating_sub(used);
        if unused > 0 {
            shared
                .options
                .budget
                .refund(self.unit.saturating_mul(u64::from(unused)));
        }
    }
}

/// What one page fetched in `mode` costs: the mode's price plus the proxy surcharge.
pub(crate) fn page_price(shared: &Shared, mode: FetchMode) -> u64 {
    let rates = shared.options.rates;
    let base = match mode {
        FetchMode::Http => rates.http_page,
        FetchMode::Browser => rates.browser_page,
    };
    let proxy = if shared.task().proxy.enabled {
        rates.proxy_page
    } else {
        0
    };
    base.saturating_add(proxy)
}

/// Reserves up to `pages` pages in `mode` before the fetch or render of `key` starts. `None`
/// when not even one page can be paid: the budget is exhausted and the run stops.
pub(crate) async fn reserve(
    shared: &Shared,
    key: PageKey,
    mode: FetchMode,
    pages: u32,
) -> Option<Reservation> {
    let unit = page_price(shared, mode);
    let granted = shared.options.budget.reserve_pages(unit, pages.max(1));
    if granted == 0 {
        stop_for_budget(shared, key).await;
        return None;
    }
    Some(Reservation {
        unit,
        pages: granted,
    })
}

/// Stops the run because the budget cannot pay for the next page; logged once per run.
pub(crate) async fn stop_for_budget(shared: &Shared, key: PageKey) {
    if shared.exhaust_budget() {
        shared
            .log(
                LogLevel::Warn,
                "compute units exhausted; the run stops".to_owned(),
                json!({"page": key.to_string()}),
            )
            .await;
    }
}
