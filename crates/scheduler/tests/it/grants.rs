//! Monthly compute-unit grants.

use selextract_scheduler::issue_monthly_grants;
use selextract_store::Plans;

use crate::support::{Backend, TestEnv, both_backends};

both_backends!(
    monthly_grants_are_issued_once_per_month_to_limited_plans_only,
    current_thread
);
async fn monthly_grants_are_issued_once_per_month_to_limited_plans_only(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let free = env.user("free@example.com", "free", 1).await;
    let pro = env.user("pro@example.com", "professional", 10).await;
    let hosted = env.user("hosted@example.com", "self-hosted", 8).await;
    let plans = Plans {
        billing_enabled: true,
        ..Plans::default()
    };

    assert_eq!(issue_monthly_grants(&env.store, &plans).await.unwrap(), 2);
    // A second pass in the same month (another process, a restart) grants nothing more.
    assert_eq!(issue_monthly_grants(&env.store, &plans).await.unwrap(), 0);
    assert_eq!(env.store.compute_unit_balance(&free.id).await.unwrap(), 100);
    assert_eq!(
        env.store.compute_unit_balance(&pro.id).await.unwrap(),
        5_000
    );
    assert_eq!(
        env.store.compute_unit_balance(&hosted.id).await.unwrap(),
        0,
        "unlimited plans need no grant"
    );
}

both_backends!(
    with_billing_disabled_everyone_is_on_the_unlimited_default_plan,
    current_thread
);
async fn with_billing_disabled_everyone_is_on_the_unlimited_default_plan(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let free = env.user("free@example.com", "free", 1).await;
    assert_eq!(
        issue_monthly_grants(&env.store, &Plans::default())
            .await
            .unwrap(),
        0
    );
    assert_eq!(env.store.compute_unit_balance(&free.id).await.unwrap(), 0);
}
