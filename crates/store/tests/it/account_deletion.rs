//! Account deletion keeps the last enabled administrator, atomically: also against a
//! concurrent deletion of the other administrator.

use std::sync::Arc;

use selextract_store::{AccountDeletion, Store};

use crate::support::{Backend, both_backends, test_store, user};

async fn admin(store: &Store, email: &str) -> String {
    let id = user(store, email, 1).await.id;
    store.set_user_admin(&id, true).await.unwrap();
    id
}

both_backends!(the_last_enabled_administrator_is_not_deleted);
async fn the_last_enabled_administrator_is_not_deleted(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let root = admin(&store, "root@example.com").await;
    let bob = user(&store, "bob@example.com", 1).await.id;
    assert!(store.is_last_enabled_admin(&root).await.unwrap());
    assert!(!store.is_last_enabled_admin(&bob).await.unwrap());
    assert_eq!(
        store.delete_account(&root).await.unwrap(),
        AccountDeletion::LastEnabledAdmin
    );
    assert!(store.find_user_by_id(&root).await.unwrap().is_some());
    // A disabled administrator does not count as the one kept.
    let ghost = admin(&store, "ghost@example.com").await;
    assert_eq!(
        store.disable_user_unless_last_admin(&ghost).await.unwrap(),
        selextract_store::GuardedChange::Changed
    );
    assert_eq!(
        store.delete_account(&root).await.unwrap(),
        AccountDeletion::LastEnabledAdmin
    );
    // Neither does a non-administrator; and the disabled administrator may go.
    assert!(matches!(
        store.delete_account(&ghost).await.unwrap(),
        AccountDeletion::Deleted(_)
    ));
    assert!(matches!(
        store.delete_account(&bob).await.unwrap(),
        AccountDeletion::Deleted(_)
    ));
    assert_eq!(
        store.delete_account("no-such-user").await.unwrap(),
        AccountDeletion::NoSuchUser
    );
    // With a second enabled administrator, the first may go, then the second is the last.
    let second = admin(&store, "second@example.com").await;
    assert!(matches!(
        store.delete_account(&root).await.unwrap(),
        AccountDeletion::Deleted(_)
    ));
    assert!(store.is_last_enabled_admin(&second).await.unwrap());
    assert_eq!(
        store.delete_account(&second).await.unwrap(),
        AccountDeletion::LastEnabledAdmin
    );
}

both_backends!(two_administrators_deleting_themselves_at_once_leave_one);
async fn two_administrators_deleting_themselves_at_once_leave_one(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let store = Arc::new(store);
    for round in 0..5 {
        let a = admin(&store, &format!("a{round}@example.com")).await;
        let b = admin(&store, &format!("b{round}@example.com")).await;
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let store = store.clone();
                let a = a.clone();
                async move { store.delete_account(&a).await.unwrap() }
            }),
            tokio::spawn({
                let store = store.clone();
                let b = b.clone();
                async move { store.delete_account(&b).await.unwrap() }
            }),
        );
        let outcomes = [ra.unwrap(), rb.unwrap()];
        let deleted = outcomes
            .iter()
            .filter(|o| matches!(o, AccountDeletion::Deleted(_)))
            .count();
        assert_eq!(deleted, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes.contains(&AccountDeletion::LastEnabledAdmin),
            "{outcomes:?}"
        );
        let kept = if store.find_user_by_id(&a).await.unwrap().is_some() {
            a
        } else {
            b
        };
        assert!(store.is_last_enabled_admin(&kept).await.unwrap());
        // The unguarded deletion (not the API's) clears the way for the next round's pair.
        assert!(store.delete_user_and_data(&kept).await.unwrap().is_some());
    }
}
