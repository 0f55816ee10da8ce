//! E-mailed account tokens: single use, expiry, purpose, withdrawal of older ones, races.

use selextract_store::testing::{Backend, expire_account_tokens_for};
use selextract_store::{AccountTokenPurpose as Purpose, NewAccountToken, Store};

use crate::support::{both_backends, test_store, user};

const HOUR_MS: i64 = 3600 * 1000;

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

async fn issue(
    store: &Store,
    hash: &str,
    purpose: Purpose,
    user_id: Option<&str>,
    email: &str,
) -> selextract_store::AccountToken {
    store
        .create_account_token(&NewAccountToken {
            token_hash: hash,
            purpose,
            user_id,
            email,
            created_by: None,
            expires_at_ms: now() + HOUR_MS,
        })
        .await
        .unwrap()
}

async fn a_token_is_spent_once_and_only_for_its_purpose(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let token = issue(
        &store,
        "h1",
        Purpose::PasswordReset,
        Some(&alice.id),
        "Alice@Example.com",
    )
    .await;
    assert_eq!(token.email, "alice@example.com");
    assert_eq!(token.used_at_ms, None);
    assert!(
        store
            .find_live_account_token("h1", now())
            .await
            .unwrap()
            .is_some()
    );
    // Another purpose does not spend it.
    for other in [
        Purpose::VerifyEmail,
        Purpose::Invitation,
        Purpose::AdminSetup,
    ] {
        assert_eq!(
            store
                .consume_account_token(other, "h1", now())
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        store
            .consume_account_token(Purpose::PasswordReset, "nope", now())
            .await
            .unwrap(),
        None
    );
    let spent = store
        .consume_account_token(Purpose::PasswordReset, "h1", now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spent.user_id.as_deref(), Some(alice.id.as_str()));
    assert_eq!(spent.purpose, Purpose::PasswordReset);
    assert!(spent.used_at_ms.is_some());
    // Replay.
    assert_eq!(
        store
            .consume_account_token(Purpose::PasswordReset, "h1", now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_live_account_token("h1", now()).await.unwrap(),
        None
    );
}
both_backends!(a_token_is_spent_once_and_only_for_its_purpose);

async fn an_expired_token_is_refused(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    issue(
        &store,
        "h1",
        Purpose::VerifyEmail,
        Some(&alice.id),
        "alice@example.com",
    )
    .await;
    // At the expiry instant it is already dead.
    let token = store
        .find_live_account_token("h1", now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .consume_account_token(Purpose::VerifyEmail, "h1", token.expires_at_ms)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        expire_account_tokens_for(&store, "ALICE@example.com")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .consume_account_token(Purpose::VerifyEmail, "h1", now())
            .await
            .unwrap(),
        None
    );
}
both_backends!(an_expired_token_is_refused);

async fn a_new_token_withdraws_the_unused_older_ones(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let bob = user(&store, "bob@example.com", 1).await;
    issue(
        &store,
        "a1",
        Purpose::PasswordReset,
        Some(&alice.id),
        "alice@example.com",
    )
    .await;
    issue(
        &store,
        "b1",
        Purpose::PasswordReset,
        Some(&bob.id),
        "bob@example.com",
    )
    .await;
    issue(
        &store,
        "av",
        Purpose::VerifyEmail,
        Some(&alice.id),
        "alice@example.com",
    )
    .await;
    issue(
        &store,
        "a2",
        Purpose::PasswordReset,
        Some(&alice.id),
        "alice@example.com",
    )
    .await;
    assert_eq!(
        store
            .consume_account_token(Purpose::PasswordReset, "a1", now())
            .await
            .unwrap(),
        None
    );
    // Bob's token and Alice's other purpose are untouched.
    assert!(
        store
            .consume_account_token(Purpose::PasswordReset, "b1", now())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .consume_account_token(Purpose::VerifyEmail, "av", now())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .consume_account_token(Purpose::PasswordReset, "a2", now())
            .await
            .unwrap()
            .is_some()
    );
    // Invitations (no user) are withdrawn by address.
    issue(&store, "i1", Purpose::Invitation, None, "new@example.com").await;
    issue(&store, "i2", Purpose::Invitation, None, "other@example.com").await;
    issue(&store, "i3", Purpose::Invitation, None, "NEW@example.com").await;
    assert_eq!(
        store
            .consume_invitation("i1", "new@example.com", now())
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .find_live_account_token("i2", now())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_live_account_token("i3", now())
            .await
            .unwrap()
            .is_some()
    );
    // Withdrawing all of a purpose.
    issue(
        &store,
        "a3",
        Purpose::PasswordReset,
        Some(&alice.id),
        "alice@example.com",
    )
    .await;
    assert_eq!(
        store
            .withdraw_account_tokens(&alice.id, Purpose::PasswordReset)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .consume_account_token(Purpose::PasswordReset, "a3", now())
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .latest_account_token_at(&alice.id, Purpose::PasswordReset)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .latest_account_token_at(&bob.id, Purpose::AdminSetup)
            .await
            .unwrap(),
        None
    );
}
both_backends!(a_new_token_withdraws_the_unused_older_ones);

async fn an_invitation_is_spent_only_by_its_address(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    issue(&store, "inv", Purpose::Invitation, None, "new@example.com").await;
    assert_eq!(
        store
            .consume_invitation("inv", "eve@example.com", now())
            .await
            .unwrap(),
        None
    );
    // The wrong address left it unspent; the right one (any case) spends it once.
    let spent = store
        .consume_invitation("inv", " New@Example.com ", now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spent.user_id, None);
    assert_eq!(
        store
            .consume_invitation("inv", "new@example.com", now())
            .await
            .unwrap(),
        None
    );
}
both_backends!(an_invitation_is_spent_only_by_its_address);

async fn racing_consumers_spend_a_token_once(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    issue(
        &store,
        "race",
        Purpose::PasswordReset,
        Some(&alice.id),
        "alice@example.com",
    )
    .await;
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .consume_account_token(Purpose::PasswordReset, "race", now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        winners += usize::from(attempt.await.unwrap().is_some());
    }
    assert_eq!(winners, 1);
}
both_backends!(racing_consumers_spend_a_token_once);

async fn verification_marks_only_the_address_it_was_sent_to(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let standing = store.account_standing(&alice.id).await.unwrap().unwrap();
    assert_eq!(standing.email_verified_at_ms, None);
    assert!(
        !store
            .set_email_verified(&alice.id, "old@example.com", 5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_email_verified("no-such-user", "alice@example.com", 5)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_email_verified(&alice.id, "Alice@Example.com", 5)
            .await
            .unwrap()
    );
    // A second verification keeps the first time.
    assert!(
        store
            .set_email_verified(&alice.id, "alice@example.com", 9)
            .await
            .unwrap()
    );
    let standing = store.account_standing(&alice.id).await.unwrap().unwrap();
    assert_eq!(standing.email_verified_at_ms, Some(5));
}
both_backends!(verification_marks_only_the_address_it_was_sent_to);

async fn a_reused_hash_is_a_conflict(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    issue(
        &store,
        "same",
        Purpose::VerifyEmail,
        Some(&alice.id),
        "alice@example.com",
    )
    .await;
    let error = store
        .create_account_token(&NewAccountToken {
            token_hash: "same",
            purpose: Purpose::Invitation,
            user_id: None,
            email: "x@example.com",
            created_by: Some(&alice.id),
            expires_at_ms: now() + HOUR_MS,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, selextract_store::StoreError::Conflict(_)),
        "{error:?}"
    );
}
both_backends!(a_reused_hash_is_a_conflict);
