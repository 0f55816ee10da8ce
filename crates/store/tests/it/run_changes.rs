//! Change summaries and feed tokens (`run_changes.rs`): the previous completed run, the
//! summaries of a task, and feed tokens that grant one task's feed until revoked.

use std::time::Duration;

use selextract_store::{Progress, Run, RunState, Store};

use crate::outcome::changes_of;
use crate::support::{Backend, T0, both_backends, enqueue, task, test_store, user};

const LEASE: Duration = Duration::from_secs(60);

/// Claims the next queued run and finishes it in `state` at `at`, with a summary when
/// `summary` is set.
async fn settle(store: &Store, state: RunState, at: i64, summary: bool) -> Run {
    let run = store
        .claim_next_run("w1", LEASE, at)
        .await
        .unwrap()
        .expect("a queued run");
    let mut changes = changes_of(&run);
    changes.created_at_ms = at;
    changes.added = if summary { 1 } else { 0 };
    let written = if summary { Some(&changes) } else { None };
    let done = store
        .finish_run_with_outcome(
            &run.id,
            "w1",
            state,
            "ok",
            None,
            &Progress::default(),
            at,
            written,
            &[],
        )
        .await
        .unwrap();
    assert!(done);
    store.find_run_any_user(&run.id).await.unwrap().unwrap()
}

both_backends!(the_previous_run_is_the_last_completed_one_queued_before);
async fn the_previous_run_is_the_last_completed_one_queued_before(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 5).await;
    let books = task(&store, &alice, "books").await;
    let other = task(&store, &alice, "other").await;

    enqueue(&store, &books, 5, 1).await;
    let first = settle(&store, RunState::Completed, T0 + 1_000, true).await;
    enqueue(&store, &books, 5, 1).await;
    let failed = settle(&store, RunState::Failed, T0 + 2_000, false).await;
    enqueue(&store, &other, 5, 1).await;
    let foreign = settle(&store, RunState::Completed, T0 + 3_000, true).await;
    let current = store
        .enqueue_run(&alice.id, &books.id, &books.spec, 5, 3)
        .await
        .unwrap();
    let previous = store
        .previous_completed_run(&current)
        .await
        .unwrap()
        .expect("a previous run");
    assert_eq!(previous.id, first.id, "not {} or {}", failed.id, foreign.id);
    // The first run has none.
    assert!(
        store
            .previous_completed_run(&first)
            .await
            .unwrap()
            .is_none()
    );
}

both_backends!(a_tasks_summaries_list_newest_first_and_only_for_their_owner);
async fn a_tasks_summaries_list_newest_first_and_only_for_their_owner(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 5).await;
    let bob = user(&store, "bob@example.com", 5).await;
    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 3).await;
    let one = settle(&store, RunState::Completed, T0 + 1_000, true).await;
    let two = settle(&store, RunState::Completed, T0 + 2_000, false).await;
    let three = settle(&store, RunState::Completed, T0 + 3_000, true).await;
    let listed = store
        .list_task_changes(&alice.id, &books.id, false, 10)
        .await
        .unwrap();
    let ids: Vec<_> = listed.iter().map(|c| c.run_id.clone()).collect();
    assert_eq!(
        ids,
        [three.id.clone(), one.id.clone()],
        "{} has no summary",
        two.id
    );
    let limited = store
        .list_task_changes(&alice.id, &books.id, false, 1)
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    assert!(
        store
            .list_task_changes(&bob.id, &books.id, false, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let owned = store.find_run(&alice.id, &three.id).await.unwrap().unwrap();
    let summary = store.run_changes(&owned).await.unwrap().unwrap();
    assert_eq!(summary, {
        let mut c = changes_of(&three);
        c.created_at_ms = T0 + 3_000;
        c.added = 1;
        c
    });
    let owned_two = store.find_run(&alice.id, &two.id).await.unwrap().unwrap();
    assert!(store.run_changes(&owned_two).await.unwrap().is_none());
}

both_backends!(a_feed_token_opens_its_task_only_until_revoked);
async fn a_feed_token_opens_its_task_only_until_revoked(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 5).await;
    let bob = user(&store, "bob@example.com", 5).await;
    let books = task(&store, &alice, "books").await;
    let films = task(&store, &alice, "films").await;
    let token = store
        .create_feed_token(&alice.id, &books.id, "hash-1", T0)
        .await
        .unwrap();
    assert!(
        store
            .create_feed_token(&bob.id, &books.id, "hash-2", T0)
            .await
            .is_err()
    );

    let used = store
        .use_feed_token(&books.id, "hash-1", T0 + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (used.id.as_str(), used.last_used_at_ms),
        (token.id.as_str(), Some(T0 + 10))
    );
    assert!(
        store
            .use_feed_token(&films.id, "hash-1", T0 + 10)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .use_feed_token(&books.id, "hash-x", T0 + 10)
            .await
            .unwrap()
            .is_none()
    );

    assert!(
        !store
            .revoke_feed_token(&bob.id, &books.id, &token.id, T0 + 20)
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_feed_token(&alice.id, &books.id, &token.id, T0 + 20)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_feed_token(&alice.id, &books.id, &token.id, T0 + 30)
            .await
            .unwrap()
    );
    assert!(
        store
            .use_feed_token(&books.id, "hash-1", T0 + 40)
            .await
            .unwrap()
            .is_none()
    );
    let listed = store.list_feed_tokens(&alice.id, &books.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at_ms, Some(T0 + 20));

    // A deleted task's token opens nothing.
    let second = store
        .create_feed_token(&alice.id, &films.id, "hash-3", T0)
        .await
        .unwrap();
    store.delete_task(&alice.id, &films.id).await.unwrap();
    assert!(
        store
            .use_feed_token(&films.id, "hash-3", T0 + 50)
            .await
            .unwrap()
            .is_none(),
        "{}",
        second.id
    );
}
