//! Users and API keys.

use selextract_store::{NewApiKey, NewUser, StoreError};

use crate::support::{Backend, both_backends, task, test_store, user};

both_backends!(emails_are_stored_lower_case_and_found_ignoring_case);
async fn emails_are_stored_lower_case_and_found_ignoring_case(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let created = user(&store, "  Alice@Example.COM ", 2).await;
    assert_eq!(created.email, "alice@example.com");
    let found = store
        .find_user_by_email("ALICE@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(found.max_concurrent_runs, 2);
    assert_eq!(found.password_hash.as_deref(), Some("argon2-hash"));
    assert!(!found.is_admin && !found.disabled);
    assert!(
        store
            .find_user_by_email("bob@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.find_user_by_id("no-such-id").await.unwrap().is_none());
}

both_backends!(a_second_user_with_the_same_email_in_other_case_is_a_conflict);
async fn a_second_user_with_the_same_email_in_other_case_is_a_conflict(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    user(&store, "alice@example.com", 1).await;
    let error = store
        .create_user(NewUser {
            email: "ALICE@example.com".to_owned(),
            password_hash: None,
            is_admin: true,
            plan: "free".to_owned(),
            max_concurrent_runs: 1,
        })
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.count_users().await.unwrap(), 1);
}

both_backends!(set_user_plan_changes_plan_and_cap_of_existing_users_only);
async fn set_user_plan_changes_plan_and_cap_of_existing_users_only(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    assert!(
        store
            .set_user_plan(&alice.id, "professional", 10)
            .await
            .unwrap()
    );
    let found = store.find_user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        (found.plan.as_str(), found.max_concurrent_runs),
        ("professional", 10)
    );
    assert!(!store.set_user_plan("nobody", "free", 1).await.unwrap());
}

both_backends!(password_and_key_hashes_are_never_serialized);
async fn password_and_key_hashes_are_never_serialized(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let key = store
        .insert_api_key(new_key(&alice.id, "pub-1"))
        .await
        .unwrap();
    let user_json = serde_json::to_string(&alice).unwrap();
    let key_json = serde_json::to_string(&key).unwrap();
    assert!(!user_json.contains("argon2-hash"), "{user_json}");
    assert!(!key_json.contains("secret-hash"), "{key_json}");
}

fn new_key(user_id: &str, public_id: &str) -> NewApiKey {
    NewApiKey {
        user_id: user_id.to_owned(),
        public_id: public_id.to_owned(),
        secret_hash: "secret-hash".to_owned(),
        name: "ci".to_owned(),
        scopes: vec!["tasks:read".to_owned(), "tasks:write".to_owned()],
        expires_at_ms: Some(1_800_000_000_000),
    }
}

both_backends!(api_keys_are_found_by_public_id_with_their_scopes);
async fn api_keys_are_found_by_public_id_with_their_scopes(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let key = store
        .insert_api_key(new_key(&alice.id, "pub-1"))
        .await
        .unwrap();
    let found = store
        .find_api_key_by_public_id("pub-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, key.id);
    assert_eq!(found.user_id, alice.id);
    assert_eq!(found.secret_hash, "secret-hash");
    assert_eq!(found.scopes, vec!["tasks:read", "tasks:write"]);
    assert_eq!(found.expires_at_ms, Some(1_800_000_000_000));
    assert_eq!(found.revoked_at_ms, None);
    assert!(
        store
            .find_api_key_by_public_id("pub-2")
            .await
            .unwrap()
            .is_none()
    );

    let duplicate = store
        .insert_api_key(new_key(&alice.id, "pub-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, StoreError::Conflict(_)),
        "{duplicate:?}"
    );
}

both_backends!(a_keys_standing_reports_revocation_expiry_a_disabled_owner_and_a_deleted_task);
async fn a_keys_standing_reports_revocation_expiry_a_disabled_owner_and_a_deleted_task(
    backend: Backend,
) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let bob = user(&store, "bob@example.com", 1).await;
    let key = store
        .insert_api_key(new_key(&alice.id, "pub-1"))
        .await
        .unwrap();
    let alices_task = task(&store, &alice, "mine").await;
    let bobs_task = task(&store, &bob, "his").await;

    let standing = store
        .api_key_standing(&key.id, &alices_task.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(standing.revoked_at_ms, None);
    assert_eq!(standing.expires_at_ms, Some(1_800_000_000_000));
    assert!(!standing.user_disabled);
    assert!(standing.task_exists);
    // Another user's task does not exist for this key.
    let other = store
        .api_key_standing(&key.id, &bobs_task.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!other.task_exists);

    assert!(
        store
            .delete_task(&alice.id, &alices_task.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.set_user_disabled(&alice.id, true).await.unwrap());
    assert!(store.revoke_api_key(&alice.id, &key.id).await.unwrap());
    let standing = store
        .api_key_standing(&key.id, &alices_task.id)
        .await
        .unwrap()
        .unwrap();
    assert!(standing.revoked_at_ms.is_some());
    assert!(standing.user_disabled);
    assert!(!standing.task_exists);
    assert!(
        store
            .api_key_standing("no-such-key", &alices_task.id)
            .await
            .unwrap()
            .is_none()
    );
}

both_backends!(touching_a_key_records_its_last_use);
async fn touching_a_key_records_its_last_use(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let key = store
        .insert_api_key(new_key(&alice.id, "pub-1"))
        .await
        .unwrap();
    store
        .touch_api_key(&key.id, 1_750_000_000_000)
        .await
        .unwrap();
    let found = store
        .find_api_key_by_public_id("pub-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.last_used_at_ms, Some(1_750_000_000_000));
}

both_backends!(a_user_revokes_only_their_own_keys);
async fn a_user_revokes_only_their_own_keys(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let bob = user(&store, "bob@example.com", 1).await;
    let alice_key = store
        .insert_api_key(new_key(&alice.id, "pub-a"))
        .await
        .unwrap();
    store
        .insert_api_key(new_key(&bob.id, "pub-b"))
        .await
        .unwrap();

    assert!(!store.revoke_api_key(&bob.id, &alice_key.id).await.unwrap());
    let still = store
        .find_api_key_by_public_id("pub-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.revoked_at_ms, None);

    assert!(
        store
            .revoke_api_key(&alice.id, &alice_key.id)
            .await
            .unwrap()
    );
    let revoked = store
        .find_api_key_by_public_id("pub-a")
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.revoked_at_ms.is_some());

    let alice_keys = store.list_api_keys(&alice.id).await.unwrap();
    assert_eq!(alice_keys.len(), 1);
    assert_eq!(alice_keys[0].public_id, "pub-a");
    let bob_keys = store.list_api_keys(&bob.id).await.unwrap();
    assert_eq!(bob_keys.len(), 1);
    assert_eq!(bob_keys[0].public_id, "pub-b");
    assert_eq!(bob_keys[0].revoked_at_ms, None);
}
