//! Compute units: grants, charges, balances, idempotency.

use std::time::Duration;

use selextract_store::testing::owned_run_unchecked;
use selextract_store::{PageCommit, PageOutcome};

use crate::support::{Backend, T0, both_backends, enqueue, task, test_store, user};

both_backends!(a_grant_is_applied_once_per_idempotency_key);
async fn a_grant_is_applied_once_per_idempotency_key(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let key = format!("grant:{}:2025-01", alice.id);
    assert!(
        store
            .grant_compute_units(&alice.id, 100, &key)
            .await
            .unwrap()
    );
    assert!(
        !store
            .grant_compute_units(&alice.id, 100, &key)
            .await
            .unwrap()
    );
    assert_eq!(store.compute_unit_balance(&alice.id).await.unwrap(), 100);
    let next = format!("grant:{}:2025-02", alice.id);
    assert!(
        store
            .grant_compute_units(&alice.id, 50, &next)
            .await
            .unwrap()
    );
    assert_eq!(store.compute_unit_balance(&alice.id).await.unwrap(), 150);
}

both_backends!(the_balance_is_grants_minus_charges_per_user);
async fn the_balance_is_grants_minus_charges_per_user(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let bob = user(&store, "bob@example.com", 1).await;
    assert_eq!(store.compute_unit_balance(&alice.id).await.unwrap(), 0);
    store
        .grant_compute_units(&alice.id, 100, "grant:a")
        .await
        .unwrap();
    store
        .grant_compute_units(&bob.id, 7, "grant:b")
        .await
        .unwrap();

    let books = task(&store, &alice, "books").await;
    enqueue(&store, &books, 5, 1).await;
    let run = store
        .claim_next_run("w1", Duration::from_secs(30), T0)
        .await
        .unwrap()
        .unwrap();
    for (n, charge) in [(1, 5u64), (2, 5), (3, 1)] {
        store
            .commit_page(PageCommit {
                run_id: run.id.clone(),
                user_id: alice.id.clone(),
                worker_id: "w1".to_owned(),
                page_key: format!("p{n}"),
                url: format!("http://127.0.0.1/{n}"),
                status: Some(200),
                outcome: PageOutcome::Ok,
                records: 1,
                bytes: 10,
                object_key: None,
                charge,
                mode: if charge == 5 { "browser" } else { "http" }.to_owned(),
            })
            .await
            .unwrap();
    }
    assert_eq!(store.compute_unit_balance(&alice.id).await.unwrap(), 89);
    assert_eq!(store.compute_unit_balance(&bob.id).await.unwrap(), 7);
    assert_eq!(store.compute_units_used(&alice.id, 0).await.unwrap(), 11);
    assert_eq!(store.compute_units_used(&bob.id, 0).await.unwrap(), 0);
    assert_eq!(
        store.compute_units_used(&alice.id, i64::MAX).await.unwrap(),
        0
    );
    let modes: Vec<Option<String>> = store
        .ledger_entries_for_run(&owned_run_unchecked(&store, &run.id).await.unwrap().unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.mode)
        .collect();
    assert_eq!(
        modes,
        [
            Some("browser".to_owned()),
            Some("browser".to_owned()),
            Some("http".to_owned())
        ]
    );
}
