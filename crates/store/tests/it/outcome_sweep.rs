//! The sweep's side of a run's outcome: runs settled without their worker (failed after a
//! lost worker's last attempt) are listed by `runs_without_outcome`, oldest end first, and
//! `record_outcome` records each one's deliveries exactly once.

use selextract_store::RunState;

use crate::outcome::{
    EXPIRED, LEASE, claimed_run, deliveries_of, delivery, ids_without_outcome, outcome_recorded_at,
};
use crate::support::{Backend, T0, both_backends, task, test_store, user};

both_backends!(a_run_failed_by_lease_expiry_gets_its_outcome_recorded_once);
async fn a_run_failed_by_lease_expiry_gets_its_outcome_recorded_once(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = claimed_run(&store, "w1", 1).await;
    assert!(
        ids_without_outcome(&store).await.is_empty(),
        "a running run"
    );
    // Its only attempt's worker died: the requeue fails it.
    let report = store.requeue_expired_runs(EXPIRED).await.unwrap();
    assert_eq!(report.failed, std::slice::from_ref(&run.id));
    assert_eq!(
        ids_without_outcome(&store).await,
        std::slice::from_ref(&run.id)
    );
    assert_eq!(outcome_recorded_at(&store, &run.id).await, -1);

    let failed = [delivery(
        &run,
        "d-1",
        "run.failed",
        "webhook",
        "https://h.example.com/",
    )];
    assert!(
        store
            .record_outcome(&run.id, &failed, EXPIRED + 1_000)
            .await
            .unwrap()
    );
    assert_eq!(deliveries_of(&store, &run.id).await, 1);
    assert_eq!(outcome_recorded_at(&store, &run.id).await, EXPIRED + 1_000);
    assert!(ids_without_outcome(&store).await.is_empty());

    // A second sweep (another process, or a retry) records nothing.
    let twice = [delivery(
        &run,
        "d-2",
        "run.failed",
        "email",
        "alice@example.com",
    )];
    assert!(
        !store
            .record_outcome(&run.id, &twice, EXPIRED + 2_000)
            .await
            .unwrap()
    );
    assert_eq!(deliveries_of(&store, &run.id).await, 1);
    assert_eq!(outcome_recorded_at(&store, &run.id).await, EXPIRED + 1_000);
    let after = store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(after.state, RunState::Failed);
    assert_eq!(after.reason.as_deref(), Some("worker_lost_max_attempts"));
}

both_backends!(runs_without_outcome_lists_the_oldest_end_first_up_to_the_limit);
async fn runs_without_outcome_lists_the_oldest_end_first_up_to_the_limit(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 3).await;
    let prices = task(&store, &alice, "prices").await;
    let mut lost = Vec::new();
    for n in 0..3 {
        let queued = store
            .enqueue_run(&alice.id, &prices.id, &prices.spec, 5, 1)
            .await
            .unwrap();
        let claimed_at = T0 + n * 60_000;
        let run = store
            .claim_next_run("w1", LEASE, claimed_at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.id, queued.id);
        // Each run's lease runs out a minute after the previous one's.
        let report = store
            .requeue_expired_runs(claimed_at + 30_001)
            .await
            .unwrap();
        assert_eq!(report.failed, std::slice::from_ref(&run.id));
        lost.push(run.id);
    }
    let oldest_two: Vec<String> = store
        .runs_without_outcome(2)
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.id)
        .collect();
    assert_eq!(oldest_two, lost[..2]);
    assert!(
        store
            .record_outcome(&lost[0], &[], T0 + 600_000)
            .await
            .unwrap()
    );
    assert_eq!(ids_without_outcome(&store).await, lost[1..]);
}
