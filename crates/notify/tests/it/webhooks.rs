//! Webhooks end to end: retries until the receiver answers, exactly one delivery across
//! two loops, signatures, slow receivers, permanent failures and redelivery.

use std::time::Duration;

use selextract_mail::Mailer;
use selextract_notify::{EventDocument, WebhookSecrets, verify_signature};
use selextract_store::testing::{Backend, test_store};
use selextract_store::{AuditFilter, DeliveryState, RunState};
use serde_json::json;

use crate::support::{
    Behaviour, Loop, Receiver, changes, config, deliveries, deps, finished_run, task, user,
    wait_until,
};

const TOLERANCE: Duration = Duration::from_secs(300);

selextract_store::both_backends!(
    a_receiver_failing_for_a_while_gets_the_event_once_late_and_signed
);
async fn a_receiver_failing_for_a_while_gets_the_event_once_late_and_signed(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let receiver = Receiver::start(Behaviour::FailFirst(3)).await;
    let config = config(&[&receiver]);
    let alice = user(&store, "alice@example.com").await;
    let books = task(
        &store,
        &alice,
        "books",
        json!({"webhook_url": receiver.url("/hook"), "on": ["completed", "changed"]}),
    )
    .await;
    let ids = finished_run(
        &store,
        &books,
        RunState::Completed,
        Some(&changes(&books)),
        &config,
    )
    .await;
    assert_eq!(ids.len(), 2, "run.completed and changes.detected");

    // Two processes' loops: each attempt is made by exactly one of them.
    let first = Loop::start(&store, config.clone(), deps("p1", Mailer::disabled()));
    let second = Loop::start(&store, config.clone(), deps("p2", Mailer::disabled()));
    wait_until("both delivered", || async {
        deliveries(&store, &alice)
            .await
            .iter()
            .all(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    first.stop().await;
    second.stop().await;

    let hits = receiver.hits();
    assert_eq!(hits.len(), 5, "three 500s, then one 200 per delivery");
    assert_eq!(hits.iter().filter(|h| h.answered == Some(200)).count(), 2);
    let secret = WebhookSecrets::load(&store)
        .await
        .unwrap()
        .current_secret(&store, &alice.id)
        .await
        .unwrap()
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    for id in &ids {
        let arrivals: Vec<_> = hits
            .iter()
            .filter(|h| h.header("x-selextract-delivery") == *id)
            .collect();
        let delivered: Vec<_> = arrivals
            .iter()
            .filter(|h| h.answered == Some(200))
            .collect();
        assert_eq!(delivered.len(), 1, "{id} arrived once");
        let hit = delivered[0];
        verify_signature(
            &secret,
            &hit.header("x-selextract-signature"),
            &hit.body,
            now,
            TOLERANCE,
        )
        .unwrap();
        let event: EventDocument = serde_json::from_slice(&hit.body).unwrap();
        assert_eq!(hit.header("x-selextract-event"), event.event_type);
        assert_eq!(event.task.name, "books");
        assert_eq!(event.run.records, 42);
        assert_eq!(
            event.run.url.as_deref(),
            Some(format!("https://sx.example/api/v1/runs/{}", event.run.id).as_str())
        );
        let (delivery, attempts) = store.get_delivery(&alice.id, id).await.unwrap().unwrap();
        assert_eq!(delivery.last_status, Some(200));
        assert_eq!(attempts.last().unwrap().outcome, "delivered");
        assert!(
            attempts[..attempts.len() - 1]
                .iter()
                .all(|a| a.outcome == "retry" && a.status_code == Some(500))
        );
        assert_eq!(attempts.len(), arrivals.len());
        if event.event_type == "changes.detected" {
            let changes = event.changes.unwrap();
            assert_eq!((changes.added, changes.removed, changes.changed), (3, 1, 2));
            assert!(changes.url.unwrap().ends_with("/changes"));
        }
    }
    // Another secret (another user's, or after rotation) does not verify the body.
    let other = WebhookSecrets::load(&store)
        .await
        .unwrap()
        .secret_for(&alice.id, 2);
    let hit = hits.iter().find(|h| h.answered == Some(200)).unwrap();
    assert!(
        verify_signature(
            &other,
            &hit.header("x-selextract-signature"),
            &hit.body,
            now,
            TOLERANCE
        )
        .is_err()
    );
}

selextract_store::both_backends!(a_receiver_that_never_answers_does_not_hold_the_loop);
async fn a_receiver_that_never_answers_does_not_hold_the_loop(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let silent = Receiver::start(Behaviour::Hang).await;
    let good = Receiver::start(Behaviour::Always(204)).await;
    let config = config(&[&silent, &good]);
    let alice = user(&store, "alice@example.com").await;
    let stuck = task(
        &store,
        &alice,
        "stuck",
        json!({"webhook_url": silent.url("/"), "on": ["completed"]}),
    )
    .await;
    let fine = task(
        &store,
        &alice,
        "fine",
        json!({"webhook_url": good.url("/"), "on": ["completed"]}),
    )
    .await;
    let mut stuck_ids = Vec::new();
    for _ in 0..3 {
        stuck_ids.extend(finished_run(&store, &stuck, RunState::Completed, None, &config).await);
    }
    let looping = Loop::start(&store, config.clone(), deps("p1", Mailer::disabled()));
    // While three of the four slots wait on the silent receiver, the others are delivered.
    for _ in 0..6 {
        finished_run(&store, &fine, RunState::Completed, None, &config).await;
    }
    wait_until("the good receiver's six deliveries", || async {
        good.hits().len() >= 6
    })
    .await;
    wait_until(
        "the silent receiver's attempts time out and are recorded",
        || async {
            let mut timed_out = 0;
            for id in &stuck_ids {
                let (_, attempts) = store.get_delivery(&alice.id, id).await.unwrap().unwrap();
                timed_out += usize::from(
                    attempts
                        .iter()
                        .any(|a| a.outcome == "retry" && a.status_code.is_none()),
                );
            }
            timed_out == stuck_ids.len()
        },
    )
    .await;
    looping.stop().await;
    for id in &stuck_ids {
        let (delivery, attempts) = store.get_delivery(&alice.id, id).await.unwrap().unwrap();
        assert_eq!(
            delivery.state,
            DeliveryState::Pending,
            "retried later, not given up"
        );
        assert!(
            attempts[0]
                .error
                .as_deref()
                .unwrap()
                .contains("no answer within 700 ms")
        );
    }
    let delivered = deliveries(&store, &alice)
        .await
        .into_iter()
        .filter(|d| d.state == DeliveryState::Delivered)
        .count();
    assert_eq!(delivered, 6);
}

selextract_store::both_backends!(permanent_refusals_disable_the_target_with_a_notice);
async fn permanent_refusals_disable_the_target_with_a_notice(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let gone = Receiver::start(Behaviour::Always(404)).await;
    let sink = selextract_testkit::SmtpSink::start().await;
    let mut config = config(&[&gone]);
    config.disable_after = 2;
    let alice = user(&store, "alice@example.com").await;
    let books = task(
        &store,
        &alice,
        "books <b>",
        json!({"webhook_url": gone.url("/hook?token=s3cret"), "on": ["completed"]}),
    )
    .await;
    finished_run(&store, &books, RunState::Completed, None, &config).await;
    finished_run(&store, &books, RunState::Completed, None, &config).await;
    let looping = Loop::start(
        &store,
        config.clone(),
        deps("p1", crate::email::sink_mailer(&sink)),
    );
    wait_until("the target is disabled", || async {
        store
            .is_notify_target_disabled(&books.id, "webhook", &gone.url("/hook?token=s3cret"))
            .await
            .unwrap()
    })
    .await;
    let notice = sink
        .wait_for_message_to("alice@example.com", crate::support::GIVE_UP_AFTER)
        .await;
    // Later events to the disabled target are cancelled, never sent.
    let later = finished_run(&store, &books, RunState::Completed, None, &config).await;
    wait_until("the later delivery is cancelled", || async {
        let (delivery, _) = store
            .get_delivery(&alice.id, &later[0])
            .await
            .unwrap()
            .unwrap();
        delivery.state == DeliveryState::Cancelled
    })
    .await;
    looping.stop().await;

    assert_eq!(
        gone.hits().len(),
        2,
        "one request per delivery, no retries of a 404"
    );
    let states: Vec<_> = deliveries(&store, &alice)
        .await
        .iter()
        .map(|d| d.state)
        .collect();
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == DeliveryState::Failed)
            .count(),
        2
    );
    let targets = store
        .notify_targets(&alice.id, &books.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(targets[0].consecutive_failures, 2);
    assert!(
        targets[0]
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("404")
    );
    let audit = store
        .list_audit(&AuditFilter {
            user_id: Some(alice.id.clone()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.event == "notify_target_disabled"));
    assert!(
        notice
            .header("Subject")
            .unwrap()
            .contains("notifications disabled")
    );
    let (text, html) = crate::email::parts(&notice);
    assert!(text.contains(&format!("http://{}/…", gone.addr)), "{text}");
    assert!(
        !text.contains("s3cret") && !html.contains("s3cret"),
        "the URL's secret stays out of mail"
    );
    assert!(html.contains("books &lt;b&gt;") && !html.contains("<b>"));

    // Re-enabled, the target gets new events again.
    store
        .enable_notify_targets(&alice.id, &books.id, None)
        .await
        .unwrap();
    assert!(
        !store
            .is_notify_target_disabled(&books.id, "webhook", &gone.url("/hook?token=s3cret"))
            .await
            .unwrap()
    );
}

selextract_store::both_backends!(a_redelivered_event_arrives_again_with_the_same_delivery_id);
async fn a_redelivered_event_arrives_again_with_the_same_delivery_id(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let receiver = Receiver::start(Behaviour::Always(200)).await;
    let config = config(&[&receiver]);
    let alice = user(&store, "alice@example.com").await;
    let books = task(
        &store,
        &alice,
        "books",
        json!({"webhook_url": receiver.url("/"), "on": ["failed"]}),
    )
    .await;
    let ids = finished_run(&store, &books, RunState::Failed, None, &config).await;
    let deps = deps("p1", Mailer::disabled());
    assert_eq!(
        selextract_notify::deliver_due_once(&store, &config, &deps)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        selextract_notify::deliver_due_once(&store, &config, &deps)
            .await
            .unwrap(),
        0
    );
    let now = chrono::Utc::now().timestamp_millis();
    let again = store
        .redeliver_delivery(&alice.id, &ids[0], now, now + 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.state, DeliveryState::Pending);
    assert_eq!(
        selextract_notify::deliver_due_once(&store, &config, &deps)
            .await
            .unwrap(),
        1
    );
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2);
    assert!(
        hits.iter()
            .all(|h| h.header("x-selextract-delivery") == ids[0])
    );
    assert!(
        hits.iter()
            .all(|h| h.header("x-selextract-event") == "run.failed")
    );
    assert_eq!(hits[0].body, hits[1].body, "the same event document");
    let (delivery, attempts) = store
        .get_delivery(&alice.id, &ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (delivery.state, attempts.len()),
        (DeliveryState::Delivered, 2)
    );
}

selextract_store::both_backends!(slack_gets_one_escaped_text_and_no_signature);
async fn slack_gets_one_escaped_text_and_no_signature(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let slack = Receiver::start(Behaviour::Always(200)).await;
    let config = config(&[&slack]);
    let alice = user(&store, "alice@example.com").await;
    let name = "<script>alert(1)</script>\r\n<!channel> & co";
    let books = task(
        &store,
        &alice,
        name,
        json!({"slack_webhook_url": slack.url("/services/T/B/x"), "on": ["completed", "changed"]}),
    )
    .await;
    finished_run(
        &store,
        &books,
        RunState::Completed,
        Some(&changes(&books)),
        &config,
    )
    .await;
    let deps = deps("p1", Mailer::disabled());
    assert_eq!(
        selextract_notify::deliver_due_once(&store, &config, &deps)
            .await
            .unwrap(),
        2
    );
    let hits = slack.hits();
    assert_eq!(hits.len(), 2);
    for hit in &hits {
        let body = hit.json();
        let object = body.as_object().unwrap();
        assert_eq!(object.keys().collect::<Vec<_>>(), ["text"]);
        let text = object["text"].as_str().unwrap();
        let first_line = text.lines().next().unwrap();
        assert!(
            first_line.contains("&lt;script&gt;alert(1)&lt;/script&gt;  &lt;!channel&gt; &amp; co"),
            "{text}"
        );
        assert!(
            !text.contains('<') || text.contains("<https://sx.example/api/v1/runs/"),
            "{text}"
        );
        assert!(text.contains("42 records"));
        assert!(hit.header("x-selextract-signature").is_empty());
    }
    assert!(hits.iter().any(|h| {
        h.json()["text"]
            .as_str()
            .unwrap()
            .contains("3 added, 1 removed, 2 changed")
    }));
}
