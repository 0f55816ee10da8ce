//! The operator's user changes: listing, password hashes, the admin flag and disabling,
//! with the guard that keeps one enabled administrator.

use selextract_store::{GuardedChange, NewUser, Store, User};

use crate::support::{Backend, both_backends, test_store, user};

async fn admin(store: &Store, email: &str) -> User {
    store
        .create_user(NewUser {
            email: email.to_owned(),
            password_hash: None,
            is_admin: true,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs: 1,
        })
        .await
        .unwrap()
}

async fn reload(store: &Store, user: &User) -> User {
    store.find_user_by_id(&user.id).await.unwrap().unwrap()
}

both_backends!(list_users_returns_every_user_oldest_first);
async fn list_users_returns_every_user_oldest_first(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    assert!(store.list_users().await.unwrap().is_empty());
    let alice = user(&store, "alice@example.com", 1).await;
    let bob = admin(&store, "bob@example.com").await;
    let carol = user(&store, "carol@example.com", 3).await;
    let listed = store.list_users().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, [&alice.id, &bob.id, &carol.id]);
    assert!(listed[1].is_admin);
    assert_eq!(listed[2].max_concurrent_runs, 3);
}

both_backends!(set_user_password_hash_replaces_and_removes_the_hash_of_existing_users_only);
async fn set_user_password_hash_replaces_and_removes_the_hash_of_existing_users_only(
    backend: Backend,
) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let bob = user(&store, "bob@example.com", 1).await;
    assert!(
        store
            .set_user_password_hash(&alice.id, Some("$argon2id$new"))
            .await
            .unwrap()
    );
    assert_eq!(
        reload(&store, &alice).await.password_hash.as_deref(),
        Some("$argon2id$new")
    );
    assert_eq!(
        reload(&store, &bob).await.password_hash.as_deref(),
        Some("argon2-hash")
    );
    assert!(store.set_user_password_hash(&alice.id, None).await.unwrap());
    assert_eq!(reload(&store, &alice).await.password_hash, None);
    assert!(
        !store
            .set_user_password_hash("no-such-id", Some("x"))
            .await
            .unwrap()
    );
}

both_backends!(promoting_and_demoting_change_the_flag_while_another_admin_is_enabled);
async fn promoting_and_demoting_change_the_flag_while_another_admin_is_enabled(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let root = admin(&store, "root@example.com").await;
    let alice = user(&store, "alice@example.com", 1).await;
    assert_eq!(
        store.set_user_admin(&alice.id, true).await.unwrap(),
        GuardedChange::Changed
    );
    assert!(reload(&store, &alice).await.is_admin);
    assert_eq!(
        store.set_user_admin(&root.id, false).await.unwrap(),
        GuardedChange::Changed
    );
    assert!(!reload(&store, &root).await.is_admin);
    // Demoting a user who is not an admin changes nothing and is not refused.
    assert_eq!(
        store.set_user_admin(&root.id, false).await.unwrap(),
        GuardedChange::Changed
    );
    assert_eq!(
        store.set_user_admin("no-such-id", true).await.unwrap(),
        GuardedChange::NoSuchUser
    );
    assert_eq!(
        store.set_user_admin("no-such-id", false).await.unwrap(),
        GuardedChange::NoSuchUser
    );
}

both_backends!(the_last_enabled_admin_can_be_neither_demoted_nor_disabled);
async fn the_last_enabled_admin_can_be_neither_demoted_nor_disabled(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let root = admin(&store, "root@example.com").await;
    let other = admin(&store, "other@example.com").await;
    // A disabled admin does not count: with `other` disabled, `root` is the last one.
    assert_eq!(
        store
            .disable_user_unless_last_admin(&other.id)
            .await
            .unwrap(),
        GuardedChange::Changed
    );
    assert!(reload(&store, &other).await.disabled);
    assert_eq!(
        store.set_user_admin(&root.id, false).await.unwrap(),
        GuardedChange::LastEnabledAdmin
    );
    assert_eq!(
        store
            .disable_user_unless_last_admin(&root.id)
            .await
            .unwrap(),
        GuardedChange::LastEnabledAdmin
    );
    let unchanged = reload(&store, &root).await;
    assert!(unchanged.is_admin && !unchanged.disabled);
    // The disabled admin may still be demoted: that leaves `root`.
    assert_eq!(
        store.set_user_admin(&other.id, false).await.unwrap(),
        GuardedChange::Changed
    );
    // Plain users can be disabled while `root` stays.
    let alice = user(&store, "alice@example.com", 1).await;
    assert_eq!(
        store
            .disable_user_unless_last_admin(&alice.id)
            .await
            .unwrap(),
        GuardedChange::Changed
    );
    assert_eq!(
        store
            .disable_user_unless_last_admin("no-such-id")
            .await
            .unwrap(),
        GuardedChange::NoSuchUser
    );
}

both_backends!(a_disabled_user_can_be_enabled_again);
async fn a_disabled_user_can_be_enabled_again(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    assert_eq!(
        store
            .disable_user_unless_last_admin(&alice.id)
            .await
            .unwrap(),
        GuardedChange::Changed
    );
    assert!(reload(&store, &alice).await.disabled);
    assert!(store.set_user_disabled(&alice.id, false).await.unwrap());
    assert!(!reload(&store, &alice).await.disabled);
}

both_backends!(every_change_that_takes_a_credential_away_bumps_the_credential_revision);
/// API processes drop their cache of verified keys when this number moves: it must move on
/// every change that takes something away, and concurrent bumps must all count.
async fn every_change_that_takes_a_credential_away_bumps_the_credential_revision(backend: Backend) {
    let (store, db) = test_store(backend).await;
    let first = admin(&store, "root@example.com").await;
    let alice = user(&store, "alice@example.com", 1).await;
    assert_eq!(store.credential_revision().await.unwrap(), 0);

    let key = store
        .insert_api_key(selextract_store::NewApiKey {
            user_id: alice.id.clone(),
            public_id: "pub_credential_test".to_owned(),
            secret_hash: "hash".to_owned(),
            name: "k".to_owned(),
            scopes: vec!["tasks:read".to_owned()],
            expires_at_ms: None,
        })
        .await
        .unwrap();
    assert_eq!(
        store.credential_revision().await.unwrap(),
        0,
        "a new key takes nothing away"
    );

    let revision = async |store: &Store| store.credential_revision().await.unwrap();
    assert!(store.revoke_api_key(&alice.id, &key.id).await.unwrap());
    assert_eq!(revision(&store).await, 1, "after revoking a key");
    assert!(store.set_user_disabled(&alice.id, true).await.unwrap());
    assert_eq!(revision(&store).await, 2, "after disabling a user");
    assert!(store.set_user_plan(&alice.id, "starter", 2).await.unwrap());
    assert_eq!(revision(&store).await, 3, "after a plan change");
    let guarded = store
        .disable_user_unless_last_admin(&alice.id)
        .await
        .unwrap();
    assert_eq!(guarded, GuardedChange::Changed);
    assert_eq!(
        revision(&store).await,
        4,
        "after disabling through the guard"
    );
    let promoted = store.set_user_admin(&alice.id, true).await.unwrap();
    assert_eq!(promoted, GuardedChange::Changed);
    assert_eq!(revision(&store).await, 5, "after a promotion");
    let demoted = store.set_user_admin(&alice.id, false).await.unwrap();
    assert_eq!(demoted, GuardedChange::Changed);
    assert_eq!(revision(&store).await, 6, "after a demotion");
    let expected = 6;

    // Changes that change nothing do not move it.
    assert!(!store.revoke_api_key(&first.id, &key.id).await.unwrap());
    assert!(!store.set_user_disabled("no-such-user", true).await.unwrap());
    assert_eq!(
        store.set_user_admin(&first.id, false).await.unwrap(),
        GuardedChange::LastEnabledAdmin
    );
    assert_eq!(store.credential_revision().await.unwrap(), expected);

    // Another process's store sees the same number, and concurrent bumps all count.
    let other = db.connect().await.unwrap();
    assert_eq!(other.credential_revision().await.unwrap(), expected);
    let mut flips = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let id = alice.id.clone();
        flips.spawn(async move { store.set_user_disabled(&id, i % 4 < 2).await.unwrap() });
    }
    while let Some(changed) = flips.join_next().await {
        assert!(changed.unwrap(), "every flip changes the user's row");
    }
    assert_eq!(store.credential_revision().await.unwrap(), expected + 8);
}
