//! Account deletion with billing: a live subscription is cancelled at the provider first, and a
//! provider that fails to cancel keeps the account. Both backends.

use axum::http::{Method, StatusCode};
use selextract_testkit::FakeLemonSqueezy;
use serde_json::json;

use crate::billing_support::{API_KEY, Billing, Person, SIGNING_SECRET, STARTER, STORE_ID};
use crate::login_support::PASSWORD;
use crate::support::{both_backends, request};

async fn delete_account(billing: &Billing, person: &Person) -> crate::support::TestResponse {
    billing
        .app
        .send(request(
            Method::DELETE,
            "/api/v1/auth/account",
            Some(&person.jwt),
            Some(json!({"password": PASSWORD})),
        ))
        .await
}

fn cancellations(fake: &FakeLemonSqueezy, sub: &str) -> usize {
    let path = format!("/subscriptions/{sub}");
    fake.requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with(&path))
        .count()
}

both_backends!(deleting_an_account_cancels_its_live_subscription_first);
async fn deleting_an_account_cancels_its_live_subscription_first() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let bob = billing.person("bob@example.com").await;
    let carol = billing.person("carol@example.com").await;
    let alices = billing.fake.create_subscription(&alice.id, STARTER);
    let bobs = billing.fake.create_subscription(&bob.id, STARTER);
    for sub in [&alices, &bobs] {
        billing
            .deliver_ok(&billing.fake.subscription_event("subscription_created", sub))
            .await;
    }
    // Bob's is cancelled already: deleting his account asks the provider nothing.
    billing.fake.set_subscription_status(&bobs, "cancelled");
    billing
        .deliver_ok(
            &billing
                .fake
                .subscription_event("subscription_cancelled", &bobs),
        )
        .await;

    let response = delete_account(&billing, &alice).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    assert_eq!(cancellations(&billing.fake, &alices), 1);
    assert_eq!(
        billing.fake.subscription(&alices).unwrap()["status"],
        "cancelled"
    );
    assert!(
        billing
            .app
            .store
            .find_user_by_id(&alice.id)
            .await
            .unwrap()
            .is_none()
    );

    let response = delete_account(&billing, &bob).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    assert_eq!(cancellations(&billing.fake, &bobs), 0);
    // Carol never subscribed: her deletion asks the provider nothing either.
    let before = billing.fake.requests().len();
    let response = delete_account(&billing, &carol).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    assert_eq!(billing.fake.requests().len(), before);
}

both_backends!(a_provider_that_fails_to_cancel_refuses_the_deletion_and_keeps_the_account);
async fn a_provider_that_fails_to_cancel_refuses_the_deletion_and_keeps_the_account() {
    let mut billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, STARTER);
    billing
        .deliver_ok(
            &billing
                .fake
                .subscription_event("subscription_created", &sub),
        )
        .await;
    // The provider goes away (its port closes).
    let replacement = FakeLemonSqueezy::start(API_KEY, SIGNING_SECRET, STORE_ID).await;
    drop(std::mem::replace(&mut billing.fake, replacement));

    let response = delete_account(&billing, &alice).await;
    let body = response.assert_error(StatusCode::BAD_GATEWAY, "billing_provider_error");
    assert!(!body.to_string().contains(API_KEY));
    // Nothing deleted: the user, the subscription, the key and the access token remain.
    assert!(
        billing
            .app
            .store
            .find_user_by_id(&alice.id)
            .await
            .unwrap()
            .is_some()
    );
    let kept = billing
        .app
        .store
        .current_subscription(&alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((kept.status.as_str(), kept.cancelled), ("active", false));
    assert_eq!(billing.plan_of(&alice.id).await, "starter");
    for token in [&alice.key, &alice.jwt] {
        let (status, json) = billing
            .call(Method::GET, "/api/v1/billing/subscription", token, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{json}");
    }
}
