//! Compute-unit budgets from plans.

use std::collections::BTreeMap;

use selextract_store::testing::owned_run_unchecked;
use selextract_store::{LedgerKind, Plan, Plans, RunState};

use crate::support::{
    Backend, RunningWorker, TestEnv, both_backends, catalogue_spec, product_titles, titles,
};

fn plans_with_a_three_unit_plan() -> Plans {
    let mut plans: BTreeMap<String, Plan> = Plans::default().plans;
    plans.insert(
        "tiny".to_owned(),
        Plan {
            monthly_compute_units: Some(3),
            max_concurrent_runs: 1,
            price_cents: 0,
            overage_compute_units: 0,
            rate_limit_per_minute: None,
        },
    );
    Plans {
        billing_enabled: true,
        default_plan: "self-hosted".to_owned(),
        plans,
        lemon_squeezy: Default::default(),
    }
}

both_backends!(a_user_with_three_compute_units_gets_exactly_three_pages_and_a_partial_run);
async fn a_user_with_three_compute_units_gets_exactly_three_pages_and_a_partial_run(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("tiny@example.com", "tiny", 1).await;
    assert!(
        env.store
            .grant_compute_units(&user.id, 3, "grant:test")
            .await
            .unwrap()
    );
    let run = env.enqueue(&user, catalogue_spec(&env.site, 50)).await;

    let mut config = env.config("worker-1");
    config.plans = plans_with_a_three_unit_plan();
    let worker = RunningWorker::spawn(config, env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Partial);
    assert_eq!(
        finished.reason.as_deref(),
        Some("insufficient_compute_units")
    );
    let charges = env
        .store
        .ledger_entries_for_run(
            &owned_run_unchecked(&env.store, &run.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(charges.len(), 3);
    assert!(
        charges
            .iter()
            .all(|entry| entry.kind == LedgerKind::Charge && entry.amount == 1)
    );
    assert_eq!(env.store.compute_unit_balance(&user.id).await.unwrap(), 0);
    assert_eq!(
        env.site.hits("/catalog"),
        3,
        "the fourth page is never fetched"
    );
    assert_eq!(
        titles(&env.exported_records(&run.id).await),
        product_titles(30)
    );
}

both_backends!(with_billing_disabled_the_same_user_is_unlimited_but_still_metered);
async fn with_billing_disabled_the_same_user_is_unlimited_but_still_metered(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let user = env.user("tiny@example.com", "tiny", 1).await;
    let run = env.enqueue(&user, catalogue_spec(&env.site, 50)).await;

    let mut config = env.config("worker-1");
    config.plans = Plans {
        billing_enabled: false,
        ..plans_with_a_three_unit_plan()
    };
    let worker = RunningWorker::spawn(config, env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Completed);
    assert_eq!(
        env.store
            .ledger_entries_for_run(
                &owned_run_unchecked(&env.store, &run.id)
                    .await
                    .unwrap()
                    .unwrap()
            )
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(env.store.compute_unit_balance(&user.id).await.unwrap(), -5);
}
