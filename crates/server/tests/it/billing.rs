//! Lemon Squeezy billing end to end: the API served on a real port, the test kit's fake of
//! the provider's REST API on another, and webhooks delivered by the fake, signed with its
//! own HMAC, to the served webhook route. Both backends.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use selextract_billing::LemonSqueezyConfig;
use selextract_server::ServerConfig;
use selextract_store::Plans;
use selextract_testkit::FakeLemonSqueezy;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::login_support::{PASSWORD, accounts_config, token_login, user_with_password};
use crate::support::{TestApp, both_backends, request};

const API_KEY: &str = "ls-test-api-key";
const SIGNING_SECRET: &str = "ls-whsec-test";
const STORE_ID: u64 = 7;
const STARTER: u64 = 101;
const PROFESSIONAL: u64 = 102;
const WEBHOOK: &str = "/api/v1/billing/webhooks/lemon-squeezy";

struct Billing {
    app: TestApp,
    fake: FakeLemonSqueezy,
    webhook_url: String,
    shutdown: CancellationToken,
}

impl Drop for Billing {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A person: user id, an API key with every scope, and an access token (JWT).
struct Person {
    id: String,
    key: String,
    jwt: String,
}

fn billing_config(api_base: &str, enabled: bool) -> ServerConfig {
    let mut config = accounts_config();
    config.plans = Plans {
        billing_enabled: true,
        default_plan: "free".to_owned(),
        lemon_squeezy: LemonSqueezyConfig {
            enabled,
            api_key: Some(API_KEY.into()),
            signing_secret: Some(SIGNING_SECRET.into()),
            store_id: STORE_ID,
            api_base: api_base.to_owned(),
            variants: BTreeMap::from([
                ("starter".to_owned(), STARTER),
                ("professional".to_owned(), PROFESSIONAL),
            ]),
            test_mode: true,
        },
        ..Plans::default()
    };
    config.plans.check().unwrap();
    config
}

impl Billing {
    async fn start() -> Billing {
        Billing::start_with(true).await
    }

    async fn start_with(enabled: bool) -> Billing {
        let fake = FakeLemonSqueezy::start(API_KEY, SIGNING_SECRET, STORE_ID).await;
        let app = TestApp::with_config(billing_config(&fake.api_base(), enabled)).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(selextract_server::serve(
            listener,
            app.state.clone(),
            shutdown.clone(),
        ));
        Billing {
            app,
            fake,
            webhook_url: format!("http://{addr}{WEBHOOK}"),
            shutdown,
        }
    }

    async fn person(&self, email: &str) -> Person {
        let id = user_with_password(&self.app, email, PASSWORD).await;
        assert!(self.app.store.set_user_plan(&id, "free", 1).await.unwrap());
        let key = self
            .app
            .key_for(&id, crate::support::ALL_SCOPES, None)
            .await;
        let (jwt, _) = token_login(&self.app, email, PASSWORD).await;
        Person { id, key, jwt }
    }

    async fn plan_of(&self, user_id: &str) -> String {
        self.app
            .store
            .find_user_by_id(user_id)
            .await
            .unwrap()
            .unwrap()
            .plan
    }

    async fn deliver(&self, body: &str) -> (u16, String) {
        self.fake.send_webhook(&self.webhook_url, body).await
    }

    async fn deliver_ok(&self, body: &str) -> Value {
        let (status, text) = self.deliver(body).await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self
            .app
            .send(request(method, path, Some(token), body))
            .await;
        let json = if response.body.is_empty() {
            Value::Null
        } else {
            response.json()
        };
        (response.status, json)
    }

    async fn events(&self) -> u64 {
        self.app.store.count_billing_events().await.unwrap()
    }
}

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
