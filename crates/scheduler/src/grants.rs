//! The monthly compute-unit grant (SPEC §6): every user on a plan with a monthly allowance
//! gets it once per calendar month (UTC). The idempotency key
//! (`selextract_store::monthly_grant_key`) makes the job safe to run in every process at
//! once and after every restart. It runs as the installation job `system:monthly_grants`
//! (`jobs.rs`), hourly.

use selextract_store::{Plans, Store, StoreError};

/// Grants this month's compute units to every user who has not had them yet; returns how
/// many grants were written.
pub async fn issue_monthly_grants(store: &Store, plans: &Plans) -> Result<u64, StoreError> {
    let mut written = 0;
    for (user_id, plan_name) in store.list_user_plans().await? {
        if grant_this_month(store, plans, &user_id, &plan_name).await? {
            written += 1;
        }
    }
    Ok(written)
}

/// Grants one user this month's compute units of their plan, once (also used when a user is
/// created, so a new user need not wait for the job); false when the plan has no monthly
/// allowance or the grant was made already.
pub async fn grant_this_month(
    store: &Store,
    plans: &Plans,
    user_id: &str,
    plan_name: &str,
) -> Result<bool, StoreError> {
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    store
        .grant_monthly_compute_units(plans, user_id, plan_name, &month)
        .await
}
