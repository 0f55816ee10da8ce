//! The bounds of live event streams: caps per user and per process (a slot is given back when
//! the client goes away), the backoff and idle end of a stream with nothing to watch, and the
//! end of a stream whose key is revoked or expires, whose owner is disabled or whose task is
//! deleted.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use selextract_server::{EventStreamConfig, ServerConfig};
use serde_json::json;
use tower::ServiceExt;

use crate::events::EventReader;
use crate::support::{ALL_SCOPES, TestApp, both_backends, request};

fn events_path(task_id: &str) -> String {
    format!("/api/v1/tasks/{task_id}/events")
}

/// Opens a stream and keeps its response (and so its slot) alive for the caller.
async fn open(app: &TestApp, task_id: &str, key: &str) -> Response {
    app.router
        .clone()
        .oneshot(request(Method::GET, &events_path(task_id), Some(key), None))
        .await
        .unwrap()
}

async fn open_ok(app: &TestApp, task_id: &str, key: &str) -> Response {
    let response = open(app, task_id, key).await;
    assert_eq!(response.status(), StatusCode::OK);
    response
}

/// The id of the stored key whose full text is `key`.
async fn key_id(app: &TestApp, user_id: &str, key: &str) -> String {
    app.store
        .list_api_keys(user_id)
        .await
        .unwrap()
        .into_iter()
        .find(|stored| key.starts_with(&format!("sk_{}_", stored.public_id)))
        .expect("the key is stored")
        .id
}

both_backends!(
    event_streams_are_capped_per_user_and_per_process_and_a_closed_stream_frees_its_slot
);
async fn event_streams_are_capped_per_user_and_per_process_and_a_closed_stream_frees_its_slot() {
    let config = ServerConfig {
        event_streams: EventStreamConfig {
            max_per_user: 2,
            max_open: 3,
            ..EventStreamConfig::default()
        },
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let alices_task = app.task(&alice.key, "hers").await;
    let bobs_task = app.task(&bob.key, "his").await;

    let _first = open_ok(&app, &alices_task, &alice.key).await;
    let second = open_ok(&app, &alices_task, &alice.key).await;
    // The cap is the user's, not the key's: another key of hers does not get around it.
    let other_key = app.key_for(&alice.id, ALL_SCOPES, None).await;
    let refused = app
        .send(request(
            Method::GET,
            &events_path(&alices_task),
            Some(&other_key),
            None,
        ))
        .await;
    let error = refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_streams");
    assert!(
        error["message"].as_str().unwrap().contains("limit is 2"),
        "{error}"
    );
    assert_eq!(refused.header("retry-after"), Some("10"));

    // Alice's streams do not hold Bob back until the process is full.
    let _bobs = open_ok(&app, &bobs_task, &bob.key).await;
    let full = app
        .send(request(
            Method::GET,
            &events_path(&bobs_task),
            Some(&bob.key),
            None,
        ))
        .await;
    full.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_streams");
    assert_eq!(app.state.open_event_streams(), 3);

    // One of Alice's clients goes away: dropping its response body frees the slot at once.
    drop(second);
    assert_eq!(app.state.open_event_streams(), 2);
    let _again = open_ok(&app, &alices_task, &other_key).await;
    assert_eq!(app.state.open_event_streams(), 3);
}

both_backends!(a_stream_on_a_task_without_a_run_backs_off_and_ends_idle_with_an_end_event);
async fn a_stream_on_a_task_without_a_run_backs_off_and_ends_idle_with_an_end_event() {
    let config = ServerConfig {
        event_streams: EventStreamConfig {
            poll_interval: Duration::from_millis(10),
            max_poll_interval: Duration::from_millis(160),
            idle_timeout: Duration::from_secs(1),
            ..EventStreamConfig::default()
        },
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let user = app.user("a@example.com").await;
    let task_id = app.task(&user.key, "never started").await;

    let mut events = EventReader::new(open_ok(&app, &task_id, &user.key).await);
    let (name, data) = events.next().await.expect("an event before the end");
    assert_eq!((name.as_str(), data), ("end", json!({"reason": "idle"})));
    assert!(events.next().await.is_none(), "the stream ends after `end`");
    assert_eq!(app.state.open_event_streams(), 0);

    // Polling every 10 ms would read the store about 100 times in the idle second. Backing off
    // 10 → 20 → 40 → 80 → 160 ms, the polls fall at 0, 20, 60, 140, 300, 460, 620, 780, 940 and
    // the final one at 1000 ms: at most 10 reads, and fewer on a slower machine (sleeps only
    // ever last longer), so the bound does not depend on the clock.
    let polls = app.state.event_stream_polls();
    assert!((1..=10).contains(&polls), "{polls} polls");
}

both_backends!(revoking_the_key_that_opened_a_stream_ends_it_with_an_end_event);
async fn revoking_the_key_that_opened_a_stream_ends_it_with_an_end_event() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    // A queued run that never starts: without the key check the stream would never end.
    let (task_id, _run_id) = app.started_task(&user.key, "watched").await;
    let watcher = app.key_for(&user.id, &["tasks:read"], None).await;
    let mut events = EventReader::new(open_ok(&app, &task_id, &watcher).await);
    assert_eq!(events.expect("state").await["state"], "queued");
    assert_eq!(events.expect("progress").await["pages_done"], 0);

    // Revoked in the store, as another API process would: this process's key cache still
    // holds the key as valid.
    let watcher_id = key_id(&app, &user.id, &watcher).await;
    assert!(
        app.store
            .revoke_api_key(&user.id, &watcher_id)
            .await
            .unwrap()
    );
    let (name, data) = events.next().await.expect("an end event");
    assert_eq!(
        (name.as_str(), data),
        ("end", json!({"reason": "key_revoked"}))
    );
    assert!(events.next().await.is_none());
    // The stream told this process too: the key is refused now, not 30 s later.
    app.get(&format!("/api/v1/tasks/{task_id}"), &watcher)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

both_backends!(a_stream_ends_when_the_key_that_opened_it_expires);
async fn a_stream_ends_when_the_key_that_opened_it_expires() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let (task_id, _run_id) = app.started_task(&user.key, "watched").await;
    let expires_at = chrono::Utc::now().timestamp_millis() + 5_000;
    let watcher = app
        .key_for(&user.id, &["tasks:read"], Some(expires_at))
        .await;
    let mut events = EventReader::new(open_ok(&app, &task_id, &watcher).await);
    assert_eq!(events.expect("state").await["state"], "queued");
    let end = events.expect("end").await;
    assert_eq!(end, json!({"reason": "key_expired"}));
    assert!(chrono::Utc::now().timestamp_millis() >= expires_at);
    assert!(events.next().await.is_none());
}

both_backends!(a_stream_ends_when_its_owner_is_disabled);
async fn a_stream_ends_when_its_owner_is_disabled() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let (task_id, _run_id) = app.started_task(&user.key, "watched").await;
    let mut events = EventReader::new(open_ok(&app, &task_id, &user.key).await);
    assert_eq!(events.expect("state").await["state"], "queued");
    assert!(app.store.set_user_disabled(&user.id, true).await.unwrap());
    let end = events.expect("end").await;
    assert_eq!(end, json!({"reason": "account_disabled"}));
    assert!(events.next().await.is_none());
}

both_backends!(a_stream_ends_when_its_task_is_deleted);
async fn a_stream_ends_when_its_task_is_deleted() {
    // The nastiest settings: intervals and idle time that would overflow any instant they
    // were added to. The stream must still check its task every second.
    let config = ServerConfig {
        event_streams: EventStreamConfig {
            poll_interval: Duration::MAX,
            max_poll_interval: Duration::MAX,
            idle_timeout: Duration::MAX,
            ..EventStreamConfig::default()
        },
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let user = app.user("a@example.com").await;
    let task_id = app.task(&user.key, "short-lived").await;
    let mut events = EventReader::new(open_ok(&app, &task_id, &user.key).await);
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tasks/{task_id}"),
            Some(&user.key),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    let (name, data) = events.next().await.expect("an end event");
    assert_eq!(
        (name.as_str(), data),
        ("end", json!({"reason": "task_deleted"}))
    );
    assert!(events.next().await.is_none());
}
