//! Lemon Squeezy billing end to end: the API served on a real port, the test kit's fake of
//! the provider's REST API on another, and webhooks delivered by the fake, signed with its
//! own HMAC, to the served webhook route. Both backends.

use axum::http::{Method, StatusCode};
use selextract_billing::LemonSqueezyConfig;
use selextract_testkit::FakeLemonSqueezy;
use serde_json::{Value, json};

use crate::billing_support::{
    API_KEY, Billing, PROFESSIONAL, SIGNING_SECRET, STARTER, STORE_ID, billing_config,
};
use crate::support::{both_backends, request};

both_backends!(checkout_asks_the_provider_for_the_configured_variant_with_the_callers_user_id);
async fn checkout_asks_the_provider_for_the_configured_variant_with_the_callers_user_id() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;

    let (status, json) = billing
        .call(
            Method::POST,
            "/api/v1/billing/create-checkout",
            &alice.jwt,
            Some(json!({"plan": "professional"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(
        json["url"]
            .as_str()
            .unwrap()
            .starts_with("https://fake-ls.test/checkout/buy/")
    );

    let requests = billing.fake.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/checkouts")
    );
    assert_eq!(
        sent.authorization.as_deref(),
        Some(&*format!("Bearer {API_KEY}"))
    );
    assert_eq!(
        sent.content_type.as_deref(),
        Some("application/vnd.api+json")
    );
    let data = &sent.body["data"];
    assert_eq!(
        data["relationships"]["variant"]["data"]["id"],
        PROFESSIONAL.to_string()
    );
    assert_eq!(
        data["relationships"]["store"]["data"]["id"],
        STORE_ID.to_string()
    );
    assert_eq!(
        data["attributes"]["checkout_data"]["custom"]["user_id"],
        alice.id.as_str()
    );
    assert_eq!(data["attributes"]["test_mode"], true);

    // A plan that is not for sale, and an API key instead of the person, are refused
    // without calling the provider.
    let (status, _) = billing
        .call(
            Method::POST,
            "/api/v1/billing/create-checkout",
            &alice.jwt,
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, json) = billing
        .call(
            Method::POST,
            "/api/v1/billing/create-checkout",
            &alice.key,
            Some(json!({"plan": "starter"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert_eq!(billing.fake.requests().len(), 1);
}

both_backends!(payments_list_invoices_and_refunds_mark_them_refunded);
async fn payments_list_invoices_and_refunds_mark_them_refunded() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, STARTER);
    billing
        .deliver_ok(
            &billing
                .fake
                .subscription_event("subscription_created", &sub),
        )
        .await;
    let invoice = billing.fake.add_invoice(&sub, 1900, "initial");
    let paid = billing
        .fake
        .invoice_event("subscription_payment_success", &invoice);
    assert_eq!(billing.deliver_ok(&paid).await["outcome"], "applied");

    let (status, json) = billing
        .call(Method::GET, "/api/v1/billing/invoices", &alice.key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["total_count"], 1);
    let item = &json["items"][0];
    assert_eq!(item["id"], invoice.as_str());
    assert_eq!(item["subscription_id"], sub.as_str());
    assert_eq!(
        (item["status"].as_str(), item["total"].as_i64()),
        (Some("paid"), Some(1900))
    );
    assert_eq!(item["currency"], "USD");

    billing.fake.refund_invoice(&invoice);
    let refunded = billing
        .fake
        .invoice_event("subscription_payment_refunded", &invoice);
    assert_eq!(billing.deliver_ok(&refunded).await["outcome"], "applied");
    let order = billing.fake.order_refunded_event(&sub);
    assert_eq!(billing.deliver_ok(&order).await["outcome"], "recorded");
    let (_, json) = billing
        .call(Method::GET, "/api/v1/billing/invoices", &alice.key, None)
        .await;
    assert_eq!(json["items"][0]["status"], "refunded");
    assert_eq!(json["items"][0]["refunded_amount"], 1900);
    assert_eq!(billing.events().await, 4);
}

both_backends!(cancel_resume_and_plan_change_go_through_the_provider_and_show_at_once);
async fn cancel_resume_and_plan_change_go_through_the_provider_and_show_at_once() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, STARTER);
    billing
        .deliver_ok(
            &billing
                .fake
                .subscription_event("subscription_created", &sub),
        )
        .await;

    let (status, json) = billing
        .call(
            Method::PUT,
            "/api/v1/billing/subscription",
            &alice.jwt,
            Some(json!({"plan": "professional"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["plan"], "professional");
    assert_eq!(
        billing.fake.subscription(&sub).unwrap()["variant_id"],
        PROFESSIONAL
    );
    assert_eq!(billing.plan_of(&alice.id).await, "professional");
    assert_eq!(
        billing
            .app
            .store
            .compute_unit_balance(&alice.id)
            .await
            .unwrap(),
        5_000,
        "the upgrade tops this month up to the professional grant"
    );

    let (status, json) = billing
        .call(
            Method::POST,
            "/api/v1/billing/subscription/cancel",
            &alice.jwt,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["subscription"]["status"], "cancelled");
    assert_eq!(json["subscription"]["cancelled"], true);
    assert!(json["subscription"]["ends_at"].is_string());
    assert_eq!(json["plan"], "professional");
    assert_eq!(
        billing.fake.subscription(&sub).unwrap()["status"],
        "cancelled"
    );

    let (status, json) = billing
        .call(
            Method::POST,
            "/api/v1/billing/subscription/resume",
            &alice.jwt,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["subscription"]["status"], "active");
    assert_eq!(json["subscription"]["cancelled"], false);
    let (status, _) = billing
        .call(
            Method::POST,
            "/api/v1/billing/subscription/resume",
            &alice.jwt,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "not cancelled any more");

    let (status, json) = billing
        .call(Method::POST, "/api/v1/billing/portal", &alice.jwt, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(
        json["url"]
            .as_str()
            .unwrap()
            .starts_with("https://fake-ls.test/billing")
    );

    let methods: Vec<String> = billing
        .fake
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let path = format!("/v1/subscriptions/{sub}");
    assert_eq!(
        methods,
        vec![
            format!("PATCH {path}"),
            format!("DELETE {path}"),
            format!("PATCH {path}"),
            format!("GET {path}")
        ]
    );
    // API keys read but do not change billing.
    let (status, _) = billing
        .call(
            Method::POST,
            "/api/v1/billing/subscription/cancel",
            &alice.key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

both_backends!(with_billing_off_provider_routes_answer_billing_disabled);
async fn with_billing_off_provider_routes_answer_billing_disabled() {
    let billing = Billing::start_with(false).await;
    let alice = billing.person("alice@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, STARTER);
    let (status, _) = billing
        .deliver(
            &billing
                .fake
                .subscription_event("subscription_created", &sub),
        )
        .await;
    assert_eq!(status, 404);
    for (method, path) in [
        (Method::GET, "/api/v1/billing/subscription"),
        (Method::POST, "/api/v1/billing/create-checkout"),
        (Method::PUT, "/api/v1/billing/subscription"),
        (Method::POST, "/api/v1/billing/subscription/cancel"),
        (Method::POST, "/api/v1/billing/subscription/resume"),
        (Method::POST, "/api/v1/billing/portal"),
        (Method::GET, "/api/v1/billing/invoices"),
    ] {
        let body = (method != Method::GET).then(|| json!({"plan": "starter"}));
        let response = billing
            .app
            .send(request(method.clone(), path, Some(&alice.jwt), body))
            .await;
        response.assert_error(StatusCode::NOT_FOUND, "billing_disabled");
    }
    assert!(billing.fake.requests().is_empty());
    assert_eq!(billing.plan_of(&alice.id).await, "free");

    let (status, json) = billing
        .call(Method::GET, "/api/v1/billing/plans", &alice.key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["provider"], Value::Null);
    assert!(
        json["plans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "starter" && p["purchasable"] == false)
    );
    let (status, json) = billing
        .call(Method::GET, "/api/v1/billing/usage", &alice.key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["plan"], "free");
    assert_eq!(json["used"], 0);
}

both_backends!(another_users_subscription_and_invoices_are_never_visible);
async fn another_users_subscription_and_invoices_are_never_visible() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let bob = billing.person("bob@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, STARTER);
    billing
        .deliver_ok(
            &billing
                .fake
                .subscription_event("subscription_created", &sub),
        )
        .await;
    let invoice = billing.fake.add_invoice(&sub, 1900, "initial");
    billing
        .deliver_ok(
            &billing
                .fake
                .invoice_event("subscription_payment_success", &invoice),
        )
        .await;

    let (_, json) = billing
        .call(Method::GET, "/api/v1/billing/subscription", &bob.key, None)
        .await;
    assert_eq!(json["subscription"], Value::Null);
    assert_eq!(json["plan"], "free");
    let (_, json) = billing
        .call(Method::GET, "/api/v1/billing/invoices", &bob.key, None)
        .await;
    assert_eq!(json["total_count"], 0);
    for (method, path) in [
        (Method::POST, "/api/v1/billing/subscription/cancel"),
        (Method::POST, "/api/v1/billing/portal"),
    ] {
        let (status, _) = billing.call(method, path, &bob.jwt, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // A later event of Alice's subscription claiming Bob in its custom data still belongs
    // to Alice: a known subscription keeps its owner.
    billing.fake.set_subscription_status(&sub, "past_due");
    let forged_owner = billing
        .fake
        .subscription_event("subscription_updated", &sub)
        .replace(&alice.id, &bob.id);
    billing.deliver_ok(&forged_owner).await;
    assert!(
        billing
            .app
            .store
            .list_subscriptions(&bob.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(billing.plan_of(&bob.id).await, "free");
    assert!(billing.fake.requests().is_empty());
}

both_backends!(the_client_lists_a_subscriptions_invoices_from_the_provider);
async fn the_client_lists_a_subscriptions_invoices_from_the_provider() {
    let fake = FakeLemonSqueezy::start(API_KEY, SIGNING_SECRET, STORE_ID).await;
    let config = billing_config(&fake.api_base(), true).plans.lemon_squeezy;
    let client = selextract_billing::LemonSqueezyClient::new(&config).unwrap();
    let sub = fake.create_subscription("u-1", STARTER);
    let other = fake.create_subscription("u-2", STARTER);
    let first = fake.add_invoice(&sub, 1900, "initial");
    let second = fake.add_invoice(&sub, 1900, "renewal");
    fake.add_invoice(&other, 4900, "initial");
    let invoices = client.list_subscription_invoices(&sub).await.unwrap();
    let ids: Vec<&str> = invoices.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str()]);
    assert!(matches!(
        client.get_subscription("999999").await,
        Err(selextract_billing::ClientError::NotFound(_))
    ));
    let wrong_key = LemonSqueezyConfig {
        api_key: Some("wrong".into()),
        ..config
    };
    let refused = selextract_billing::LemonSqueezyClient::new(&wrong_key)
        .unwrap()
        .get_subscription(&sub)
        .await;
    assert!(
        matches!(refused, Err(selextract_billing::ClientError::Status { status, .. }) if status == 401)
    );
}

both_backends!(usage_shows_this_months_grant_charges_and_balance);
async fn usage_shows_this_months_grant_charges_and_balance() {
    let billing = Billing::start().await;
    let alice = billing.person("alice@example.com").await;
    let sub = billing.fake.create_subscription(&alice.id, STARTER);
    billing
        .deliver_ok(
            &billing
                .fake
                .subscription_event("subscription_created", &sub),
        )
        .await;
    assert!(
        billing
            .app
            .store
            .charge_compute_units(&alice.id, 30, "preview:test-1", "http")
            .await
            .unwrap()
    );
    let (status, json) = billing
        .call(Method::GET, "/api/v1/billing/usage", &alice.key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["plan"], "starter");
    assert_eq!(json["monthly_compute_units"], 1_000);
    assert_eq!(
        (&json["granted"], &json["used"], &json["balance"]),
        (&json!(1_000), &json!(30), &json!(970))
    );
    assert!(json["period_start"].as_str().unwrap() < json["period_end"].as_str().unwrap());
}

both_backends!(a_provider_that_fails_is_a_502_and_changes_nothing);
async fn a_provider_that_fails_is_a_502_and_changes_nothing() {
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
    let response = billing
        .app
        .send(request(
            Method::POST,
            "/api/v1/billing/subscription/cancel",
            Some(&alice.jwt),
            None,
        ))
        .await;
    let body = response.assert_error(StatusCode::BAD_GATEWAY, "billing_provider_error");
    assert!(!body.to_string().contains(API_KEY));
    let kept = billing
        .app
        .store
        .current_subscription(&alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((kept.status.as_str(), kept.cancelled), ("active", false));
    assert_eq!(billing.plan_of(&alice.id).await, "starter");
}
