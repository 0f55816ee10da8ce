//! The account metrics on `/metrics`: registrations and logins by method are counted, and
//! `selextract_active_users` counts enabled users with a key used, a session seen or a
//! refresh token issued in the last 24 hours — each user once.

use axum::http::{Method, StatusCode};
use selextract_store::NewSession;
use serde_json::json;

use crate::login_support::{
    PASSWORD, accounts_app, login, refresh, token_login, user_with_password,
};
use crate::support::{TestApp, both_backends, from_peer, request};

const DAY: i64 = 86_400_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .send(from_peer(
            request(Method::GET, "/metrics", None, None),
            "127.0.0.1:9",
        ))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    response.text()
}

/// The value of the sample whose name and labels are exactly `series`; 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

async fn session(app: &TestApp, user_id: &str, token_hash: &str, expires_at_ms: i64) -> String {
    app.store
        .create_session(&NewSession {
            token_hash,
            user_id,
            expires_at_ms,
            ip: None,
            user_agent: None,
        })
        .await
        .unwrap()
        .id
}

both_backends!(active_users_counts_each_enabled_user_with_recent_use_once);
async fn active_users_counts_each_enabled_user_with_recent_use_once() {
    let app = TestApp::new().await;
    let now = now_ms();
    // A key used just now, through the API.
    let keyed = app.user("keyed@example.com").await;
    assert_eq!(
        app.get("/api/v1/tasks", &keyed.key).await.status,
        StatusCode::OK
    );
    // A key last used two days ago.
    let stale = app.user("stale@example.com").await;
    let stale_key = app.store.list_api_keys(&stale.id).await.unwrap()[0]
        .id
        .clone();
    app.store
        .touch_api_key(&stale_key, now - 2 * DAY)
        .await
        .unwrap();
    // A live session (seen at its creation).
    let browsing = app.user("browsing@example.com").await;
    session(&app, &browsing.id, "hash-live", now + DAY).await;
    // A logged-out session and an expired one.
    let logged_out = app.user("logged-out@example.com").await;
    let ended = session(&app, &logged_out.id, "hash-ended", now + DAY).await;
    assert!(app.store.end_session(&logged_out.id, &ended).await.unwrap());
    let expired = app.user("expired@example.com").await;
    session(&app, &expired.id, "hash-expired", now - 1).await;
    // A refresh token issued now.
    let app_user = app.user("app@example.com").await;
    app.store
        .insert_refresh_token(&app_user.id, "family-1", "hash-refresh", now + DAY)
        .await
        .unwrap();
    // Every kind of use at once: counted once.
    let busy = app.user("busy@example.com").await;
    assert_eq!(
        app.get("/api/v1/tasks", &busy.key).await.status,
        StatusCode::OK
    );
    session(&app, &busy.id, "hash-busy", now + DAY).await;
    app.store
        .insert_refresh_token(&busy.id, "family-2", "hash-busy-refresh", now + DAY)
        .await
        .unwrap();
    // Active, but disabled.
    let disabled = app.user("disabled@example.com").await;
    assert_eq!(
        app.get("/api/v1/tasks", &disabled.key).await.status,
        StatusCode::OK
    );
    session(&app, &disabled.id, "hash-disabled", now + DAY).await;
    app.store
        .set_user_disabled(&disabled.id, true)
        .await
        .unwrap();

    // keyed, browsing, app, busy.
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "selextract_active_users"), 4.0, "{text}");
    // The store's count, with its window: the stale key is within three days.
    let now = now_ms();
    assert_eq!(
        app.store.count_active_users(now - DAY, now).await.unwrap(),
        4
    );
    assert_eq!(
        app.store
            .count_active_users(now - 3 * DAY, now)
            .await
            .unwrap(),
        5
    );
    // Nothing is active in a window that starts in the future.
    assert_eq!(
        app.store.count_active_users(now + DAY, now).await.unwrap(),
        0
    );
}

both_backends!(registrations_and_logins_are_counted_by_method);
async fn registrations_and_logins_are_counted_by_method() {
    let app = accounts_app().await;
    let before = scrape(&app).await;
    let signup = app
        .call(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(json!({"email": "new@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(signup.status, StatusCode::CREATED, "{}", signup.text());
    user_with_password(&app, "old@example.com", PASSWORD).await;
    login(&app, "old@example.com", PASSWORD).await;
    let (_, refresh_token) = token_login(&app, "old@example.com", PASSWORD).await;
    assert_eq!(refresh(&app, &refresh_token).await.status, StatusCode::OK);
    // A failed login is not a login.
    let failed = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "old@example.com", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    let after = scrape(&app).await;

    // Counters are per process and other tests may run in this one (under `cargo test`);
    // under nextest each test has a process and the differences are exact.
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert!(
        delta("selextract_user_registrations_total") >= 1.0,
        "{after}"
    );
    assert!(
        delta("selextract_user_logins_total{method=\"password\"}") >= 2.0,
        "{after}"
    );
    assert!(
        delta("selextract_user_logins_total{method=\"refresh\"}") >= 1.0,
        "{after}"
    );
    if std::env::var_os("NEXTEST").is_some() {
        assert_eq!(delta("selextract_user_registrations_total"), 1.0);
        assert_eq!(
            delta("selextract_user_logins_total{method=\"password\"}"),
            2.0
        );
        assert_eq!(
            delta("selextract_user_logins_total{method=\"refresh\"}"),
            1.0
        );
    }
}
