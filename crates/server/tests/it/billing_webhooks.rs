//! Lemon Squeezy webhooks end to end: deliveries signed by the provider fake to the served
//! webhook route, replays, tampering, ordering and test-mode events. Both backends.

use axum::http::{Method, StatusCode};
use selextract_testkit::FakeLemonSqueezy;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::billing_support::{
    API_KEY, Billing, PROFESSIONAL, SIGNING_SECRET, STARTER, STORE_ID, WEBHOOK, billing_config,
};
use crate::login_support::{PASSWORD, user_with_password};
use crate::support::{TestApp, both_backends};

both_backends!(a_signed_subscription_created_upgrades_once_and_its_replay_changes_nothing);
async fn a_signed_subscription_created_upgrades_once_and_its_replay_changes_nothing() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, STARTER);
    let body = billing
        .fake
        .subscription_event("subscription_created", &sub);

    let receipt = billing.deliver_ok(&body).await;
    assert_eq!(receipt["outcome"], "applied");
    assert_eq!(billing.plan_of(&alice.id).await, "starter");
    let balance = billing
        .app
        .store
        .compute_unit_balance(&alice.id)
        .await
        .unwrap();
    assert_eq!(
        balance, 1_000,
        "the starter plan's month is granted on the upgrade"
    );
    let (status, json) = billing
        .call(
            Method::GET,
            "/api/v1/billing/subscription",
            &alice.key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["plan"], "starter");
    assert_eq!(json["subscription"]["id"], sub.as_str());
    assert_eq!(json["subscription"]["status"], "active");
    assert_eq!(json["subscription"]["card_last_four"], "4242");

    // The same delivery again (a provider retry or a replay): 200, nothing changes.
    let replay = billing.deliver_ok(&body).await;
    assert_eq!(replay["outcome"], "duplicate");
    assert_eq!(billing.events().await, 1);
    assert_eq!(
        billing
            .app
            .store
            .compute_unit_balance(&alice.id)
            .await
            .unwrap(),
        1_000
    );
    assert_eq!(billing.plan_of(&alice.id).await, "starter");
    let audit = billing
        .app
        .store
        .list_audit(&selextract_store::AuditFilter {
            user_id: Some(alice.id.clone()),
            event: Some("billing_subscription_created".to_owned()),
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "one audit entry for one event");
}

both_backends!(a_tampered_body_or_signature_is_refused_and_changes_nothing);
async fn a_tampered_body_or_signature_is_refused_and_changes_nothing() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, PROFESSIONAL);
    let body = billing
        .fake
        .subscription_event("subscription_created", &sub);
    let signature = billing.fake.sign(&body);

    let tampered = body.replace(&PROFESSIONAL.to_string(), &STARTER.to_string());
    // The real signature with its last hex digit changed to a different one (always: a
    // fixed replacement would equal the real digit one time in sixteen).
    let last = if signature.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &signature[..signature.len() - 1]);
    assert_eq!(forged.len(), signature.len());
    assert_ne!(forged, signature);
    let cases: Vec<(&str, Option<&str>)> = vec![
        (&tampered, Some(&signature)),
        (&body, Some(&forged)),
        (&body, None),
        (&body, Some("")),
        (&body, Some("not hex at all")),
    ];
    for (sent, sig) in cases {
        let (status, text) = billing
            .fake
            .send_webhook_signed(&billing.webhook_url, sent, sig)
            .await;
        assert_eq!(status, 401, "{sig:?}: {text}");
    }
    // Signed by someone with another secret.
    let stranger = FakeLemonSqueezy::start(API_KEY, "another-secret", STORE_ID).await;
    let (status, _) = stranger.send_webhook(&billing.webhook_url, &body).await;
    assert_eq!(status, 401);

    assert_eq!(billing.events().await, 0);
    assert_eq!(billing.plan_of(&alice.id).await, "free");
    assert!(
        billing
            .app
            .store
            .list_subscriptions(&alice.id)
            .await
            .unwrap()
            .is_empty()
    );

    // A signed body that is not a readable event is 400 and changes nothing either.
    let (status, _) = billing
        .deliver("{\"meta\":{\"event_name\":\"subscription_created\"}}")
        .await;
    assert_eq!(status, 400);
    assert_eq!(billing.events().await, 0);
}

both_backends!(an_older_event_arriving_after_a_newer_one_does_not_overwrite_it);
async fn an_older_event_arriving_after_a_newer_one_does_not_overwrite_it() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, STARTER);
    let created = billing
        .fake
        .subscription_event("subscription_created", &sub);
    billing.fake.set_subscription_status(&sub, "past_due");
    let updated = billing
        .fake
        .subscription_event("subscription_updated", &sub);

    assert_eq!(billing.deliver_ok(&updated).await["outcome"], "applied");
    assert_eq!(billing.deliver_ok(&created).await["outcome"], "stale");

    let kept = billing
        .app
        .store
        .current_subscription(&alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.status, "past_due", "the newer state wins");
    assert_eq!(
        billing.plan_of(&alice.id).await,
        "starter",
        "past due keeps the plan"
    );
    assert_eq!(billing.events().await, 2, "both deliveries are logged once");
}

both_backends!(expiry_downgrades_to_the_default_plan_and_cancellation_waits_for_it);
async fn expiry_downgrades_to_the_default_plan_and_cancellation_waits_for_it() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, PROFESSIONAL);
    billing
        .deliver_ok(
            &billing
                .fake
                .subscription_event("subscription_created", &sub),
        )
        .await;
    assert_eq!(billing.plan_of(&alice.id).await, "professional");

    billing.fake.set_subscription_status(&sub, "cancelled");
    billing
        .deliver_ok(
            &billing
                .fake
                .subscription_event("subscription_cancelled", &sub),
        )
        .await;
    assert_eq!(
        billing.plan_of(&alice.id).await,
        "professional",
        "paid until ends_at"
    );

    billing.fake.set_subscription_status(&sub, "expired");
    billing
        .deliver_ok(
            &billing
                .fake
                .subscription_event("subscription_expired", &sub),
        )
        .await;
    assert_eq!(billing.plan_of(&alice.id).await, "free");
    let user = billing
        .app
        .store
        .find_user_by_id(&alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.max_concurrent_runs, 1, "the free plan's cap");
    let (_, json) = billing
        .call(
            Method::GET,
            "/api/v1/billing/subscription",
            &alice.key,
            None,
        )
        .await;
    assert_eq!(json["plan"], "free");
    assert_eq!(
        json["subscription"],
        Value::Null,
        "an expired subscription is not current"
    );
}

both_backends!(test_mode_deliveries_and_unknown_variants_change_nothing_on_a_live_store);
async fn test_mode_deliveries_and_unknown_variants_change_nothing_on_a_live_store() {
    let fake = FakeLemonSqueezy::start(API_KEY, SIGNING_SECRET, STORE_ID).await;
    let mut config = billing_config(&fake.api_base(), true);
    config.plans.lemon_squeezy.test_mode = false;
    let app = TestApp::with_config(config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{WEBHOOK}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(selextract_server::serve(
        listener,
        app.state.clone(),
        shutdown.clone(),
    ));
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    app.store.set_user_plan(&alice, "free", 1).await.unwrap();

    // The fake's deliveries are test-mode ones, as a test purchase's would be.
    let sub = fake.create_subscription(&alice, PROFESSIONAL);
    let (status, text) = fake
        .send_webhook(&url, &fake.subscription_event("subscription_created", &sub))
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("ignored_test_mode"), "{text}");
    // A live-mode delivery of a variant this service does not sell.
    let other = fake.create_subscription(&alice, 999);
    let live = fake
        .subscription_event("subscription_created", &other)
        .replace("\"test_mode\":true", "\"test_mode\":false");
    let (status, text) = fake.send_webhook(&url, &live).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("ignored_unknown_variant"), "{text}");

    let user = app.store.find_user_by_id(&alice).await.unwrap().unwrap();
    assert_eq!(user.plan, "free");
    assert!(
        app.store
            .list_subscriptions(&alice)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(app.store.compute_unit_balance(&alice).await.unwrap(), 0);
    assert_eq!(
        app.store.count_billing_events().await.unwrap(),
        2,
        "both are logged"
    );
    shutdown.cancel();
}
