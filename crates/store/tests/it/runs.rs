//! Runs as their owner sees them: enqueue, lookups, history, cancellation.

use std::time::Duration;

use selextract_store::{CancelOutcome, LeaseStatus, Page, Progress, RunState, StoreError};

use crate::support::{Backend, T0, both_backends, enqueue, task, test_store, user};

const LEASE: Duration = Duration::from_secs(30);

both_backends!(an_enqueued_run_snapshots_the_spec_and_starts_queued);
async fn an_enqueued_run_snapshots_the_spec_and_starts_queued(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    let snapshot = serde_json::json!({"url": "http://127.0.0.1/snapshot"});
    let run = store
        .enqueue_run(&alice.id, &books.id, &snapshot, 7, 4)
        .await
        .unwrap();
    assert_eq!(run.state, RunState::Queued);
    assert_eq!((run.priority, run.attempt, run.max_attempts), (7, 0, 4));
    assert_eq!(run.spec, snapshot);
    assert_eq!(
        (run.task_id.as_str(), run.user_id.as_str()),
        (books.id.as_str(), alice.id.as_str())
    );
    assert!(run.lease_owner.is_none() && run.started_at_ms.is_none() && !run.cancel_requested);
    assert_eq!(run.progress, Progress::default());

    // Editing the task later does not change the run's snapshot.
    store
        .update_task(
            &alice.id,
            &books.id,
            "books",
            &serde_json::json!({"v": 2}),
            5,
        )
        .await
        .unwrap();
    let found = store.find_run(&alice.id, &run.id).await.unwrap().unwrap();
    assert_eq!(found.spec, snapshot);
    let any = store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(any.id, run.id);
}

both_backends!(enqueueing_for_a_missing_or_deleted_task_is_not_found);
async fn enqueueing_for_a_missing_or_deleted_task_is_not_found(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    let spec = serde_json::json!({});
    let missing = store
        .enqueue_run(&alice.id, "no-such-task", &spec, 5, 3)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing:?}");
    store.delete_task(&alice.id, &books.id).await.unwrap();
    let deleted = store
        .enqueue_run(&alice.id, &books.id, &spec, 5, 3)
        .await
        .unwrap_err();
    assert!(matches!(deleted, StoreError::NotFound(_)), "{deleted:?}");
}

both_backends!(runs_of_a_task_list_newest_first_with_totals_and_a_latest_run);
async fn runs_of_a_task_list_newest_first_with_totals_and_a_latest_run(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    assert!(
        store
            .latest_run(&alice.id, &books.id)
            .await
            .unwrap()
            .is_none()
    );
    let ids = enqueue(&store, &books, 5, 5).await;
    let first = store
        .list_runs(&alice.id, &books.id, Page::new(1, 2))
        .await
        .unwrap();
    let last = store
        .list_runs(&alice.id, &books.id, Page::new(3, 2))
        .await
        .unwrap();
    assert_eq!((first.total_count, last.total_count), (5, 5));
    let listed: Vec<&str> = first.items.iter().map(|run| run.id.as_str()).collect();
    assert_eq!(listed, [ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(last.items.len(), 1);
    assert_eq!(last.items[0].id, ids[0]);
    let latest = store
        .latest_run(&alice.id, &books.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.id, ids[4]);
}

both_backends!(cancelling_a_queued_run_ends_it_at_once);
async fn cancelling_a_queued_run_ends_it_at_once(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    let ids = enqueue(&store, &books, 5, 1).await;
    assert_eq!(
        store.request_cancel(&alice.id, &ids[0]).await.unwrap(),
        CancelOutcome::Cancelled
    );
    let run = store.find_run(&alice.id, &ids[0]).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Cancelled);
    assert_eq!(run.reason.as_deref(), Some("cancelled_by_user"));
    assert!(run.finished_at_ms.is_some());
    assert!(
        store
            .claim_next_run("w1", LEASE, T0)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.request_cancel(&alice.id, &ids[0]).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
}

both_backends!(cancelling_a_running_run_asks_its_worker_through_the_lease);
async fn cancelling_a_running_run_asks_its_worker_through_the_lease(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 1).await;
    let run = store
        .claim_next_run("w1", LEASE, T0)
        .await
        .unwrap()
        .unwrap();
    let progress = Progress::default();
    assert_eq!(
        store
            .renew_lease(&run.id, "w1", LEASE, &progress, T0 + 1)
            .await
            .unwrap(),
        LeaseStatus::Held {
            cancel_requested: false
        }
    );
    assert_eq!(
        store.request_cancel(&alice.id, &run.id).await.unwrap(),
        CancelOutcome::CancelRequested
    );
    assert_eq!(
        store
            .renew_lease(&run.id, "w1", LEASE, &progress, T0 + 2)
            .await
            .unwrap(),
        LeaseStatus::Held {
            cancel_requested: true
        }
    );
    assert!(
        store
            .finish_run(
                &run.id,
                "w1",
                RunState::Cancelled,
                "cancelled_by_user",
                None,
                &progress,
                T0 + 3
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.request_cancel(&alice.id, &run.id).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
}

both_backends!(cancelling_an_unknown_or_foreign_run_is_not_found);
async fn cancelling_an_unknown_or_foreign_run_is_not_found(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let bob = user(&store, "bob@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    let ids = enqueue(&store, &books, 5, 1).await;
    assert_eq!(
        store
            .request_cancel(&alice.id, "no-such-run")
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
    assert_eq!(
        store.request_cancel(&bob.id, &ids[0]).await.unwrap(),
        CancelOutcome::NotFound
    );
    let run = store.find_run(&alice.id, &ids[0]).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Queued);
}
