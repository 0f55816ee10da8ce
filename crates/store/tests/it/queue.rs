//! The queue: claims (cap, fairness, priority, exactly once), leases, expiry, release,
//! finishing, depth.

use std::collections::HashSet;
use std::time::Duration;

use selextract_store::{LeaseStatus, Progress, RunState};

use crate::support::{Backend, T0, both_backends, enqueue, task, test_store, user};

const LEASE: Duration = Duration::from_secs(30);

both_backends!(a_claim_marks_the_run_running_under_a_lease);
async fn a_claim_marks_the_run_running_under_a_lease(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    let ids = enqueue(&store, &books, 5, 1).await;
    let run = store
        .claim_next_run("w1", LEASE, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.id, ids[0]);
    assert_eq!(run.state, RunState::Running);
    assert_eq!(run.lease_owner.as_deref(), Some("w1"));
    assert_eq!(run.lease_until_ms, Some(T0 + 30_000));
    assert_eq!((run.attempt, run.started_at_ms), (1, Some(T0)));
    assert!(
        store
            .claim_next_run("w2", LEASE, T0)
            .await
            .unwrap()
            .is_none()
    );
}

both_backends!(claims_skip_runs_of_users_at_their_concurrency_cap);
async fn claims_skip_runs_of_users_at_their_concurrency_cap(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 2).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 5).await;
    let first = store.claim_next_run("w", LEASE, T0).await.unwrap().unwrap();
    store.claim_next_run("w", LEASE, T0).await.unwrap().unwrap();
    assert!(
        store
            .claim_next_run("w", LEASE, T0)
            .await
            .unwrap()
            .is_none(),
        "a third run went past the cap of 2"
    );

    // Another user is not held back by alice's cap.
    let bob = user(&store, "bob@example.com", 1).await;
    let news = task(&store, &bob, "news").await;
    let bobs = enqueue(&store, &news, 5, 1).await;
    assert_eq!(
        store
            .claim_next_run("w", LEASE, T0)
            .await
            .unwrap()
            .unwrap()
            .id,
        bobs[0]
    );

    // Finishing one of alice's runs frees a slot.
    let done = Progress::default();
    assert!(
        store
            .finish_run(&first.id, "w", RunState::Completed, "ok", None, &done, T0)
            .await
            .unwrap()
    );
    let next = store.claim_next_run("w", LEASE, T0).await.unwrap().unwrap();
    assert_eq!(next.user_id, alice.id);
    assert!(
        store
            .claim_next_run("w", LEASE, T0)
            .await
            .unwrap()
            .is_none()
    );

    // Raising the cap frees more.
    store
        .set_user_plan(&alice.id, "professional", 3)
        .await
        .unwrap();
    assert!(
        store
            .claim_next_run("w", LEASE, T0)
            .await
            .unwrap()
            .is_some()
    );
}

both_backends!(a_user_with_one_queued_run_is_not_starved_by_a_user_with_a_thousand);
async fn a_user_with_one_queued_run_is_not_starved_by_a_user_with_a_thousand(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 4).await;
    let bob = user(&store, "bob@example.com", 4).await;
    let bulk = task(&store, &alice, "bulk").await;
    enqueue(&store, &bulk, 5, 1000).await;
    let single = task(&store, &bob, "single").await;
    let bobs = enqueue(&store, &single, 5, 1).await;

    let mut claimed = Vec::new();
    for _ in 0..3 {
        claimed.push(
            store
                .claim_next_run("w", LEASE, T0)
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }
    assert!(
        claimed.contains(&bobs[0]),
        "bob's run was not among the first 3 claims"
    );
}

both_backends!(claims_alternate_between_users_with_equal_load);
async fn claims_alternate_between_users_with_equal_load(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 10).await;
    let bob = user(&store, "bob@example.com", 10).await;
    let a = task(&store, &alice, "a").await;
    let b = task(&store, &bob, "b").await;
    enqueue(&store, &a, 5, 4).await;
    enqueue(&store, &b, 5, 4).await;
    let mut owners = Vec::new();
    for _ in 0..6 {
        owners.push(
            store
                .claim_next_run("w", LEASE, T0)
                .await
                .unwrap()
                .unwrap()
                .user_id,
        );
    }
    for pair in owners.chunks(2) {
        assert_ne!(pair[0], pair[1], "claims did not alternate: {owners:?}");
    }
}

both_backends!(higher_priority_goes_first_within_a_user_then_oldest_first);
async fn higher_priority_goes_first_within_a_user_then_oldest_first(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 10).await;
    let books = task(&store, &alice, "books").await;
    let low = enqueue(&store, &books, 1, 1).await;
    let normal = enqueue(&store, &books, 5, 2).await;
    let high = enqueue(&store, &books, 9, 1).await;
    let mut order = Vec::new();
    while let Some(run) = store.claim_next_run("w", LEASE, T0).await.unwrap() {
        order.push(run.id);
    }
    assert_eq!(
        order,
        [
            high[0].clone(),
            normal[0].clone(),
            normal[1].clone(),
            low[0].clone()
        ]
    );
}

both_backends!(runs_of_disabled_users_are_not_claimed);
async fn runs_of_disabled_users_are_not_claimed(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 10).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 1).await;
    assert!(store.set_user_disabled(&alice.id, true).await.unwrap());
    assert!(
        store
            .claim_next_run("w", LEASE, T0)
            .await
            .unwrap()
            .is_none()
    );
    store.set_user_disabled(&alice.id, false).await.unwrap();
    assert!(
        store
            .claim_next_run("w", LEASE, T0)
            .await
            .unwrap()
            .is_some()
    );
}

both_backends!(concurrent_claimers_in_two_stores_claim_each_run_exactly_once);
async fn concurrent_claimers_in_two_stores_claim_each_run_exactly_once(backend: Backend) {
    let (store, db) = test_store(backend).await;
    let second = db.connect().await.unwrap();
    let mut all = HashSet::new();
    for n in 0..3 {
        let owner = user(&store, &format!("user{n}@example.com"), 1000).await;
        let job = task(&store, &owner, "job").await;
        all.extend(enqueue(&store, &job, (n + 3) as u8, 100).await);
    }

    let mut claimers = Vec::new();
    for n in 0..10 {
        // 8 claimers share the first pool, 2 use the second store (another "process").
        let store = if n < 8 { store.clone() } else { second.clone() };
        claimers.push(tokio::spawn(async move {
            let worker = format!("w{n}");
            let mut mine = Vec::new();
            while let Some(run) = store.claim_next_run(&worker, LEASE, T0).await.unwrap() {
                assert_eq!(run.lease_owner.as_deref(), Some(worker.as_str()));
                mine.push(run.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    let unique: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), unique.len(), "some run was claimed twice");
    assert_eq!(unique, all);
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth["queued"], depth["running"]), (0, 300));
}

both_backends!(an_expired_lease_is_requeued_until_max_attempts_then_failed);
async fn an_expired_lease_is_requeued_until_max_attempts_then_failed(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    let run = store
        .enqueue_run(&alice.id, &books.id, &books.spec, 5, 2)
        .await
        .unwrap();
    let lease = Duration::from_secs(10);

    let first = store
        .claim_next_run("w1", lease, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.attempt, 1);
    // Not expired yet.
    let report = store.requeue_expired_runs(T0 + 5_000).await.unwrap();
    assert!(report.requeued.is_empty() && report.failed.is_empty());

    let report = store.requeue_expired_runs(T0 + 11_000).await.unwrap();
    assert_eq!(report.requeued, vec![run.id.clone()]);
    let requeued = store.find_run(&alice.id, &run.id).await.unwrap().unwrap();
    assert_eq!((requeued.state, requeued.attempt), (RunState::Queued, 1));
    assert!(requeued.lease_owner.is_none());

    let second = store
        .claim_next_run("w2", lease, T0 + 12_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((second.id.as_str(), second.attempt), (run.id.as_str(), 2));
    assert_eq!(
        second.started_at_ms,
        Some(T0),
        "started_at is the first start"
    );

    let report = store.requeue_expired_runs(T0 + 30_000).await.unwrap();
    assert_eq!(report.failed, vec![run.id.clone()]);
    assert!(report.requeued.is_empty());
    let failed = store.find_run(&alice.id, &run.id).await.unwrap().unwrap();
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(failed.reason.as_deref(), Some("worker_lost_max_attempts"));
    assert_eq!(failed.finished_at_ms, Some(T0 + 30_000));
    assert!(
        store
            .claim_next_run("w3", lease, T0 + 31_000)
            .await
            .unwrap()
            .is_none()
    );
}

both_backends!(an_expired_run_whose_cancel_was_requested_ends_cancelled);
async fn an_expired_run_whose_cancel_was_requested_ends_cancelled(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 1).await;
    let run = store
        .claim_next_run("w1", LEASE, T0)
        .await
        .unwrap()
        .unwrap();
    store.request_cancel(&alice.id, &run.id).await.unwrap();
    let report = store.requeue_expired_runs(T0 + 60_000).await.unwrap();
    assert_eq!(report.cancelled, vec![run.id.clone()]);
    let found = store.find_run(&alice.id, &run.id).await.unwrap().unwrap();
    assert_eq!(found.state, RunState::Cancelled);
}

both_backends!(renewing_after_the_lease_was_lost_returns_lost);
async fn renewing_after_the_lease_was_lost_returns_lost(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 1).await;
    let run = store
        .claim_next_run("w1", Duration::from_secs(1), T0)
        .await
        .unwrap()
        .unwrap();
    let progress = Progress::default();
    store.requeue_expired_runs(T0 + 2_000).await.unwrap();
    assert_eq!(
        store
            .renew_lease(&run.id, "w1", LEASE, &progress, T0 + 2_500)
            .await
            .unwrap(),
        LeaseStatus::Lost
    );

    store
        .claim_next_run("w2", LEASE, T0 + 3_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .renew_lease(&run.id, "w1", LEASE, &progress, T0 + 3_500)
            .await
            .unwrap(),
        LeaseStatus::Lost
    );
    assert_eq!(
        store
            .renew_lease(&run.id, "w2", LEASE, &progress, T0 + 4_000)
            .await
            .unwrap(),
        LeaseStatus::Held {
            cancel_requested: false
        }
    );
    let held = store.find_run(&alice.id, &run.id).await.unwrap().unwrap();
    assert_eq!(held.lease_until_ms, Some(T0 + 34_000));
    assert_eq!(
        store
            .renew_lease("no-such-run", "w2", LEASE, &progress, T0)
            .await
            .unwrap(),
        LeaseStatus::Lost
    );
}

both_backends!(renewing_raises_progress_but_never_lowers_it);
async fn renewing_raises_progress_but_never_lowers_it(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 1).await;
    let run = store
        .claim_next_run("w1", LEASE, T0)
        .await
        .unwrap()
        .unwrap();
    let ahead = Progress {
        pages_done: 3,
        pages_failed: 1,
        pages_known: 10,
        records: 30,
        bytes: 3000,
        compute_units: 3,
    };
    store
        .renew_lease(&run.id, "w1", LEASE, &ahead, T0 + 1)
        .await
        .unwrap();
    let behind = Progress {
        pages_known: 12,
        ..Progress::default()
    };
    store
        .renew_lease(&run.id, "w1", LEASE, &behind, T0 + 2)
        .await
        .unwrap();
    let found = store.find_run(&alice.id, &run.id).await.unwrap().unwrap();
    assert_eq!(
        found.progress,
        Progress {
            pages_known: 12,
            ..ahead
        }
    );
}

both_backends!(a_worker_that_lost_the_lease_cannot_finish_the_run);
async fn a_worker_that_lost_the_lease_cannot_finish_the_run(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 1).await;
    let run = store
        .claim_next_run("w1", Duration::from_secs(1), T0)
        .await
        .unwrap()
        .unwrap();
    store.requeue_expired_runs(T0 + 2_000).await.unwrap();
    store
        .claim_next_run("w2", LEASE, T0 + 3_000)
        .await
        .unwrap()
        .unwrap();
    let progress = Progress {
        pages_done: 1,
        ..Progress::default()
    };

    let refused = store
        .finish_run(
            &run.id,
            "w1",
            RunState::Completed,
            "ok",
            None,
            &progress,
            T0 + 4_000,
        )
        .await
        .unwrap();
    assert!(!refused);
    let still = store.find_run(&alice.id, &run.id).await.unwrap().unwrap();
    assert_eq!(
        (still.state, still.lease_owner.as_deref()),
        (RunState::Running, Some("w2"))
    );

    let finished = store
        .finish_run(
            &run.id,
            "w2",
            RunState::Partial,
            "fetch_errors",
            Some("2 pages failed"),
            &progress,
            T0 + 5_000,
        )
        .await
        .unwrap();
    assert!(finished);
    let done = store.find_run(&alice.id, &run.id).await.unwrap().unwrap();
    assert_eq!(done.state, RunState::Partial);
    assert_eq!(done.reason.as_deref(), Some("fetch_errors"));
    assert_eq!(done.error.as_deref(), Some("2 pages failed"));
    assert_eq!(
        (done.finished_at_ms, done.progress.pages_done),
        (Some(T0 + 5_000), 1)
    );
    // Finished runs are never touched by expiry.
    assert_eq!(
        store.requeue_expired_runs(T0 + 999_999).await.unwrap(),
        Default::default()
    );
}

both_backends!(finishing_as_a_non_terminal_state_is_refused);
async fn finishing_as_a_non_terminal_state_is_refused(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let error = store
        .finish_run(
            "r",
            "w",
            RunState::Queued,
            "ok",
            None,
            &Progress::default(),
            T0,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, selextract_store::StoreError::InvalidArgument(_)),
        "{error:?}"
    );
}

both_backends!(a_released_run_goes_back_to_the_queue_without_using_an_attempt);
async fn a_released_run_goes_back_to_the_queue_without_using_an_attempt(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 1).await;
    let run = store
        .claim_next_run("w1", LEASE, T0)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !store.release_run(&run.id, "w2").await.unwrap(),
        "a non-holder released the run"
    );
    assert!(store.release_run(&run.id, "w1").await.unwrap());
    let released = store.find_run(&alice.id, &run.id).await.unwrap().unwrap();
    assert_eq!((released.state, released.attempt), (RunState::Queued, 0));
    assert!(released.lease_owner.is_none() && released.lease_until_ms.is_none());
    assert!(!store.release_run(&run.id, "w1").await.unwrap());

    let again = store
        .claim_next_run("w2", LEASE, T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id.as_str(), again.attempt), (run.id.as_str(), 1));
}

both_backends!(queue_depth_counts_every_state_and_the_oldest_queued_age_is_measured);
async fn queue_depth_counts_every_state_and_the_oldest_queued_age_is_measured(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    assert_eq!(store.oldest_queued_age_ms(T0).await.unwrap(), None);
    let depth = store.queue_depth().await.unwrap();
    assert_eq!(depth.len(), 6);
    assert!(depth.values().all(|count| *count == 0));

    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    let first = store
        .enqueue_run(&alice.id, &books.id, &books.spec, 5, 3)
        .await
        .unwrap();
    enqueue(&store, &books, 5, 2).await;
    store.claim_next_run("w", LEASE, T0).await.unwrap().unwrap();
    let depth = store.queue_depth().await.unwrap();
    assert_eq!(
        (depth["queued"], depth["running"], depth["completed"]),
        (2, 1, 0)
    );

    // The first run was claimed; the oldest queued one is the second.
    let remaining = store
        .list_runs(&alice.id, &books.id, selextract_store::Page::new(1, 10))
        .await
        .unwrap();
    let oldest_queued = remaining
        .items
        .iter()
        .filter(|run| run.state == RunState::Queued)
        .map(|run| run.queued_at_ms)
        .min()
        .unwrap();
    assert!(oldest_queued >= first.queued_at_ms);
    let now = oldest_queued + 1_234;
    assert_eq!(store.oldest_queued_age_ms(now).await.unwrap(), Some(1_234));
}

both_backends!(concurrent_claimers_never_take_more_than_a_users_cap);
async fn concurrent_claimers_never_take_more_than_a_users_cap(backend: Backend) {
    let (store, db) = test_store(backend).await;
    let second = db.connect().await.unwrap();
    let mut owners = Vec::new();
    for n in 0..3 {
        let owner = user(&store, &format!("user{n}@example.com"), 2).await;
        let job = task(&store, &owner, "job").await;
        enqueue(&store, &job, 5, 40).await;
        owners.push(owner.id);
    }

    // Many claimers race for the last slots; each keeps claiming until nothing is left.
    let mut claimers = Vec::new();
    for n in 0..12 {
        let store = if n % 2 == 0 {
            store.clone()
        } else {
            second.clone()
        };
        claimers.push(tokio::spawn(async move {
            let worker = format!("w{n}");
            let mut mine = Vec::new();
            for _ in 0..10 {
                if let Some(run) = store.claim_next_run(&worker, LEASE, T0).await.unwrap() {
                    mine.push(run.user_id);
                }
            }
            mine
        }));
    }
    let mut claimed = std::collections::BTreeMap::<String, u32>::new();
    for claimer in claimers {
        for user_id in claimer.await.unwrap() {
            *claimed.entry(user_id).or_default() += 1;
        }
    }
    let expected: std::collections::BTreeMap<String, u32> =
        owners.into_iter().map(|id| (id, 2)).collect();
    assert_eq!(
        claimed, expected,
        "a user's cap of 2 was exceeded or not used"
    );
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth["queued"], depth["running"]), (114, 6));
}
