//! Dashboard sessions: CSRF on every state-changing cookie request, logout (here and
//! everywhere), idle and absolute expiry, a disabled account, hostile cookies, and the
//! proof that an ended session is refused by every API process.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::login_support::{
    Browser, PASSWORD, accounts_app, accounts_config, login, set_cookie, token_login,
    user_with_password,
};
use crate::support::{TestApp, both_backends, catalogue_spec, send_via};

fn task_body(name: &str) -> serde_json::Value {
    let mut spec = catalogue_spec("http://shop.invalid/catalog");
    spec["name"] = json!(name);
    spec["start"] = json!(false);
    spec
}

async fn task_count(app: &TestApp, key: &str) -> u64 {
    app.get("/api/v1/tasks", key).await.json()["total_count"]
        .as_u64()
        .unwrap()
}

both_backends!(a_cookie_request_without_the_csrf_token_changes_nothing);
async fn a_cookie_request_without_the_csrf_token_changes_nothing() {
    let app = accounts_app().await;
    let id = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let key = app.key_for(&id, &["tasks:read", "tasks:write"], None).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    let task_id = app.task(&key, "Kept").await;

    // Reading needs no token.
    let listed = app
        .send(browser.request(Method::GET, "/api/v1/tasks", None, false))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());

    // Every state-changing method without the token, or with a wrong one, is refused.
    let wrong = Browser {
        session: browser.session.clone(),
        csrf: format!("{}x", browser.csrf),
    };
    let other_session = login(&app, "alice@example.com", PASSWORD).await;
    let borrowed = Browser {
        session: browser.session.clone(),
        csrf: other_session.csrf.clone(),
    };
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/tasks".to_owned(),
            Some(task_body("Forged")),
        ),
        (
            Method::PUT,
            format!("/api/v1/tasks/{task_id}"),
            Some(task_body("Forged")),
        ),
        (Method::DELETE, format!("/api/v1/tasks/{task_id}"), None),
        (
            Method::POST,
            "/api/v1/api-keys".to_owned(),
            Some(json!({"name": "forged", "scopes": ["tasks:read"]})),
        ),
        (Method::POST, "/api/v1/auth/logout".to_owned(), None),
    ] {
        let without = app
            .send(browser.request(method.clone(), &path, body.clone(), false))
            .await;
        without.assert_error(StatusCode::FORBIDDEN, "csrf_failed");
        for forged in [&wrong, &borrowed] {
            let response = app
                .send(forged.request(method.clone(), &path, body.clone(), true))
                .await;
            response.assert_error(StatusCode::FORBIDDEN, "csrf_failed");
        }
    }
    assert_eq!(task_count(&app, &key).await, 1);
    let task = app.get(&format!("/api/v1/tasks/{task_id}"), &key).await;
    assert_eq!(task.json()["name"], "Kept");
    let keys = browser
        .send(&app, Method::GET, "/api/v1/api-keys", None)
        .await;
    assert_eq!(keys.json()["total_count"], 1, "{}", keys.text());
    // Still logged in: the refused logout did nothing.
    assert_eq!(
        browser
            .send(&app, Method::GET, "/api/v1/auth/me", None)
            .await
            .status,
        StatusCode::OK
    );

    // With the token the same requests work; an API key needs none.
    let created = browser
        .send(&app, Method::POST, "/api/v1/tasks", Some(task_body("Mine")))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let by_key = app.post("/api/v1/tasks", &key, task_body("By key")).await;
    assert_eq!(by_key.status, StatusCode::CREATED, "{}", by_key.text());
    assert_eq!(task_count(&app, &key).await, 3);
}

both_backends!(logout_ends_the_session_and_clears_the_cookies);
async fn logout_ends_the_session_and_clears_the_cookies() {
    let app = accounts_app().await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    let other = login(&app, "alice@example.com", PASSWORD).await;
    let logout = browser
        .send(&app, Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.text());
    let (value, line) = set_cookie(&logout, "selextract_session").unwrap();
    assert_eq!(value, "");
    assert!(line.contains("Max-Age=0"), "{line}");
    // The old cookie is refused even if the browser kept it; another session goes on.
    browser
        .send(&app, Method::GET, "/api/v1/auth/me", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    browser
        .send(&app, Method::POST, "/api/v1/auth/logout", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        other
            .send(&app, Method::GET, "/api/v1/auth/me", None)
            .await
            .status,
        StatusCode::OK
    );
}

both_backends!(logout_everywhere_ends_every_session_and_token_family);
async fn logout_everywhere_ends_every_session_and_token_family() {
    let app = accounts_app().await;
    let id = user_with_password(&app, "alice@example.com", PASSWORD).await;
    user_with_password(&app, "bob@example.com", PASSWORD).await;
    let first = login(&app, "alice@example.com", PASSWORD).await;
    let second = login(&app, "alice@example.com", PASSWORD).await;
    let (access, refresh_token) = token_login(&app, "alice@example.com", PASSWORD).await;
    let bob = login(&app, "bob@example.com", PASSWORD).await;
    let key = app.key_for(&id, &["tasks:read"], None).await;

    let done = first
        .send(
            &app,
            Method::POST,
            "/api/v1/auth/logout",
            Some(json!({"everywhere": true})),
        )
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    for browser in [&first, &second] {
        browser
            .send(&app, Method::GET, "/api/v1/auth/me", None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    app.get("/api/v1/tasks", &access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    crate::login_support::refresh(&app, &refresh_token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    // API keys are not logins; another user is untouched.
    assert_eq!(app.get("/api/v1/tasks", &key).await.status, StatusCode::OK);
    assert_eq!(
        bob.send(&app, Method::GET, "/api/v1/auth/me", None)
            .await
            .status,
        StatusCode::OK
    );
}

both_backends!(sessions_end_after_the_idle_or_the_absolute_timeout);
async fn sessions_end_after_the_idle_or_the_absolute_timeout() {
    let mut idle = accounts_config();
    idle.auth.session.idle_timeout_seconds = 1;
    let app = TestApp::with_config(idle).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    assert_eq!(
        browser
            .send(&app, Method::GET, "/api/v1/auth/me", None)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    browser
        .send(&app, Method::GET, "/api/v1/auth/me", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    // Used more often than the idle timeout, a session stays alive past it.
    let mut kept = accounts_config();
    kept.auth.session.idle_timeout_seconds = 2;
    let app = TestApp::with_config(kept).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let response = browser
            .send(&app, Method::GET, "/api/v1/auth/me", None)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }

    let mut absolute = accounts_config();
    absolute.auth.session.absolute_timeout_seconds = 1;
    let app = TestApp::with_config(absolute).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let response = crate::login_support::try_login(&app, "alice@example.com", PASSWORD).await;
    let (_, line) = set_cookie(&response, "selextract_session").unwrap();
    assert!(line.contains("Max-Age=1;"), "{line}");
    let browser = crate::login_support::browser_from(&response);
    // Used all the time (well within the idle timeout), it still ends at the absolute one.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = browser
            .send(&app, Method::GET, "/api/v1/auth/me", None)
            .await;
    }
    browser
        .send(&app, Method::GET, "/api/v1/auth/me", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

both_backends!(hostile_session_cookies_are_refused);
async fn hostile_session_cookies_are_refused() {
    let app = accounts_app().await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    let huge = "a".repeat(64 * 1024);
    for cookie in [
        "selextract_session=".to_owned(),
        "selextract_session=nonsense".to_owned(),
        format!("selextract_session={huge}"),
        format!("selextract_session={}'--", &browser.session[..42]),
        format!("selextract_session={}", browser.session.to_uppercase()),
        "selextract_session=ÿÿÿÿ".to_owned(),
        format!("other={}", browser.session),
    ] {
        let request = Request::builder()
            .uri("/api/v1/auth/me")
            .header("cookie", cookie.as_bytes())
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{}: {}",
            &cookie[..cookie.len().min(60)],
            response.text()
        );
    }
    // An explicit Authorization header wins over the cookie.
    let mut request = browser.request(Method::GET, "/api/v1/auth/me", None, false);
    request
        .headers_mut()
        .insert("authorization", "Bearer sk_nope".parse().unwrap());
    assert_eq!(app.send(request).await.status, StatusCode::UNAUTHORIZED);
}

both_backends!(a_disabled_account_loses_its_sessions_and_tokens_at_once);
async fn a_disabled_account_loses_its_sessions_and_tokens_at_once() {
    let app = accounts_app().await;
    let id = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    let (access, _) = token_login(&app, "alice@example.com", PASSWORD).await;
    assert_eq!(
        app.get("/api/v1/tasks", &access).await.status,
        StatusCode::OK
    );
    app.store.set_user_disabled(&id, true).await.unwrap();
    browser
        .send(&app, Method::GET, "/api/v1/tasks", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get("/api/v1/tasks", &access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // A disabled user cannot log in again either (after the password check).
    crate::login_support::try_login(&app, "alice@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.store.set_user_disabled(&id, false).await.unwrap();
    assert_eq!(
        browser
            .send(&app, Method::GET, "/api/v1/tasks", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/tasks", &access).await.status,
        StatusCode::OK
    );
}

both_backends!(an_ended_session_and_a_revoked_family_are_refused_by_every_process);
/// Two API processes on one database (on PostgreSQL, as in a deployment behind a load
/// balancer): a session and a JWT both processes have accepted stop working on process B as
/// soon as they end through process A — the session by logout, the JWT's family by
/// replaying a spent refresh token.
async fn an_ended_session_and_a_revoked_family_are_refused_by_every_process() {
    let app = accounts_app().await;
    let other = app.sibling(accounts_config());
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    let (access, refresh_token) = token_login(&app, "alice@example.com", PASSWORD).await;
    let on_other = |request: Request<Body>| {
        let other = other.clone();
        async move { send_via(&other, request).await }
    };
    let me_by_session = || browser.request(Method::GET, "/api/v1/auth/me", None, false);
    let tasks_by_jwt =
        || crate::support::request(Method::GET, "/api/v1/tasks", Some(&access), None);
    assert_eq!(on_other(me_by_session()).await.status, StatusCode::OK);
    assert_eq!(on_other(tasks_by_jwt()).await.status, StatusCode::OK);

    // The CSRF token made by process A is good on process B (one secret per database).
    let created = on_other(browser.request(
        Method::POST,
        "/api/v1/tasks",
        Some(task_body("Via B")),
        true,
    ))
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());

    let rotated = crate::login_support::refresh(&app, &refresh_token).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    crate::login_support::refresh(&app, &refresh_token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    on_other(tasks_by_jwt())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let rotated_access = rotated.json()["access_token"].as_str().unwrap().to_owned();
    on_other(crate::support::request(
        Method::GET,
        "/api/v1/tasks",
        Some(&rotated_access),
        None,
    ))
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let logout = browser
        .send(&app, Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    on_other(me_by_session())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

both_backends!(a_live_stream_ends_when_the_login_that_opened_it_ends);
/// An event stream opened with a session or a JWT is checked like one opened with a key:
/// logging out (or revoking the JWT's family) ends it with `end`.
async fn a_live_stream_ends_when_the_login_that_opened_it_ends() {
    use tower::ServiceExt;

    use crate::events::EventReader;

    let app = accounts_app().await;
    let id = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let key = app.key_for(&id, crate::support::ALL_SCOPES, None).await;
    // A queued run that never starts: without the check the stream would never end.
    let (task_id, _) = app.started_task(&key, "watched").await;
    let path = format!("/api/v1/tasks/{task_id}/events");
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    let (access, _) = token_login(&app, "alice@example.com", PASSWORD).await;
    let open = |request: Request<Body>| {
        let router = app.router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            EventReader::new(response)
        }
    };
    let mut by_session = open(browser.request(Method::GET, &path, None, false)).await;
    let mut by_jwt = open(crate::support::request(
        Method::GET,
        &path,
        Some(&access),
        None,
    ))
    .await;
    assert_eq!(by_session.expect("state").await["state"], "queued");
    assert_eq!(by_jwt.expect("state").await["state"], "queued");

    let logout = browser
        .send(&app, Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(
        by_session.expect("end").await,
        json!({"reason": "key_revoked"})
    );
    assert!(by_session.next().await.is_none());

    let revoked = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&access), None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(by_jwt.expect("end").await, json!({"reason": "key_revoked"}));
    assert!(by_jwt.next().await.is_none());
}

both_backends!(cookies_are_secure_when_the_installation_is_reached_over_https);
/// `auth.session.secure_cookie`: `auto` marks the cookies `Secure` for an `https://` public
/// URL or a request a TLS proxy marked as HTTPS, not for plain HTTP; `always` and `never`
/// override.
async fn cookies_are_secure_when_the_installation_is_reached_over_https() {
    use selextract_accounts::SecureCookie;

    let cases = [
        (SecureCookie::Auto, "", None, false),
        (
            SecureCookie::Auto,
            "",
            Some(("x-forwarded-proto", "https")),
            true,
        ),
        (
            SecureCookie::Auto,
            "",
            Some(("forwarded", "for=10.0.0.1;proto=https")),
            true,
        ),
        (
            SecureCookie::Auto,
            "",
            Some(("x-forwarded-proto", "http")),
            false,
        ),
        (SecureCookie::Auto, "https://scrape.example.com", None, true),
        (SecureCookie::Auto, "http://scrape.example.com", None, false),
        (SecureCookie::Always, "", None, true),
        (
            SecureCookie::Never,
            "https://scrape.example.com",
            Some(("x-forwarded-proto", "https")),
            false,
        ),
    ];
    for (setting, public_url, header, secure) in cases {
        let mut config = accounts_config();
        config.auth.session.secure_cookie = setting;
        config.public_url = public_url.to_owned();
        let app = TestApp::with_config(config).await;
        user_with_password(&app, "alice@example.com", PASSWORD).await;
        let mut request = crate::support::request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "alice@example.com", "password": PASSWORD})),
        );
        if let Some((name, value)) = header {
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let response = app.send(request).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        for cookie in ["selextract_session", "selextract_csrf"] {
            let (_, line) = set_cookie(&response, cookie).unwrap();
            assert_eq!(
                line.ends_with("; Secure") || line.contains("; Secure;"),
                secure,
                "{setting:?} {public_url:?} {header:?}: {line}"
            );
        }
    }
}
