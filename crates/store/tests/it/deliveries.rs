//! The notification outbox: claims under a lease, attempts and settling, target health,
//! the user's delivery log, redelivery and the webhook secret's version.

use selextract_store::{
    AttemptVerdict, DeliveryAttempt, DeliveryFilter, DeliveryState, NewDelivery, Store, Task, User,
};

use crate::support::{Backend, T0, both_backends, task, test_store, user};

/// A cancelled (finished) run of `task` whose outcome records `targets` webhook deliveries.
async fn queue_deliveries(store: &Store, task: &Task, targets: &[&str], at: i64) -> Vec<String> {
    let run = store
        .enqueue_run(&task.user_id, &task.id, &task.spec, 5, 3)
        .await
        .unwrap();
    store.request_cancel(&task.user_id, &run.id).await.unwrap();
    let deliveries: Vec<NewDelivery> = targets
        .iter()
        .map(|target| NewDelivery {
            id: uuid_like(target, &run.id),
            user_id: task.user_id.clone(),
            task_id: Some(task.id.clone()),
            run_id: Some(run.id.clone()),
            event: "run.completed".to_owned(),
            channel: "webhook".to_owned(),
            target: (*target).to_owned(),
            payload: serde_json::json!({"type": "run.completed"}),
            next_attempt_at_ms: at,
            give_up_at_ms: at + 86_400_000,
            created_at_ms: at,
        })
        .collect();
    assert!(
        store
            .record_outcome(&run.id, &deliveries, at)
            .await
            .unwrap()
    );
    // Recording again is refused and writes nothing.
    assert!(
        !store
            .record_outcome(&run.id, &deliveries, at)
            .await
            .unwrap()
    );
    deliveries.into_iter().map(|d| d.id).collect()
}

fn uuid_like(target: &str, run: &str) -> String {
    format!("{run}-{}", target.len())
}

fn attempt(n: u32, outcome: &str, status: Option<u16>) -> DeliveryAttempt {
    DeliveryAttempt {
        attempt: n,
        started_at_ms: T0,
        outcome: outcome.to_owned(),
        status_code: status,
        latency_ms: 12,
        error: (outcome != "delivered").then(|| "the receiver answered 500".to_owned()),
    }
}

async fn setup(store: &Store) -> (User, Task) {
    let alice = user(store, "alice@example.com", 1).await;
    let books = task(store, &alice, "books").await;
    (alice, books)
}

both_backends!(a_due_delivery_is_claimed_once_until_its_lease_lapses);
async fn a_due_delivery_is_claimed_once_until_its_lease_lapses(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (_alice, books) = setup(&store).await;
    let ids = queue_deliveries(&store, &books, &["https://a.example/"], T0).await;
    assert!(
        store
            .claim_due_deliveries("p1", T0 - 1, 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let first = store
        .claim_due_deliveries("p1", T0, 1000, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, ids[0]);
    assert_eq!(first[0].attempts, 1);
    assert!(
        store
            .claim_due_deliveries("p2", T0 + 999, 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // p1 died: its lease lapses and p2 takes over; p1's late record is ignored.
    let second = store
        .claim_due_deliveries("p2", T0 + 1000, 1000, 10)
        .await
        .unwrap();
    assert_eq!(second[0].attempts, 2);
    let late = store
        .record_delivery_attempt(
            &first[0],
            "p1",
            &attempt(1, "delivered", Some(200)),
            AttemptVerdict::Delivered,
            T0 + 1001,
        )
        .await
        .unwrap();
    assert!(!late.recorded);
    let done = store
        .record_delivery_attempt(
            &second[0],
            "p2",
            &attempt(2, "delivered", Some(204)),
            AttemptVerdict::Delivered,
            T0 + 1002,
        )
        .await
        .unwrap();
    assert!(done.recorded);
    let (delivery, attempts) = store
        .get_delivery(&books.user_id, &ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(delivery.last_status, Some(204));
    assert_eq!(delivery.last_latency_ms, Some(12));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].attempt, 2);
    assert!(
        store
            .claim_due_deliveries("p3", T0 + 10_000, 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

both_backends!(concurrent_claimers_never_share_a_delivery);
async fn concurrent_claimers_never_share_a_delivery(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (_alice, books) = setup(&store).await;
    let targets: Vec<String> = (0..30)
        .map(|i| format!("https://r{i}.example/{}", "x".repeat(i)))
        .collect();
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    queue_deliveries(&store, &books, &refs, T0).await;
    let claimers = (0..4).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_due_deliveries(&format!("p{i}"), T0, 60_000, 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|d| d.id));
            }
        })
    });
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!((count, all.len()), (30, 30));
}

both_backends!(permanent_failures_disable_a_target_and_cancel_its_pending_deliveries);
async fn permanent_failures_disable_a_target_and_cancel_its_pending_deliveries(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (alice, books) = setup(&store).await;
    let target = "https://gone.example/hook";
    let mut last = None;
    for round in 0..3 {
        let at = T0 + round * 10;
        queue_deliveries(&store, &books, &[target], at).await;
        let claimed = store.claim_due_deliveries("p", at, 1000, 1).await.unwrap();
        let recorded = store
            .record_delivery_attempt(
                &claimed[0],
                "p",
                &attempt(1, "failed", Some(404)),
                AttemptVerdict::Failed { disable_after: 3 },
                at,
            )
            .await
            .unwrap();
        last = Some(recorded);
        if round < 2 {
            assert!(!last.as_ref().unwrap().target_disabled);
        }
    }
    let pending = queue_deliveries(&store, &books, &[target], T0 + 5).await;
    // Queued after the target was disabled: pending until the loop claims it and sees that.
    assert!(last.unwrap().target_disabled);
    assert!(
        store
            .is_notify_target_disabled(&books.id, "webhook", target)
            .await
            .unwrap()
    );
    let targets = store
        .notify_targets(&alice.id, &books.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].consecutive_failures, 3);
    assert!(targets[0].disabled_at_ms.is_some());
    assert!(
        targets[0]
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("3 consecutive")
    );
    let claimed = store
        .claim_due_deliveries("p", T0 + 100, 1000, 5)
        .await
        .unwrap();
    assert_eq!(claimed[0].id, pending[0]);
    assert!(
        store
            .cancel_claimed_delivery(&pending[0], "p", "target disabled")
            .await
            .unwrap()
    );
    let (cancelled, _) = store
        .get_delivery(&alice.id, &pending[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.state, DeliveryState::Cancelled);

    let bob = user(&store, "bob@example.com", 1).await;
    assert_eq!(
        store.notify_targets(&bob.id, &books.id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .enable_notify_targets(&bob.id, &books.id, None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .enable_notify_targets(&alice.id, &books.id, None)
            .await
            .unwrap(),
        Some(1)
    );
    assert!(
        !store
            .is_notify_target_disabled(&books.id, "webhook", target)
            .await
            .unwrap()
    );
    let targets = store
        .notify_targets(&alice.id, &books.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(targets[0].consecutive_failures, 0);
}

both_backends!(a_disabling_failure_cancels_the_targets_other_pending_deliveries);
async fn a_disabling_failure_cancels_the_targets_other_pending_deliveries(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (alice, books) = setup(&store).await;
    let target = "https://gone.example/hook";
    queue_deliveries(&store, &books, &[target], T0).await;
    let waiting = queue_deliveries(&store, &books, &[target], T0 + 60_000).await;
    let claimed = store.claim_due_deliveries("p", T0, 1000, 1).await.unwrap();
    let recorded = store
        .record_delivery_attempt(
            &claimed[0],
            "p",
            &attempt(1, "failed", Some(410)),
            AttemptVerdict::Failed { disable_after: 1 },
            T0,
        )
        .await
        .unwrap();
    assert!(recorded.target_disabled);
    assert_eq!(recorded.cancelled, 1);
    let (other, _) = store
        .get_delivery(&alice.id, &waiting[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.state, DeliveryState::Cancelled);
}

both_backends!(the_delivery_log_is_per_user_filtered_and_paged);
async fn the_delivery_log_is_per_user_filtered_and_paged(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (alice, books) = setup(&store).await;
    let films = task(&store, &alice, "films").await;
    let bob = user(&store, "bob@example.com", 1).await;
    let bobs = task(&store, &bob, "bobs").await;
    for i in 0..3 {
        queue_deliveries(&store, &books, &["https://a.example/"], T0 + i).await;
    }
    let film_ids = queue_deliveries(&store, &films, &["https://f.example/"], T0 + 10).await;
    let bob_ids = queue_deliveries(&store, &bobs, &["https://b.example/"], T0 + 20).await;

    let page = |task_id: Option<&str>, state, before, limit| DeliveryFilter {
        task_id: task_id.map(str::to_owned),
        state,
        before,
        limit,
    };
    let (all, more) = store
        .list_deliveries(&alice.id, &page(None, None, None, 10))
        .await
        .unwrap();
    assert_eq!((all.len(), more), (4, false));
    assert_eq!(all[0].id, film_ids[0]);
    assert!(all.iter().all(|d| d.user_id == alice.id));
    let (first, more) = store
        .list_deliveries(&alice.id, &page(None, None, None, 2))
        .await
        .unwrap();
    assert!(more);
    let cursor = first.last().map(|d| (d.created_at_ms, d.id.clone()));
    let (second, more) = store
        .list_deliveries(&alice.id, &page(None, None, cursor, 2))
        .await
        .unwrap();
    assert_eq!((second.len(), more), (2, false));
    assert!(second.iter().all(|d| !first.contains(d)));
    let (books_only, _) = store
        .list_deliveries(&alice.id, &page(Some(&books.id), None, None, 10))
        .await
        .unwrap();
    assert_eq!(books_only.len(), 3);
    let (delivered, _) = store
        .list_deliveries(
            &alice.id,
            &page(None, Some(DeliveryState::Delivered), None, 10),
        )
        .await
        .unwrap();
    assert!(delivered.is_empty());
    // Bob's delivery is not Alice's to read, filter or redeliver.
    let (by_task, _) = store
        .list_deliveries(&alice.id, &page(Some(&bobs.id), None, None, 10))
        .await
        .unwrap();
    assert!(by_task.is_empty());
    assert_eq!(
        store.get_delivery(&alice.id, &bob_ids[0]).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .redeliver_delivery(&alice.id, &bob_ids[0], T0, T0 + 1)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .get_delivery(&bob.id, &bob_ids[0])
            .await
            .unwrap()
            .is_some()
    );
}

both_backends!(a_failed_delivery_redelivered_is_due_again_with_a_fresh_window);
async fn a_failed_delivery_redelivered_is_due_again_with_a_fresh_window(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (alice, books) = setup(&store).await;
    let ids = queue_deliveries(&store, &books, &["https://a.example/"], T0).await;
    let claimed = store.claim_due_deliveries("p", T0, 1000, 1).await.unwrap();
    store
        .record_delivery_attempt(
            &claimed[0],
            "p",
            &attempt(1, "failed", Some(400)),
            AttemptVerdict::Failed { disable_after: 5 },
            T0,
        )
        .await
        .unwrap();
    let later = T0 + 5_000;
    let again = store
        .redeliver_delivery(&alice.id, &ids[0], later, later + 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.state, DeliveryState::Pending);
    assert_eq!(
        (again.next_attempt_at_ms, again.give_up_at_ms),
        (later, later + 100)
    );
    let claimed = store
        .claim_due_deliveries("p", later, 1000, 1)
        .await
        .unwrap();
    assert_eq!(claimed[0].attempts, 2);
    let retry = store
        .record_delivery_attempt(
            &claimed[0],
            "p",
            &attempt(2, "retry", Some(503)),
            AttemptVerdict::Retry {
                next_attempt_at_ms: later + 50,
            },
            later,
        )
        .await
        .unwrap();
    assert!(retry.recorded);
    let (delivery, attempts) = store
        .get_delivery(&alice.id, &ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert_eq!(delivery.next_attempt_at_ms, later + 50);
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.attempt, a.status_code))
            .collect::<Vec<_>>(),
        vec![(1, Some(400)), (2, Some(503))]
    );
}

both_backends!(rotating_the_webhook_secret_bumps_its_version);
async fn rotating_the_webhook_secret_bumps_its_version(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (alice, _) = setup(&store).await;
    assert_eq!(
        store.webhook_secret_version(&alice.id).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.bump_webhook_secret_version(&alice.id).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        store.webhook_secret_version(&alice.id).await.unwrap(),
        Some(2)
    );
    assert_eq!(store.webhook_secret_version("nobody").await.unwrap(), None);
    assert_eq!(
        store.bump_webhook_secret_version("nobody").await.unwrap(),
        None
    );
}
