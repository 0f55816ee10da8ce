//! Notifications through the API: the delivery log and redelivery are each user's own, the
//! webhook secret is read and rotated only by whom it should be, and target health shows
//! and re-enables.

use axum::http::{Method, StatusCode};
use selextract_notify::WebhookSecrets;
use selextract_store::{AttemptVerdict, DeliveryAttempt, NewDelivery};
use serde_json::{Value, json};

use crate::login_support::{accounts_app, token_login, user_with_password};
use crate::support::{TestApp, both_backends};

/// A delivery of one run of `task_id` to `target`, failed permanently (404) once: the
/// target's health row says so. Returns the delivery id.
async fn failed_delivery(app: &TestApp, user_id: &str, task_id: &str, target: &str) -> String {
    let task = app
        .store
        .find_task(user_id, task_id)
        .await
        .unwrap()
        .unwrap();
    let run = app
        .store
        .enqueue_run(user_id, task_id, &task.spec, 5, 3)
        .await
        .unwrap();
    app.store.request_cancel(user_id, &run.id).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let delivery = NewDelivery {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_owned(),
        task_id: Some(task_id.to_owned()),
        run_id: Some(run.id.clone()),
        event: "run.completed".to_owned(),
        channel: "webhook".to_owned(),
        target: target.to_owned(),
        payload: json!({"type": "run.completed", "run": {"id": run.id}}),
        next_attempt_at_ms: now,
        give_up_at_ms: now + 60_000,
        created_at_ms: now,
    };
    assert!(
        app.store
            .record_outcome(&run.id, std::slice::from_ref(&delivery), now)
            .await
            .unwrap()
    );
    let claimed = app
        .store
        .claim_due_deliveries("test", now + 1, 60_000, 100)
        .await
        .unwrap();
    let claimed = claimed.iter().find(|d| d.id == delivery.id).unwrap();
    let attempt = DeliveryAttempt {
        attempt: 1,
        started_at_ms: now,
        outcome: "failed".to_owned(),
        status_code: Some(404),
        latency_ms: 7,
        error: Some("the receiver answered 404".to_owned()),
    };
    let recorded = app
        .store
        .record_delivery_attempt(
            claimed,
            "test",
            &attempt,
            AttemptVerdict::Failed { disable_after: 1 },
            now,
        )
        .await
        .unwrap();
    assert!(recorded.recorded);
    delivery.id
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

both_backends!(each_user_reads_and_redelivers_only_their_own_deliveries);
async fn each_user_reads_and_redelivers_only_their_own_deliveries() {
    let app = TestApp::new().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let alices_task = app.task(&alice.key, "books").await;
    let bobs_task = app.task(&bob.key, "films").await;
    let alices = failed_delivery(&app, &alice.id, &alices_task, "https://a.example/hook").await;
    let bobs = failed_delivery(&app, &bob.id, &bobs_task, "https://b.example/hook").await;

    let page = app.get("/api/v1/deliveries", &alice.key).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(ids(&page.json()), std::slice::from_ref(&alices));
    let item = &page.json()["items"][0];
    assert_eq!(item["state"], "failed");
    assert_eq!(item["last_status"], 404);
    assert_eq!(item["last_latency_ms"], 7);
    assert_eq!(item["attempts"], 1);
    let filtered = app
        .get(
            &format!("/api/v1/deliveries?task_id={bobs_task}"),
            &alice.key,
        )
        .await;
    assert!(ids(&filtered.json()).is_empty());
    let delivered = app
        .get("/api/v1/deliveries?state=delivered", &alice.key)
        .await;
    assert!(ids(&delivered.json()).is_empty());
    app.get("/api/v1/deliveries?state=lost", &alice.key)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/deliveries?cursor=nonsense", &alice.key)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let detail = app
        .get(&format!("/api/v1/deliveries/{alices}"), &alice.key)
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    let detail = detail.json();
    assert_eq!(detail["attempt_log"][0]["status_code"], 404);
    assert_eq!(detail["payload"]["type"], "run.completed");

    for (method, path) in [
        (Method::GET, format!("/api/v1/deliveries/{bobs}")),
        (Method::POST, format!("/api/v1/deliveries/{bobs}/redeliver")),
        (
            Method::GET,
            format!("/api/v1/tasks/{bobs_task}/notify/targets"),
        ),
        (
            Method::POST,
            format!("/api/v1/tasks/{bobs_task}/notify/targets/enable"),
        ),
    ] {
        let response = app
            .call(method.clone(), &path, Some(&alice.key), None)
            .await;
        response.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    // Bob's delivery is untouched by Alice's attempts.
    let (bobs_delivery, _) = app
        .store
        .get_delivery(&bob.id, &bobs)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bobs_delivery.state.as_str(), "failed");

    let again = app
        .call(
            Method::POST,
            &format!("/api/v1/deliveries/{alices}/redeliver"),
            Some(&alice.key),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    let again = again.json();
    assert_eq!(again["state"], "pending");
    assert_eq!(again["id"], alices.as_str());
    assert!(again["next_attempt_at"].is_string());
}

both_backends!(a_disabled_target_shows_and_is_re_enabled);
async fn a_disabled_target_shows_and_is_re_enabled() {
    let app = TestApp::new().await;
    let alice = app.user("alice@example.com").await;
    let task = app.task(&alice.key, "books").await;
    failed_delivery(&app, &alice.id, &task, "https://a.example/hook").await;
    let health = app
        .get(&format!("/api/v1/tasks/{task}/notify/targets"), &alice.key)
        .await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text());
    let target = &health.json()["targets"][0];
    assert_eq!(target["disabled"], true);
    assert_eq!(target["consecutive_failures"], 1);
    assert!(target["disabled_reason"].as_str().unwrap().contains("404"));
    app.post(
        &format!("/api/v1/tasks/{task}/notify/targets/enable"),
        &alice.key,
        json!({"channel": "webhook"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let enabled = app
        .post(
            &format!("/api/v1/tasks/{task}/notify/targets/enable"),
            &alice.key,
            json!({"channel": "webhook", "target": "https://a.example/hook"}),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text());
    assert_eq!(enabled.json()["enabled"], 1);
    assert_eq!(enabled.json()["targets"][0]["disabled"], false);
    assert!(
        !app.store
            .is_notify_target_disabled(&task, "webhook", "https://a.example/hook")
            .await
            .unwrap()
    );
}

both_backends!(
    the_webhook_secret_is_read_by_the_person_or_a_keys_write_key_and_rotated_by_the_person
);
async fn the_webhook_secret_is_read_by_the_person_or_a_keys_write_key_and_rotated_by_the_person() {
    let app = accounts_app().await;
    let alice_id = user_with_password(&app, "alice@example.com", "correct horse battery").await;
    let (token, _) = token_login(&app, "alice@example.com", "correct horse battery").await;
    let read_only = app.key_for(&alice_id, &["tasks:read"], None).await;
    let admin_key = app
        .key_for(&alice_id, &["tasks:read", "keys:write"], None)
        .await;
    let bob = app.user("bob@example.com").await;

    let by_token = app.get("/api/v1/account/webhook-secret", &token).await;
    assert_eq!(by_token.status, StatusCode::OK, "{}", by_token.text());
    let first = by_token.json();
    assert_eq!(first["version"], 1);
    let first_secret = first["secret"].as_str().unwrap().to_owned();
    assert!(first_secret.starts_with("whsec_"));
    assert_eq!(
        app.get("/api/v1/account/webhook-secret", &admin_key)
            .await
            .json()["secret"],
        first_secret.as_str()
    );
    app.get("/api/v1/account/webhook-secret", &read_only)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let bobs = app
        .get("/api/v1/account/webhook-secret", &bob.key)
        .await
        .json();
    assert_ne!(bobs["secret"], first_secret.as_str());
    // What the delivery loop signs with is what the API shows.
    let secrets = WebhookSecrets::load(&app.store).await.unwrap();
    assert_eq!(
        secrets
            .current_secret(&app.store, &alice_id)
            .await
            .unwrap()
            .unwrap(),
        first_secret
    );

    app.call(
        Method::POST,
        "/api/v1/account/webhook-secret/rotate",
        Some(&admin_key),
        None,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let rotated = app
        .call(
            Method::POST,
            "/api/v1/account/webhook-secret/rotate",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let rotated = rotated.json();
    assert_eq!(rotated["version"], 2);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, first_secret);
    assert_eq!(
        secrets
            .current_secret(&app.store, &alice_id)
            .await
            .unwrap()
            .unwrap(),
        new_secret
    );
    // A body signed with the new secret does not verify under the old one.
    let body = br#"{"type":"run.completed"}"#;
    let now = chrono::Utc::now().timestamp();
    let header = selextract_notify::sign(new_secret, now, body);
    let tolerance = std::time::Duration::from_secs(300);
    assert!(selextract_notify::verify_signature(new_secret, &header, body, now, tolerance).is_ok());
    assert!(
        selextract_notify::verify_signature(&first_secret, &header, body, now, tolerance).is_err()
    );
    assert_eq!(
        app.get("/api/v1/account/webhook-secret", &token)
            .await
            .json()["secret"],
        new_secret
    );
}
