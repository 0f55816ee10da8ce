//! The claim stays correct (and is timed) with 20,000 queued runs.

use std::time::{Duration, Instant};

use crate::support::{Backend, T0, both_backends, enqueue, task, test_store, user};

both_backends!(claims_over_twenty_thousand_queued_runs_stay_fair);
async fn claims_over_twenty_thousand_queued_runs_stay_fair(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let mut users = Vec::new();
    let started = Instant::now();
    // 20 users × 1,000 queued runs each.
    for n in 0..20 {
        let owner = user(&store, &format!("user{n}@example.com"), 8).await;
        let job = task(&store, &owner, "job").await;
        enqueue(&store, &job, 5, 1000).await;
        users.push(owner.id);
    }
    let enqueued_in = started.elapsed();

    let started = Instant::now();
    let mut claimed_by_user = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..100 {
        let run = store
            .claim_next_run("w", Duration::from_secs(60), T0)
            .await
            .unwrap()
            .unwrap();
        *claimed_by_user.entry(run.user_id).or_default() += 1;
    }
    let claimed_in = started.elapsed();
    eprintln!(
        "20,000 runs enqueued in {enqueued_in:?}; 100 claims in {claimed_in:?} ({:?} per claim)",
        claimed_in / 100
    );
    // Round-robin: 100 claims over 20 users is exactly 5 each.
    assert_eq!(claimed_by_user.len(), 20);
    assert!(
        claimed_by_user.values().all(|count| *count == 5),
        "{claimed_by_user:?}"
    );
}
