//! The compute-unit budget of one run, from the user's plan (SPEC §6).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use selextract_engine::{Budget, Unlimited};
use selextract_store::Plan;

/// A limited budget held in an atomic counter for the run: the engine reserves before each
/// fetch and refunds fetches that produced nothing.
#[derive(Debug)]
pub(crate) struct CountedBudget {
    remaining: AtomicI64,
}

impl CountedBudget {
    pub(crate) fn new(units: i64) -> Self {
        CountedBudget {
            remaining: AtomicI64::new(units),
        }
    }
}

impl Budget for CountedBudget {
    fn try_reserve(&self, units: u64) -> bool {
        let units = i64::try_from(units).unwrap_or(i64::MAX);
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                (left >= units).then(|| left - units)
            })
            .is_ok()
    }

    fn refund(&self, units: u64) {
        let units = i64::try_from(units).unwrap_or(i64::MAX);
        // Saturating, so a refund can never wrap the counter around.
        let _ = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                Some(left.saturating_add(units))
            });
    }
}

/// The budget for a run of a user on `plan` whose ledger balance is `balance`.
///
/// `recharged_by_reexecution` is what this run already paid for in an earlier attempt: the
/// engine re-fetches those pages (and reserves for them again), but the worker skips their
/// commit, so they are never charged twice and must not shrink the budget either.
///
/// Concurrent runs of one user each start from the same balance, so together they may
/// overspend it by at most their in-flight pages; the ledger stays exact either way.
pub(crate) fn budget_for_plan(
    plan: &Plan,
    balance: i64,
    recharged_by_reexecution: u64,
) -> Arc<dyn Budget> {
    if plan.monthly_compute_units.is_none() {
        // Unlimited plans are still metered: every committed page is charged in the ledger.
        return Arc::new(Unlimited);
    }
    let overage = i64::try_from(plan.overage_compute_units).unwrap_or(i64::MAX);
    let again = i64::try_from(recharged_by_reexecution).unwrap_or(i64::MAX);
    Arc::new(CountedBudget::new(
        balance.saturating_add(overage).saturating_add(again),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_budget_refuses_a_reservation_it_cannot_cover_and_takes_refunds_back() {
        let budget = CountedBudget::new(3);
        assert!(budget.try_reserve(2));
        assert!(!budget.try_reserve(2));
        budget.refund(2);
        assert!(budget.try_reserve(3));
        assert!(!budget.try_reserve(1));
    }

    #[test]
    fn a_negative_balance_allows_nothing() {
        let budget = CountedBudget::new(-4);
        assert!(!budget.try_reserve(1));
    }

    #[test]
    fn a_limited_plan_counts_balance_overage_and_units_already_paid_by_this_run() {
        let plan = Plan {
            monthly_compute_units: Some(100),
            max_concurrent_runs: 1,
            price_cents: 0,
            overage_compute_units: 2,
            rate_limit_per_minute: None,
        };
        let budget = budget_for_plan(&plan, 1, 3);
        assert!(budget.try_reserve(6));
        assert!(!budget.try_reserve(1));
    }

    #[test]
    fn an_unlimited_plan_never_refuses() {
        let plan = Plan {
            monthly_compute_units: None,
            max_concurrent_runs: 8,
            price_cents: 0,
            overage_compute_units: 0,
            rate_limit_per_minute: None,
        };
        let budget = budget_for_plan(&plan, -1_000, 0);
        assert!(budget.try_reserve(1_000_000));
    }
}
