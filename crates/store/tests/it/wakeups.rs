//! Cross-process queue wake-ups (LISTEN/NOTIFY on PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::support::{Backend, enqueue, task, test_store, user};

/// Only reached when wake-ups are broken; not a speed requirement.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_in_another_process_wakes_a_postgres_subscriber() {
    let (store, db) = test_store(Backend::Postgres).await;
    let waker = Arc::new(Notify::new());
    let _subscription = store.subscribe_queue_wakeups(waker.clone()).unwrap();
    // The subscription wakes once when it starts listening (runs may have been enqueued
    // while nobody listened); wait for that, so the next wake-up is the enqueue's.
    tokio::time::timeout(GIVE_UP_AFTER, waker.notified())
        .await
        .expect("the listener started");

    let other_process = db.connect().await.unwrap();
    let alice = user(&other_process, "alice@example.com", 1).await;
    let books = task(&other_process, &alice, "books").await;
    // (No "nothing woke it yet" check: the channel is per database, not per schema, so the
    // enqueues of tests running in parallel in other schemas wake this subscriber too.)

    let notified = waker.notified();
    enqueue(&other_process, &books, 5, 1).await;
    tokio::time::timeout(GIVE_UP_AFTER, notified)
        .await
        .expect("the enqueue woke the subscriber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_requeued_after_a_lost_worker_wakes_a_postgres_subscriber() {
    let (store, _db) = test_store(Backend::Postgres).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 1).await;
    store
        .claim_next_run("w1", Duration::from_secs(1), crate::support::T0)
        .await
        .unwrap()
        .unwrap();

    let waker = Arc::new(Notify::new());
    let _subscription = store.subscribe_queue_wakeups(waker.clone()).unwrap();
    tokio::time::timeout(GIVE_UP_AFTER, waker.notified())
        .await
        .expect("the listener started");
    let notified = waker.notified();
    let report = store
        .requeue_expired_runs(crate::support::T0 + 2_000)
        .await
        .unwrap();
    assert_eq!(report.requeued.len(), 1);
    tokio::time::timeout(GIVE_UP_AFTER, notified)
        .await
        .expect("the requeue woke the subscriber");
}

#[tokio::test]
async fn sqlite_has_no_cross_process_wakeups() {
    let (store, _db) = test_store(Backend::Sqlite).await;
    assert!(
        store
            .subscribe_queue_wakeups(Arc::new(Notify::new()))
            .is_none()
    );
}
