//! Deleting for real: a finished run, a task, an account — the rows go in one transaction,
//! the result objects are queued for a sweep that removes them, the ledger stays
//! (anonymised for a deleted account), and nothing of another user's is touched.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use selextract_store::testing::{
    ledger_entries_of_run_id, page_and_log_rows, queued_object_deletions, rows_naming_user,
};
use selextract_store::{
    LATE_WRITE_GRACE_MS, LogLine, NewApiKey, PageCommit, PageOutcome, Progress, RunDeletion,
    RunState, Store, Task, User,
};

use crate::support::{Backend, T0, both_backends, enqueue, task, test_store, user};

const LEASE: Duration = Duration::from_secs(30);

/// Claims the task's next run as `worker`, commits `pages` charged pages with a log line
/// each, and finishes it as completed at `T0`; returns its id.
async fn finished_run(store: &Store, task: &Task, worker: &str, pages: u64) -> String {
    let run_id = enqueue(store, task, 5, 1).await.remove(0);
    let claimed = store
        .claim_next_run(worker, LEASE, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, run_id, "the test's runs are claimed in order");
    for page in 0..pages {
        let key = format!("p{page}");
        store
            .commit_page(PageCommit {
                run_id: run_id.clone(),
                user_id: task.user_id.clone(),
                worker_id: worker.to_owned(),
                page_key: key.clone(),
                url: format!("http://127.0.0.1/{key}"),
                status: Some(200),
                outcome: PageOutcome::Ok,
                records: 2,
                bytes: 10,
                object_key: Some(format!("runs/{run_id}/pages/{key}.jsonl")),
                charge: 1,
                mode: "http".to_owned(),
            })
            .await
            .unwrap();
        store
            .append_run_logs(
                &run_id,
                &[LogLine {
                    ts_ms: T0,
                    level: "info".to_owned(),
                    message: format!("page {page} ✓ 'quoted' \"; DROP TABLE runs; --"),
                    fields: serde_json::Value::Null,
                }],
            )
            .await
            .unwrap();
    }
    let done = Progress::default();
    assert!(
        store
            .finish_run(&run_id, worker, RunState::Completed, "ok", None, &done, T0)
            .await
            .unwrap()
    );
    run_id
}

/// A user with a grant, a key, a task and one finished run of two pages.
async fn populated_user(store: &Store, email: &str) -> (User, Task, String) {
    let owner = user(store, email, 5).await;
    assert!(
        store
            .grant_compute_units(&owner.id, 100, &format!("grant:{}:2026-12", owner.id))
            .await
            .unwrap()
    );
    store
        .insert_api_key(NewApiKey {
            user_id: owner.id.clone(),
            public_id: format!("pub-{}", owner.id),
            secret_hash: "hash".to_owned(),
            name: "key".to_owned(),
            scopes: vec!["tasks:read".to_owned()],
            expires_at_ms: None,
        })
        .await
        .unwrap();
    let owned_task = task(store, &owner, "books").await;
    let run_id = finished_run(store, &owned_task, "w", 2).await;
    (owner, owned_task, run_id)
}

/// The run ids a [`recording_sweeper`] was asked to remove objects of.
type Seen = Arc<Mutex<Vec<String>>>;

/// A sweep that records which runs' objects it was asked to remove.
fn recording_sweeper() -> (
    Seen,
    impl FnMut(String) -> std::future::Ready<Result<(), String>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    (seen, move |run_id: String| {
        log.lock().unwrap().push(run_id);
        std::future::ready(Ok(()))
    })
}

both_backends!(a_finished_run_is_deleted_with_its_pages_and_logs_and_its_charges_stay);
async fn a_finished_run_is_deleted_with_its_pages_and_logs_and_its_charges_stay(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let (alice, books, run_id) = populated_user(&store, "alice@example.com").await;
    let bob = user(&store, "bob@example.com", 1).await;
    let kept = finished_run(&store, &books, "w", 1).await;
    assert_eq!(page_and_log_rows(&store, &run_id).await.unwrap(), (2, 2));

    // Another user's run is not found, however it is asked for.
    for (user_id, id) in [
        (bob.id.as_str(), run_id.as_str()),
        (alice.id.as_str(), "no-such-run"),
        (alice.id.as_str(), ""),
        (alice.id.as_str(), "' OR 1=1 --"),
    ] {
        assert_eq!(
            store.delete_finished_run(user_id, id).await.unwrap(),
            RunDeletion::NotFound
        );
    }
    assert!(store.find_run(&alice.id, &run_id).await.unwrap().is_some());

    let RunDeletion::Deleted(report) = store.delete_finished_run(&alice.id, &run_id).await.unwrap()
    else {
        panic!("the finished run is deleted")
    };
    assert_eq!(report.run_ids, vec![run_id.clone()]);
    assert!(store.find_run(&alice.id, &run_id).await.unwrap().is_none());
    assert_eq!(page_and_log_rows(&store, &run_id).await.unwrap(), (0, 0));
    // The charges are the accounting record: they outlive the run.
    assert_eq!(
        store.compute_unit_balance(&alice.id).await.unwrap(),
        100 - 3
    );
    // Deleting it again is not found; the other run of the task is untouched.
    assert_eq!(
        store.delete_finished_run(&alice.id, &run_id).await.unwrap(),
        RunDeletion::NotFound
    );
    assert_eq!(page_and_log_rows(&store, &kept).await.unwrap(), (1, 1));

    // Its objects are queued for removal until a sweep removes them.
    assert_eq!(
        queued_object_deletions(&store).await.unwrap(),
        vec![run_id.clone()]
    );
    let (seen, sweeper) = recording_sweeper();
    let now = selextract_now();
    let sweep = store.sweep_result_objects(now, sweeper).await.unwrap();
    assert_eq!(sweep.removed, 1);
    assert_eq!(*seen.lock().unwrap(), vec![run_id.clone()]);
    // Finished long ago (at T0): no late write can come, so one sweep is enough.
    assert!(queued_object_deletions(&store).await.unwrap().is_empty());
}

both_backends!(a_queued_or_running_run_is_not_deleted);
async fn a_queued_or_running_run_is_not_deleted(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    let ids = enqueue(&store, &books, 5, 2).await;
    let running = store.claim_next_run("w", LEASE, T0).await.unwrap().unwrap();
    let queued = ids.iter().find(|id| **id != running.id).unwrap();
    assert_eq!(
        store
            .delete_finished_run(&alice.id, &running.id)
            .await
            .unwrap(),
        RunDeletion::Active(RunState::Running)
    );
    assert_eq!(
        store.delete_finished_run(&alice.id, queued).await.unwrap(),
        RunDeletion::Active(RunState::Queued)
    );
    assert!(queued_object_deletions(&store).await.unwrap().is_empty());
    // Once cancelled, the queued run can go.
    store.request_cancel(&alice.id, queued).await.unwrap();
    assert!(matches!(
        store.delete_finished_run(&alice.id, queued).await.unwrap(),
        RunDeletion::Deleted(_)
    ));
}

both_backends!(a_sweep_keeps_what_it_could_not_remove_and_sweeps_active_runs_again_later);
async fn a_sweep_keeps_what_it_could_not_remove_and_sweeps_active_runs_again_later(
    backend: Backend,
) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 5).await;
    let doomed = task(&store, &alice, "doomed").await;
    let old = finished_run(&store, &doomed, "w", 1).await;
    let running = enqueue(&store, &doomed, 5, 1).await.remove(0);
    store.claim_next_run("w", LEASE, T0).await.unwrap().unwrap();
    let report = store
        .delete_task(&alice.id, &doomed.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.run_ids.len(), 2);
    let now = selextract_now();

    // The object store fails for one run: that entry stays, the other is done.
    let failing = running.clone();
    let sweep = store
        .sweep_result_objects(now, |run_id: String| {
            let outcome = if run_id == failing {
                Err("object store unreachable".to_owned())
            } else {
                Ok(())
            };
            std::future::ready(outcome)
        })
        .await
        .unwrap();
    assert_eq!(sweep.removed, 1);
    assert_eq!(sweep.failed.len(), 1);
    assert_eq!(sweep.failed[0].0, running);
    assert_eq!(
        queued_object_deletions(&store).await.unwrap(),
        vec![running.clone()]
    );

    // The next sweep removes it, and the run that was running stays queued for a second
    // sweep after the grace period (a late page from its worker), not before.
    let (seen, sweeper) = recording_sweeper();
    store.sweep_result_objects(now, sweeper).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![running.clone()]);
    assert_eq!(
        queued_object_deletions(&store).await.unwrap(),
        vec![running.clone()]
    );
    assert_eq!(store.pending_object_deletions(now).await.unwrap(), 0);
    let (seen, sweeper) = recording_sweeper();
    store
        .sweep_result_objects(now + 1000, sweeper)
        .await
        .unwrap();
    assert!(seen.lock().unwrap().is_empty());
    let later = now + LATE_WRITE_GRACE_MS + 1000;
    assert_eq!(store.pending_object_deletions(later).await.unwrap(), 1);
    let (seen, sweeper) = recording_sweeper();
    store.sweep_result_objects(later, sweeper).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![running.clone()]);
    assert!(queued_object_deletions(&store).await.unwrap().is_empty());
    let _ = old;
}

both_backends!(an_account_deletion_removes_every_row_of_the_user_and_anonymises_the_ledger);
async fn an_account_deletion_removes_every_row_of_the_user_and_anonymises_the_ledger(
    backend: Backend,
) {
    let (store, _db) = test_store(backend).await;
    let (alice, _, alice_run) = populated_user(&store, "alice@example.com").await;
    let (bob, bobs_task, bob_run) = populated_user(&store, "bob@example.com").await;
    // A run of Alice's still running when the account goes.
    let alices_second = task(&store, &alice, "second").await;
    let running = enqueue(&store, &alices_second, 5, 1).await.remove(0);
    store
        .claim_next_run("w2", LEASE, T0)
        .await
        .unwrap()
        .unwrap();

    let bob_before = rows_naming_user(&store, &bob.id).await.unwrap();
    let alice_before = rows_naming_user(&store, &alice.id).await.unwrap();
    assert!(alice_before["runs"] == 2 && alice_before["ledger"] == 3);
    let alice_balance = store.compute_unit_balance(&alice.id).await.unwrap();
    let revision = store.credential_revision().await.unwrap();

    let report = store
        .delete_user_and_data(&alice.id)
        .await
        .unwrap()
        .unwrap();
    let mut deleted_runs = report.run_ids.clone();
    deleted_runs.sort();
    let mut expected = vec![alice_run.clone(), running.clone()];
    expected.sort();
    assert_eq!(deleted_runs, expected);
    assert_eq!(report.tasks, 2);
    assert_eq!(report.ledger_entries_anonymised, 3);

    // Every table: nothing names Alice any more.
    let alice_after = rows_naming_user(&store, &alice.id).await.unwrap();
    let leftovers: BTreeMap<_, _> = alice_after.iter().filter(|(_, n)| **n > 0).collect();
    assert!(
        leftovers.is_empty(),
        "rows left for the deleted user: {leftovers:?}"
    );
    assert!(store.find_user_by_id(&alice.id).await.unwrap().is_none());
    assert!(store.find_run_any_user(&running).await.unwrap().is_none());
    assert_eq!(page_and_log_rows(&store, &alice_run).await.unwrap(), (0, 0));
    assert!(store.credential_revision().await.unwrap() > revision);

    // Bob has exactly what he had.
    assert_eq!(rows_naming_user(&store, &bob.id).await.unwrap(), bob_before);
    assert_eq!(page_and_log_rows(&store, &bob_run).await.unwrap(), (2, 2));
    assert!(
        store
            .find_task(&bob.id, &bobs_task.id)
            .await
            .unwrap()
            .is_some()
    );

    // The ledger rows stay, under a value that names nobody, with the same balance; the
    // grant's idempotency key no longer holds Alice's id.
    let anonymised = report.anonymised_as.clone().unwrap();
    assert!(anonymised.starts_with("deleted:"), "{anonymised}");
    assert!(!anonymised.contains(&alice.id));
    assert_eq!(
        store.compute_unit_balance(&anonymised).await.unwrap(),
        alice_balance
    );
    let entries = ledger_entries_of_run_id(&store, &alice_run).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|entry| entry.user_id == anonymised));
    assert!(
        !store
            .grant_compute_units(&anonymised, 100, &format!("grant:{anonymised}:2026-12"))
            .await
            .unwrap(),
        "the anonymised grant keeps its idempotency key, with the id replaced"
    );
    // The worker of the running run lost it; the queue is consistent (Bob can run).
    assert_eq!(
        store
            .renew_lease(&running, "w2", LEASE, &Progress::default(), T0 + 1)
            .await
            .unwrap(),
        selextract_store::LeaseStatus::Lost
    );
    enqueue(&store, &bobs_task, 5, 1).await;
    assert!(
        store
            .claim_next_run("w3", LEASE, T0)
            .await
            .unwrap()
            .is_some()
    );

    // Both deleted runs' objects are queued for removal; deleting again is not found.
    let mut queued = queued_object_deletions(&store).await.unwrap();
    queued.sort();
    assert_eq!(queued, expected);
    assert!(
        store
            .delete_user_and_data(&alice.id)
            .await
            .unwrap()
            .is_none()
    );
    let second = store.delete_user_and_data(&bob.id).await.unwrap().unwrap();
    assert_ne!(second.anonymised_as, report.anonymised_as);
}

/// Now in unix milliseconds, as the server and worker pass it to a sweep.
fn selextract_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}
