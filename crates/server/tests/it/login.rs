//! Signing up and logging in with a password: the signup policy, one answer for unknown
//! e-mails and wrong passwords, lockout with backoff, verified e-mail, rehash, the profile,
//! password change and account deletion.

use axum::http::{Method, StatusCode};
use selextract_accounts::password::{hash_password, needs_rehash};
use selextract_accounts::{LockoutConfig, PasswordConfig, SignupPolicy};
use selextract_server::ServerConfig;
use serde_json::json;

use crate::login_support::{
    PASSWORD, accounts_app, accounts_config, browser_from, cheap_password, login, set_cookie,
    token_login, try_login, user_with_password,
};
use crate::support::{TestApp, both_backends};

fn with_signup(policy: SignupPolicy) -> ServerConfig {
    let mut config = accounts_config();
    config.auth.signup = policy;
    config
}

async fn signup(app: &TestApp, body: serde_json::Value) -> crate::support::TestResponse {
    app.call(Method::POST, "/api/v1/auth/signup", None, Some(body))
        .await
}

both_backends!(signup_follows_the_configured_policy);
async fn signup_follows_the_configured_policy() {
    let closed = TestApp::with_config(with_signup(SignupPolicy::Closed)).await;
    signup(
        &closed,
        json!({"email": "a@example.com", "password": PASSWORD}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "signup_closed");
    assert_eq!(closed.store.count_users().await.unwrap(), 0);

    let invite_only = TestApp::with_config(with_signup(SignupPolicy::InviteOnly)).await;
    for body in [
        json!({"email": "a@example.com", "password": PASSWORD}),
        json!({"email": "a@example.com", "password": PASSWORD, "invite_token": ""}),
        json!({"email": "a@example.com", "password": PASSWORD, "invite_token": "forged"}),
    ] {
        signup(&invite_only, body)
            .await
            .assert_error(StatusCode::FORBIDDEN, "signup_closed");
    }
    assert_eq!(invite_only.store.count_users().await.unwrap(), 0);

    let open = TestApp::with_config(with_signup(SignupPolicy::Open)).await;
    let created = signup(
        &open,
        json!({"email": "  Alice@Example.COM ", "password": PASSWORD, "display_name": " Alice ✓ "}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let account = created.json();
    assert_eq!(account["email"], "alice@example.com");
    assert_eq!(account["display_name"], "Alice ✓");
    assert_eq!(account["plan"], "self-hosted");
    assert_eq!(account["is_admin"], false);
    assert_eq!(account["email_verified"], false);
    assert!(account.get("password_hash").is_none());
    // Signing up logs in.
    let browser = browser_from(&created);
    let me = browser
        .send(&open, Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    assert_eq!(me.json()["id"], account["id"]);

    signup(
        &open,
        json!({"email": "ALICE@example.com", "password": PASSWORD}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "email_taken");
    for (body, field) in [
        (
            json!({"email": "not-an-address", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "b@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "b@example.com", "password": "x".repeat(2000)}),
            "password",
        ),
        (
            json!({"email": "b@example.com", "password": PASSWORD, "display_name": "a\u{0}b"}),
            "display_name",
        ),
        (
            json!({"email": "b@example.com", "password": PASSWORD, "display_name": "n".repeat(101)}),
            "display_name",
        ),
        (
            json!({"email": "b@example.com", "password": PASSWORD, "display_name": "\u{202e}nimda"}),
            "display_name",
        ),
        (
            json!({"email": "\u{202e}moc.elpmaxe@b", "password": PASSWORD}),
            "email",
        ),
    ] {
        let refused = signup(&open, body).await;
        let json = refused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(json["details"][0]["field"], field, "{json}");
    }
    assert_eq!(open.store.count_users().await.unwrap(), 1);
}

both_backends!(unknown_emails_and_wrong_passwords_get_the_same_answer);
async fn unknown_emails_and_wrong_passwords_get_the_same_answer() {
    let app = accounts_app().await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let wrong = try_login(&app, "alice@example.com", "wrong password!").await;
    let unknown = try_login(&app, "nobody@example.com", PASSWORD).await;
    let malformed = try_login(&app, "'; DROP TABLE users; --", PASSWORD).await;
    let mut messages = Vec::new();
    for response in [&wrong, &unknown, &malformed] {
        let json = response.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert!(set_cookie(response, "selextract_session").is_none());
        messages.push(json["message"].clone());
    }
    assert_eq!(messages[0], messages[1]);
    assert_eq!(messages[1], messages[2]);

    let ok = try_login(&app, " ALICE@example.com", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["email"], "alice@example.com");
    let (_, session_line) = set_cookie(&ok, "selextract_session").unwrap();
    assert!(session_line.contains("HttpOnly"), "{session_line}");
    assert!(session_line.contains("SameSite=Lax"), "{session_line}");
    assert!(
        !session_line.contains("Secure"),
        "plain HTTP: {session_line}"
    );
    let (_, csrf_line) = set_cookie(&ok, "selextract_csrf").unwrap();
    assert!(!csrf_line.contains("HttpOnly"), "{csrf_line}");

    // Behind a TLS-terminating proxy the cookies are Secure.
    let mut request = crate::support::request(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "alice@example.com", "password": PASSWORD})),
    );
    request
        .headers_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    let tls = app.send(request).await;
    let (_, line) = set_cookie(&tls, "selextract_session").unwrap();
    assert!(line.contains("; Secure"), "{line}");
    let audit = app
        .store
        .list_audit(&selextract_store::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let events: Vec<&str> = audit.iter().map(|entry| entry.event.as_str()).collect();
    assert!(events.contains(&"login_failed"), "{events:?}");
    assert!(events.contains(&"login"), "{events:?}");
}

both_backends!(repeated_failures_lock_the_account_with_backoff_until_the_lock_ends);
async fn repeated_failures_lock_the_account_with_backoff_until_the_lock_ends() {
    let mut config = accounts_config();
    config.auth.lockout = LockoutConfig {
        max_failures: 3,
        base_delay_seconds: 1,
        max_delay_seconds: 60,
    };
    let app = TestApp::with_config(config).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    for _ in 0..2 {
        try_login(&app, "alice@example.com", "wrong password!")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let locked = try_login(&app, "alice@example.com", "wrong password!").await;
    locked.assert_error(StatusCode::TOO_MANY_REQUESTS, "account_locked");
    assert_eq!(locked.header("retry-after"), Some("1"));
    // Even the right password is refused while locked, and does not reset the count.
    try_login(&app, "alice@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "account_locked");
    // An unknown e-mail never locks.
    for _ in 0..5 {
        try_login(&app, "nobody@example.com", "wrong password!")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // After the lock, one more failure locks again for twice as long.
    let again = try_login(&app, "alice@example.com", "wrong password!").await;
    again.assert_error(StatusCode::TOO_MANY_REQUESTS, "account_locked");
    assert_eq!(again.header("retry-after"), Some("2"));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let ok = try_login(&app, "alice@example.com", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    // Success reset the count: the next failure is an ordinary one.
    try_login(&app, "alice@example.com", "wrong password!")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

both_backends!(unverified_emails_are_refused_only_when_required);
async fn unverified_emails_are_refused_only_when_required() {
    let mut config = accounts_config();
    config.auth.require_verified_email = true;
    let app = TestApp::with_config(config).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    try_login(&app, "alice@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::FORBIDDEN, "email_not_verified");
    // A wrong password still says only that.
    try_login(&app, "alice@example.com", "wrong password!")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    let relaxed = accounts_app().await;
    user_with_password(&relaxed, "alice@example.com", PASSWORD).await;
    assert_eq!(
        try_login(&relaxed, "alice@example.com", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

both_backends!(a_hash_made_with_an_old_cost_is_replaced_at_login);
async fn a_hash_made_with_an_old_cost_is_replaced_at_login() {
    let app = accounts_app().await;
    let old_cost = PasswordConfig {
        memory_kib: 32,
        ..cheap_password()
    };
    let id = user_with_password(&app, "alice@example.com", "placeholder password").await;
    let old_hash = hash_password(&old_cost, PASSWORD).unwrap();
    app.store
        .set_user_password_hash(&id, Some(&old_hash))
        .await
        .unwrap();
    login(&app, "alice@example.com", PASSWORD).await;
    let stored = app.store.find_user_by_id(&id).await.unwrap().unwrap();
    let new_hash = stored.password_hash.unwrap();
    assert_ne!(new_hash, old_hash);
    assert!(!needs_rehash(&cheap_password(), &new_hash).unwrap());
    login(&app, "alice@example.com", PASSWORD).await;
}

both_backends!(a_password_change_needs_the_current_one_and_ends_other_logins);
async fn a_password_change_needs_the_current_one_and_ends_other_logins() {
    let app = accounts_app().await;
    let id = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let here = login(&app, "alice@example.com", PASSWORD).await;
    let elsewhere = login(&app, "alice@example.com", PASSWORD).await;
    let (access, _) = token_login(&app, "alice@example.com", PASSWORD).await;
    let key = app.key_for(&id, &["tasks:read", "tasks:write"], None).await;
    let new_password = "a much better passphrase";

    // An API key cannot change the account.
    app.call(
        Method::PUT,
        "/api/v1/auth/me",
        Some(&key),
        Some(json!({"current_password": PASSWORD, "new_password": new_password})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    here.send(
        &app,
        Method::PUT,
        "/api/v1/auth/me",
        Some(json!({"new_password": new_password})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    here.send(
        &app,
        Method::PUT,
        "/api/v1/auth/me",
        Some(json!({"current_password": "wrong password!", "new_password": new_password})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");

    let changed = here
        .send(
            &app,
            Method::PUT,
            "/api/v1/auth/me",
            Some(json!({"current_password": PASSWORD, "new_password": new_password, "display_name": "Al"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    assert_eq!(changed.json()["display_name"], "Al");
    // This session goes on; the other session and the JWT family end; keys are untouched.
    assert_eq!(
        here.send(&app, Method::GET, "/api/v1/auth/me", None)
            .await
            .status,
        StatusCode::OK
    );
    elsewhere
        .send(&app, Method::GET, "/api/v1/auth/me", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get("/api/v1/tasks", &access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.get("/api/v1/tasks", &key).await.status, StatusCode::OK);
    try_login(&app, "alice@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    login(&app, "alice@example.com", new_password).await;

    // An e-mail change also needs the password, and makes the address unverified.
    let moved = here
        .send(
            &app,
            Method::PUT,
            "/api/v1/auth/me",
            Some(json!({"email": "Alice@New.example", "current_password": new_password})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    assert_eq!(moved.json()["email"], "alice@new.example");
    user_with_password(&app, "bob@example.com", PASSWORD).await;
    here.send(
        &app,
        Method::PUT,
        "/api/v1/auth/me",
        Some(json!({"email": "bob@example.com", "current_password": new_password})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "email_taken");
}

both_backends!(deleting_the_account_needs_a_login_and_the_password);
async fn deleting_the_account_needs_a_login_and_the_password() {
    let app = accounts_app().await;
    let id = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    let key = app.key_for(&id, &["tasks:read", "tasks:write"], None).await;
    app.task(&key, "Alice's").await;

    app.call(
        Method::DELETE,
        "/api/v1/auth/account",
        Some(&key),
        Some(json!({"password": PASSWORD})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    browser
        .send(
            &app,
            Method::DELETE,
            "/api/v1/auth/account",
            Some(json!({"password": "wrong password!"})),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(app.store.find_user_by_id(&id).await.unwrap().is_some());

    let deleted = browser
        .send(
            &app,
            Method::DELETE,
            "/api/v1/auth/account",
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    assert!(app.store.find_user_by_id(&id).await.unwrap().is_none());
    browser
        .send(&app, Method::GET, "/api/v1/auth/me", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get("/api/v1/tasks", &key)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    try_login(&app, "alice@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}
