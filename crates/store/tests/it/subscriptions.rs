//! Billing state from webhooks: exactly once under concurrent deliveries, newest state wins,
//! the plan follows the newest entitled subscription, upgrades top the month's grant up.

use selextract_store::{
    BillingChange, BillingEvent, BillingOutcome, InvoiceRecord, Plans, Store, SubscriptionRecord,
};

use crate::support::{Backend, both_backends, test_store, user};

const MONTH: &str = "2026-12";

fn plans() -> Plans {
    Plans {
        billing_enabled: true,
        default_plan: "free".to_owned(),
        ..Plans::default()
    }
}

fn subscription(
    id: &str,
    plan: &str,
    status: &str,
    entitled: bool,
    updated: i64,
) -> SubscriptionRecord {
    SubscriptionRecord {
        id: id.to_owned(),
        user_id: String::new(),
        customer_id: Some("9".to_owned()),
        variant_id: "11".to_owned(),
        plan: plan.to_owned(),
        status: status.to_owned(),
        entitled,
        cancelled: false,
        card_brand: None,
        card_last_four: None,
        renews_at_ms: None,
        ends_at_ms: None,
        trial_ends_at_ms: None,
        provider_updated_at_ms: updated,
    }
}

fn event(key: &str, user_id: &str) -> BillingEvent {
    BillingEvent {
        key: key.to_owned(),
        name: "subscription_updated".to_owned(),
        object_id: Some("s1".to_owned()),
        user_hint: Some(user_id.to_owned()),
    }
}

async fn plan_of(store: &Store, user_id: &str) -> String {
    store.find_user_by_id(user_id).await.unwrap().unwrap().plan
}

both_backends!(concurrent_deliveries_of_one_event_apply_it_exactly_once);
async fn concurrent_deliveries_of_one_event_apply_it_exactly_once(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let change = BillingChange::Subscription(subscription("s1", "starter", "active", true, 1_000));
    let plans = plans();
    let deliveries = (0..8).map(|_| {
        let store = store.clone();
        let event = event("same-body-hash", &alice.id);
        let change = change.clone();
        let plans = plans.clone();
        tokio::spawn(async move {
            store
                .apply_billing_event(&event, &change, &plans, MONTH)
                .await
        })
    });
    let mut applied = 0;
    for delivery in results_of(deliveries).await {
        match delivery {
            BillingOutcome::Applied { .. } => applied += 1,
            BillingOutcome::Duplicate => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(store.count_billing_events().await.unwrap(), 1);
    assert_eq!(plan_of(&store, &alice.id).await, "starter");
    assert_eq!(store.compute_unit_balance(&alice.id).await.unwrap(), 1_000);
}

async fn results_of<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<Result<T, selextract_store::StoreError>>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap().unwrap());
    }
    out
}

both_backends!(the_newest_state_wins_and_the_plan_follows_the_newest_entitled_subscription);
async fn the_newest_state_wins_and_the_plan_follows_the_newest_entitled_subscription(
    backend: Backend,
) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let plans = plans();
    let apply = |key: &str, record: SubscriptionRecord| {
        let store = store.clone();
        let event = event(key, &alice.id);
        let plans = plans.clone();
        async move {
            store
                .apply_billing_event(&event, &BillingChange::Subscription(record), &plans, MONTH)
                .await
                .unwrap()
        }
    };
    apply(
        "e2",
        subscription("s1", "professional", "active", true, 2_000),
    )
    .await;
    let stale = apply(
        "e1",
        subscription("s1", "professional", "expired", false, 1_000),
    )
    .await;
    assert_eq!(
        stale,
        BillingOutcome::Stale {
            user_id: alice.id.clone()
        }
    );
    assert_eq!(plan_of(&store, &alice.id).await, "professional");
    assert_eq!(store.compute_unit_balance(&alice.id).await.unwrap(), 5_000);

    // A second, newer subscription on another plan; when the old one expires, the user keeps
    // the newer one's plan rather than falling back to the default.
    apply("e3", subscription("s2", "starter", "active", true, 3_000)).await;
    assert_eq!(plan_of(&store, &alice.id).await, "starter");
    apply(
        "e4",
        subscription("s1", "professional", "expired", false, 4_000),
    )
    .await;
    assert_eq!(plan_of(&store, &alice.id).await, "starter");
    // Downgrades grant nothing more this month.
    assert_eq!(store.compute_unit_balance(&alice.id).await.unwrap(), 5_000);
    apply("e5", subscription("s2", "starter", "expired", false, 5_000)).await;
    assert_eq!(plan_of(&store, &alice.id).await, "free");
    assert_eq!(store.current_subscription(&alice.id).await.unwrap(), None);
    assert_eq!(store.list_subscriptions(&alice.id).await.unwrap().len(), 2);
}

both_backends!(invoices_belong_to_their_subscriptions_owner_whatever_the_hint_says);
async fn invoices_belong_to_their_subscriptions_owner_whatever_the_hint_says(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let bob = user(&store, "bob@example.com", 1).await;
    let plans = plans();
    store
        .apply_billing_event(
            &event("sub", &alice.id),
            &BillingChange::Subscription(subscription("s1", "starter", "active", true, 1_000)),
            &plans,
            MONTH,
        )
        .await
        .unwrap();
    let invoice = InvoiceRecord {
        id: "i1".to_owned(),
        subscription_id: "s1".to_owned(),
        status: "paid".to_owned(),
        billing_reason: Some("initial".to_owned()),
        total: 1900,
        currency: "USD".to_owned(),
        refunded_amount: 0,
        invoice_url: None,
        created_at_ms: 1_000,
        provider_updated_at_ms: 1_000,
    };
    let outcome = store
        .apply_billing_event(
            &event("inv", &bob.id),
            &BillingChange::Invoice(invoice.clone()),
            &plans,
            MONTH,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        BillingOutcome::Applied {
            user_id: alice.id.clone(),
            new_plan: None
        }
    );
    assert_eq!(store.list_invoices(&bob.id, 20, 0).await.unwrap().1, 0);
    let (items, total) = store.list_invoices(&alice.id, 20, 0).await.unwrap();
    assert_eq!((items, total), (vec![invoice.clone()], 1));

    // An invoice of an unknown subscription for a user that does not exist is only logged.
    let orphan = InvoiceRecord {
        id: "i2".to_owned(),
        subscription_id: "s9".to_owned(),
        ..invoice
    };
    let outcome = store
        .apply_billing_event(
            &event("orphan", "no-such-user"),
            &BillingChange::Invoice(orphan),
            &plans,
            MONTH,
        )
        .await
        .unwrap();
    assert_eq!(outcome, BillingOutcome::UnknownUser);
    assert_eq!(store.count_billing_events().await.unwrap(), 3);
}

both_backends!(a_deleted_accounts_billing_rows_are_gone_and_its_events_name_nobody);
async fn a_deleted_accounts_billing_rows_are_gone_and_its_events_name_nobody(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let plans = plans();
    store
        .apply_billing_event(
            &event("sub", &alice.id),
            &BillingChange::Subscription(subscription("s1", "starter", "active", true, 1_000)),
            &plans,
            MONTH,
        )
        .await
        .unwrap();
    store
        .apply_billing_event(
            &event("order", &alice.id),
            &BillingChange::Record {
                outcome: "recorded",
            },
            &plans,
            MONTH,
        )
        .await
        .unwrap();
    store
        .delete_user_and_data(&alice.id)
        .await
        .unwrap()
        .unwrap();
    let rows = selextract_store::testing::rows_naming_user(&store, &alice.id)
        .await
        .unwrap();
    for table in ["subscriptions", "invoices", "billing_events"] {
        assert_eq!(rows.get(table), Some(&0), "{table}: {rows:?}");
    }
    // The provider's events stay, so a replay after the deletion is still a duplicate.
    assert_eq!(store.count_billing_events().await.unwrap(), 2);
    let replay = store
        .apply_billing_event(
            &event("sub", &alice.id),
            &BillingChange::Subscription(subscription("s1", "starter", "active", true, 1_000)),
            &plans,
            MONTH,
        )
        .await
        .unwrap();
    assert_eq!(replay, BillingOutcome::Duplicate);
}
