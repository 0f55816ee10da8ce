//! Committing pages: exactly once, in order, with one charge, only under the lease.

use std::time::Duration;

use selextract_store::testing::owned_run_unchecked;
use selextract_store::{
    CommitOutcome, LedgerKind, PageCommit, PageOutcome, Progress, Run, Store, StoreError,
};

use crate::support::{Backend, T0, both_backends, enqueue, task, test_store, user};

const LEASE: Duration = Duration::from_secs(30);

async fn running_run(store: &Store) -> Run {
    let alice = user(store, "alice@example.com", 1).await;
    let books = task(store, &alice, "books").await;
    enqueue(store, &books, 5, 1).await;
    store
        .claim_next_run("w1", LEASE, T0)
        .await
        .unwrap()
        .unwrap()
}

fn page(run: &Run, key: &str, records: u64) -> PageCommit {
    PageCommit {
        run_id: run.id.clone(),
        user_id: run.user_id.clone(),
        worker_id: "w1".to_owned(),
        page_key: key.to_owned(),
        url: format!("http://127.0.0.1/{key}"),
        status: Some(200),
        outcome: PageOutcome::Ok,
        records,
        bytes: records * 100,
        object_key: Some(format!("runs/{}/{key}.jsonl", run.id)),
        charge: 1,
        mode: "http".to_owned(),
    }
}

both_backends!(committing_the_same_page_twice_changes_nothing_the_second_time);
async fn committing_the_same_page_twice_changes_nothing_the_second_time(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = running_run(&store).await;
    let first = store.commit_page(page(&run, "p1", 10)).await.unwrap();
    assert_eq!(
        first,
        CommitOutcome::Committed {
            seq: 1,
            first_record: 0
        }
    );
    let after_first = store.find_run_any_user(&run.id).await.unwrap().unwrap();

    let again = store.commit_page(page(&run, "p1", 10)).await.unwrap();
    assert_eq!(again, CommitOutcome::AlreadyCommitted);
    let after_second = store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(after_second.progress, after_first.progress);
    assert_eq!(
        after_first.progress,
        Progress {
            pages_done: 1,
            pages_failed: 0,
            pages_known: 0,
            records: 10,
            bytes: 1000,
            compute_units: 1
        }
    );
    let ledger = store
        .ledger_entries_for_run(&owned_run_unchecked(&store, &run.id).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].kind, LedgerKind::Charge);
    assert_eq!(ledger[0].amount, 1);
    assert_eq!(ledger[0].idempotency_key, format!("run:{}:page:p1", run.id));
    assert_eq!(ledger[0].mode.as_deref(), Some("http"));
    assert_eq!(
        store
            .run_pages(&owned_run_unchecked(&store, &run.id).await.unwrap().unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
}

both_backends!(pages_get_commit_order_and_cumulative_record_offsets);
async fn pages_get_commit_order_and_cumulative_record_offsets(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = running_run(&store).await;
    let mut failed = page(&run, "p3", 0);
    failed.outcome = PageOutcome::Failed;
    failed.status = Some(503);
    failed.object_key = None;
    let outcomes = [
        store.commit_page(page(&run, "p1", 10)).await.unwrap(),
        store.commit_page(page(&run, "p2", 5)).await.unwrap(),
        store.commit_page(failed).await.unwrap(),
        store.commit_page(page(&run, "p4", 7)).await.unwrap(),
    ];
    assert_eq!(
        outcomes,
        [
            CommitOutcome::Committed {
                seq: 1,
                first_record: 0
            },
            CommitOutcome::Committed {
                seq: 2,
                first_record: 10
            },
            CommitOutcome::Committed {
                seq: 3,
                first_record: 15
            },
            CommitOutcome::Committed {
                seq: 4,
                first_record: 15
            },
        ]
    );
    let pages = store
        .run_pages(&owned_run_unchecked(&store, &run.id).await.unwrap().unwrap())
        .await
        .unwrap();
    let keys: Vec<&str> = pages.iter().map(|p| p.page_key.as_str()).collect();
    assert_eq!(keys, ["p1", "p2", "p3", "p4"]);
    assert_eq!(
        (
            pages[2].outcome,
            pages[2].status,
            pages[2].object_key.as_deref()
        ),
        (PageOutcome::Failed, Some(503), None)
    );
    assert_eq!(pages[3].first_record, 15);

    let keys = store.committed_page_keys(&run.id).await.unwrap();
    assert_eq!(keys.len(), 4);
    assert!(keys.contains("p3"));

    let found = store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(
        (
            found.progress.pages_done,
            found.progress.pages_failed,
            found.progress.records
        ),
        (3, 1, 22)
    );
    assert_eq!(found.progress.compute_units, 4);

    let keys_of = |pages: Vec<selextract_store::RunPage>| {
        pages.into_iter().map(|p| p.page_key).collect::<Vec<_>>()
    };
    // Records 0..10 are p1, 10..15 p2, 15..22 p4; p3 holds none.
    assert_eq!(
        keys_of(
            store
                .pages_for_record_range(
                    &owned_run_unchecked(&store, &run.id).await.unwrap().unwrap(),
                    0,
                    10
                )
                .await
                .unwrap()
        ),
        ["p1"]
    );
    assert_eq!(
        keys_of(
            store
                .pages_for_record_range(
                    &owned_run_unchecked(&store, &run.id).await.unwrap().unwrap(),
                    9,
                    2
                )
                .await
                .unwrap()
        ),
        ["p1", "p2"]
    );
    assert_eq!(
        keys_of(
            store
                .pages_for_record_range(
                    &owned_run_unchecked(&store, &run.id).await.unwrap().unwrap(),
                    12,
                    100
                )
                .await
                .unwrap()
        ),
        ["p2", "p4"]
    );
    assert_eq!(
        keys_of(
            store
                .pages_for_record_range(
                    &owned_run_unchecked(&store, &run.id).await.unwrap().unwrap(),
                    15,
                    1
                )
                .await
                .unwrap()
        ),
        ["p4"]
    );
    assert!(
        store
            .pages_for_record_range(
                &owned_run_unchecked(&store, &run.id).await.unwrap().unwrap(),
                22,
                10
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .pages_for_record_range(
                &owned_run_unchecked(&store, &run.id).await.unwrap().unwrap(),
                0,
                0
            )
            .await
            .unwrap()
            .is_empty()
    );
}

both_backends!(a_worker_without_the_lease_cannot_commit_a_page);
async fn a_worker_without_the_lease_cannot_commit_a_page(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = running_run(&store).await;
    let mut foreign = page(&run, "p1", 3);
    foreign.worker_id = "w2".to_owned();
    assert_eq!(
        store.commit_page(foreign).await.unwrap(),
        CommitOutcome::LeaseLost
    );

    store.release_run(&run.id, "w1").await.unwrap();
    assert_eq!(
        store.commit_page(page(&run, "p1", 3)).await.unwrap(),
        CommitOutcome::LeaseLost
    );
    assert!(
        store
            .run_pages(&owned_run_unchecked(&store, &run.id).await.unwrap().unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .ledger_entries_for_run(&owned_run_unchecked(&store, &run.id).await.unwrap().unwrap())
            .await
            .unwrap()
            .is_empty()
    );

    let mut missing = page(&run, "p1", 3);
    missing.run_id = "no-such-run".to_owned();
    assert_eq!(
        store.commit_page(missing).await.unwrap(),
        CommitOutcome::LeaseLost
    );
}

both_backends!(a_page_commit_naming_another_user_is_refused);
async fn a_page_commit_naming_another_user_is_refused(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = running_run(&store).await;
    let mut wrong = page(&run, "p1", 3);
    wrong.user_id = "someone-else".to_owned();
    let error = store.commit_page(wrong).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(
        store
            .run_pages(&owned_run_unchecked(&store, &run.id).await.unwrap().unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

both_backends!(a_reclaimed_run_resumes_after_its_committed_pages_without_charging_them_again);
async fn a_reclaimed_run_resumes_after_its_committed_pages_without_charging_them_again(
    backend: Backend,
) {
    let (store, _db) = test_store(backend).await;
    let run = running_run(&store).await;
    store.commit_page(page(&run, "p1", 4)).await.unwrap();
    store.requeue_expired_runs(T0 + 60_000).await.unwrap();
    let again = store
        .claim_next_run("w2", LEASE, T0 + 61_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, run.id);

    let mut p1 = page(&run, "p1", 4);
    p1.worker_id = "w2".to_owned();
    assert_eq!(
        store.commit_page(p1).await.unwrap(),
        CommitOutcome::AlreadyCommitted
    );
    let mut p2 = page(&run, "p2", 6);
    p2.worker_id = "w2".to_owned();
    assert_eq!(
        store.commit_page(p2).await.unwrap(),
        CommitOutcome::Committed {
            seq: 2,
            first_record: 4
        }
    );
    let charges = store
        .ledger_entries_for_run(&owned_run_unchecked(&store, &run.id).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(charges.len(), 2);
    assert_eq!(store.compute_unit_balance(&run.user_id).await.unwrap(), -2);
}

both_backends!(a_free_page_writes_no_ledger_entry);
async fn a_free_page_writes_no_ledger_entry(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = running_run(&store).await;
    let mut free = page(&run, "p1", 2);
    free.charge = 0;
    store.commit_page(free).await.unwrap();
    assert!(
        store
            .ledger_entries_for_run(&owned_run_unchecked(&store, &run.id).await.unwrap().unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    let found = store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(
        (found.progress.records, found.progress.compute_units),
        (2, 0)
    );
}
