//! Password reset, e-mail verification and invitations through a real SMTP conversation
//! (the test kit's sink, spoken to by the server's lettre mailer), on both backends.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use selextract_mail::{Mailer, SmtpConfig, TlsMode};
use selextract_server::ServerConfig;
use selextract_store::testing::expire_account_tokens_for;
use selextract_store::{AuditFilter, NewUser};
use selextract_testkit::{ReceivedMail, SMTP_WAIT, SmtpSink};
use serde_json::{Value, json};

use crate::login_support::{
    PASSWORD, accounts_config, cheap_password, login, refresh, token_login, try_login,
    user_with_password,
};
use crate::support::{TestApp, TestResponse, both_backends};

pub const PUBLIC_URL: &str = "https://sx.example";
const NEW_PASSWORD: &str = "a brand new passphrase";

/// A server with open signup, cheap hashes, a public URL and mail into `sink`.
pub async fn mail_app_with(config: ServerConfig, sink: &SmtpSink) -> TestApp {
    let mut app = TestApp::with_config(ServerConfig {
        public_url: PUBLIC_URL.to_owned(),
        ..config
    })
    .await;
    let mailer = Mailer::from_config(&SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port: Some(sink.port()),
        tls: TlsMode::None,
        ..SmtpConfig::default()
    })
    .unwrap();
    app.state = app.state.clone().with_mailer(mailer);
    app.router = selextract_server::router(app.state.clone());
    app
}

async fn mail_app(sink: &SmtpSink) -> TestApp {
    mail_app_with(accounts_config(), sink).await
}

/// The token of the link in `mail`, checking the link goes to `path` on the public URL.
pub fn token_in(mail: &ReceivedMail, path: &str) -> String {
    let link = mail.first_link().expect("a link in the message");
    let prefix = format!("{PUBLIC_URL}{path}?token=");
    let token = link
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{link} does not start with {prefix}"));
    assert_eq!(token.len(), 43, "{link}");
    token.to_owned()
}

async fn post(app: &TestApp, path: &str, body: Value) -> TestResponse {
    app.call(Method::POST, path, None, Some(body)).await
}

async fn request_reset(app: &TestApp, email: &str) -> TestResponse {
    post(app, "/api/v1/auth/password-reset", json!({"email": email})).await
}

async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> TestResponse {
    post(
        app,
        "/api/v1/auth/password-reset/confirm",
        json!({"token": token, "new_password": password}),
    )
    .await
}

async fn reset_token_for(app: &TestApp, sink: &SmtpSink, email: &str) -> String {
    let before = sink.messages().len();
    let response = request_reset(app, email).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    let mail = sink
        .wait_for_messages(before + 1, SMTP_WAIT)
        .await
        .remove(before);
    assert_eq!(mail.to, [email]);
    token_in(&mail, "/account/reset-password")
}

async fn audit_events(app: &TestApp, user_id: &str) -> Vec<String> {
    app.store
        .list_audit(&AuditFilter {
            user_id: Some(user_id.to_owned()),
            event: None,
            before_id: None,
            limit: 100,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.event)
        .collect()
}

async fn a_reset_sets_the_password_and_ends_every_login() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    let (access, refresh_token) = token_login(&app, "alice@example.com", PASSWORD).await;

    let response = request_reset(&app, "  Alice@Example.COM ").await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    assert_eq!(response.json(), json!({"status": "accepted"}));
    let mail = sink
        .wait_for_message_to("alice@example.com", SMTP_WAIT)
        .await;
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Reset your Selextract password")
    );
    assert!(mail.text().contains("1 hour"), "{}", mail.text());
    let token = token_in(&mail, "/account/reset-password");
    // The database never holds the token itself.
    assert!(
        app.store
            .find_live_account_token(&token, i64::MAX / 2)
            .await
            .unwrap()
            .is_none()
    );

    let response = confirm_reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );

    try_login(&app, "alice@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    login(&app, "alice@example.com", NEW_PASSWORD).await;
    // The session, the access token and the refresh family from before are over.
    let me = browser
        .send(&app, Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.text());
    let me = app.get("/api/v1/auth/me", &access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.text());
    let refreshed = refresh(&app, &refresh_token).await;
    assert_eq!(
        refreshed.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refreshed.text()
    );
    // The link came to the address, so the address is verified now.
    let standing = app.store.account_standing(&alice).await.unwrap().unwrap();
    assert!(standing.email_verified_at_ms.is_some());
    let events = audit_events(&app, &alice).await;
    assert!(events.iter().any(|e| e == "password_reset"), "{events:?}");
    assert!(
        events.iter().any(|e| e == "password_reset_requested"),
        "{events:?}"
    );
}
both_backends!(a_reset_sets_the_password_and_ends_every_login);

async fn a_reset_token_works_once() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let token = reset_token_for(&app, &sink, "alice@example.com").await;
    let response = confirm_reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    // Replayed with another password: refused, and the password stays.
    confirm_reset(&app, &token, "yet another passphrase")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    login(&app, "alice@example.com", NEW_PASSWORD).await;
}
both_backends!(a_reset_token_works_once);

async fn an_expired_reset_token_is_refused() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let token = reset_token_for(&app, &sink, "alice@example.com").await;
    assert_eq!(
        expire_account_tokens_for(&app.store, "alice@example.com")
            .await
            .unwrap(),
        1
    );
    confirm_reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    login(&app, "alice@example.com", PASSWORD).await;
}
both_backends!(an_expired_reset_token_is_refused);

async fn an_unknown_address_gets_the_same_answer_and_no_mail() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let unknown = request_reset(&app, "nobody@example.com").await;
    let disabled_id = user_with_password(&app, "off@example.com", PASSWORD).await;
    app.store
        .set_user_disabled(&disabled_id, true)
        .await
        .unwrap();
    let disabled = request_reset(&app, "off@example.com").await;
    let known = request_reset(&app, "alice@example.com").await;
    for response in [&unknown, &disabled] {
        assert_eq!(response.status, known.status);
        assert_eq!(response.body, known.body);
        assert_eq!(
            response.header("content-type"),
            known.header("content-type")
        );
    }
    sink.wait_for_message_to("alice@example.com", SMTP_WAIT)
        .await;
    // The unknown and disabled requests were made first; their background tasks send
    // nothing at all.
    assert!(sink.messages_to("nobody@example.com").is_empty());
    assert!(sink.messages_to("off@example.com").is_empty());
    assert_eq!(sink.messages().len(), 1);
}
both_backends!(an_unknown_address_gets_the_same_answer_and_no_mail);

async fn a_token_of_another_purpose_is_refused() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let key = app.key_for(&alice, &["tasks:read"], None).await;
    let response = app
        .call(
            Method::POST,
            "/api/v1/auth/verify-email/request",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    let verify = token_in(
        &sink
            .wait_for_message_to("alice@example.com", SMTP_WAIT)
            .await,
        "/account/verify-email",
    );
    confirm_reset(&app, &verify, NEW_PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    let reset = reset_token_for(&app, &sink, "alice@example.com").await;
    post(
        &app,
        "/api/v1/auth/verify-email/confirm",
        json!({"token": reset}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    // Both still work for their own purpose.
    let response = confirm_reset(&app, &reset, NEW_PASSWORD).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    let response = post(
        &app,
        "/api/v1/auth/verify-email/confirm",
        json!({"token": verify}),
    )
    .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
}
both_backends!(a_token_of_another_purpose_is_refused);

async fn nasty_tokens_and_addresses_are_refused_without_mail() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let huge = "A".repeat(1 << 20);
    let shaped_but_unknown = "B".repeat(43);
    for token in [
        "",
        huge.as_str(),
        shaped_but_unknown.as_str(),
        "ü".repeat(43).as_str(),
        "' OR 1=1 --",
        "<script>alert(1)</script>",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\0",
    ] {
        confirm_reset(&app, token, NEW_PASSWORD)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
        post(
            &app,
            "/api/v1/auth/verify-email/confirm",
            json!({"token": token}),
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    }
    for email in [
        "alice@example.com\r\nBcc: eve@evil.test",
        "alice@example.com\nRCPT TO:<eve@evil.test>",
        "alice@example.com>\r\nDATA",
        "",
        "@",
        format!("{}@example.com", "a".repeat(100_000)).as_str(),
    ] {
        request_reset(&app, email)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    // A weak password is refused before the token is spent.
    let token = reset_token_for(&app, &sink, "alice@example.com").await;
    let weak = confirm_reset(&app, &token, "short").await;
    let json = weak.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(json["details"][0]["field"], "new_password");
    let response = confirm_reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    assert_eq!(sink.messages().len(), 1);
    assert!(sink.messages_to("eve@evil.test").is_empty());
}
both_backends!(nasty_tokens_and_addresses_are_refused_without_mail);

async fn verification_marks_the_address_and_login_then_passes() {
    let sink = SmtpSink::start().await;
    let mut config = accounts_config();
    config.auth.require_verified_email = true;
    let app = mail_app_with(config, &sink).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    try_login(&app, "alice@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::FORBIDDEN, "email_not_verified");
    let key = app.key_for(&alice, &["tasks:read"], None).await;
    let response = app
        .call(
            Method::POST,
            "/api/v1/auth/verify-email/request",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    // A second request within the cooldown is refused, not mailed.
    app.call(
        Method::POST,
        "/api/v1/auth/verify-email/request",
        Some(&key),
        None,
    )
    .await
    .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let mail = sink
        .wait_for_message_to("alice@example.com", SMTP_WAIT)
        .await;
    let token = token_in(&mail, "/account/verify-email");
    let response = post(
        &app,
        "/api/v1/auth/verify-email/confirm",
        json!({"token": token}),
    )
    .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    login(&app, "alice@example.com", PASSWORD).await;
    let response = app
        .call(
            Method::POST,
            "/api/v1/auth/verify-email/request",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), json!({"status": "already_verified"}));
    post(
        &app,
        "/api/v1/auth/verify-email/confirm",
        json!({"token": token}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    assert_eq!(sink.messages().len(), 1);
    let events = audit_events(&app, &alice).await;
    assert!(events.iter().any(|e| e == "email_verified"), "{events:?}");
}
both_backends!(verification_marks_the_address_and_login_then_passes);

async fn a_link_for_an_address_the_account_no_longer_has_verifies_nothing() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let key = app.key_for(&alice, &["tasks:read"], None).await;
    app.call(
        Method::POST,
        "/api/v1/auth/verify-email/request",
        Some(&key),
        None,
    )
    .await;
    let token = token_in(
        &sink
            .wait_for_message_to("alice@example.com", SMTP_WAIT)
            .await,
        "/account/verify-email",
    );
    assert!(
        app.store
            .set_user_email(&alice, "alice@new.example")
            .await
            .unwrap()
    );
    post(
        &app,
        "/api/v1/auth/verify-email/confirm",
        json!({"token": token}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    let standing = app.store.account_standing(&alice).await.unwrap().unwrap();
    assert_eq!(standing.email_verified_at_ms, None);
}
both_backends!(a_link_for_an_address_the_account_no_longer_has_verifies_nothing);

async fn without_smtp_mail_routes_say_so_and_reset_requests_stay_silent() {
    let app = TestApp::with_config(accounts_config()).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let key = app.key_for(&alice, &["tasks:read"], None).await;
    app.call(
        Method::POST,
        "/api/v1/auth/verify-email/request",
        Some(&key),
        None,
    )
    .await
    .assert_error(StatusCode::SERVICE_UNAVAILABLE, "mail_not_configured");
    let response = request_reset(&app, "alice@example.com").await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    assert_eq!(response.json(), json!({"status": "accepted"}));
    let admin = admin_key(&app).await;
    app.post(
        "/api/v1/admin/invitations",
        &admin,
        json!({"email": "new@example.com"}),
    )
    .await
    .assert_error(StatusCode::SERVICE_UNAVAILABLE, "mail_not_configured");
}
both_backends!(without_smtp_mail_routes_say_so_and_reset_requests_stay_silent);

async fn a_refusing_mail_server_is_a_503_for_verification() {
    let sink = SmtpSink::start().await;
    sink.reject_recipients(true);
    let app = mail_app(&sink).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let key = app.key_for(&alice, &["tasks:read"], None).await;
    app.call(
        Method::POST,
        "/api/v1/auth/verify-email/request",
        Some(&key),
        None,
    )
    .await
    .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}
both_backends!(a_refusing_mail_server_is_a_503_for_verification);

pub async fn admin_key(app: &TestApp) -> String {
    let admin = app
        .store
        .create_user(NewUser {
            email: "root@example.com".to_owned(),
            password_hash: None,
            is_admin: true,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs: 8,
        })
        .await
        .unwrap();
    app.key_for(&admin.id, &["tasks:read", "tasks:write"], None)
        .await
}

async fn invite(app: &TestApp, key: &str, email: &str) -> TestResponse {
    app.post("/api/v1/admin/invitations", key, json!({"email": email}))
        .await
}

async fn an_invitation_lets_its_address_sign_up_once() {
    let sink = SmtpSink::start().await;
    let mut config = accounts_config();
    config.auth.signup = selextract_accounts::SignupPolicy::InviteOnly;
    let app = mail_app_with(config, &sink).await;
    let admin = admin_key(&app).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let alice_key = app
        .key_for(&alice, &["tasks:read", "tasks:write"], None)
        .await;
    invite(&app, &alice_key, "new@example.com")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    invite(&app, &admin, "alice@example.com")
        .await
        .assert_error(StatusCode::CONFLICT, "email_taken");
    invite(&app, &admin, "new@example.com\r\nBcc: eve@evil.test")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let response = invite(&app, &admin, "New@Example.com").await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    assert_eq!(response.json()["email"], "new@example.com");
    let mail = sink.wait_for_message_to("new@example.com", SMTP_WAIT).await;
    assert!(mail.text().contains("7 days"), "{}", mail.text());
    let token = token_in(&mail, "/account/accept-invitation");

    let signup = |email: &'static str, token: Option<String>| {
        let app = &app;
        async move {
            let mut body = json!({"email": email, "password": NEW_PASSWORD});
            if let Some(token) = token {
                body["invite_token"] = json!(token);
            }
            post(app, "/api/v1/auth/signup", body).await
        }
    };
    signup("new@example.com", None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "signup_closed");
    // Someone else holding the link cannot use it for their own address…
    signup("eve@example.com", Some(token.clone()))
        .await
        .assert_error(StatusCode::FORBIDDEN, "signup_closed");
    signup("new@example.com", Some("C".repeat(43)))
        .await
        .assert_error(StatusCode::FORBIDDEN, "signup_closed");
    // …and the invited address can, once.
    let response = signup("new@example.com", Some(token.clone())).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    login(&app, "new@example.com", NEW_PASSWORD).await;
    let response = signup("new@example.com", Some(token)).await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );
    let events = app
        .store
        .list_audit(&AuditFilter {
            user_id: None,
            event: Some("invitation_created".to_owned()),
            before_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}
both_backends!(an_invitation_lets_its_address_sign_up_once);

/// A form POST as a browser sends it.
pub fn form(path: &str, fields: &[(&str, &str)]) -> Request<Body> {
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn assert_page_headers(response: &TestResponse) {
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/html")),
        "{:?}",
        response.headers
    );
    let csp = response.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("x-frame-options"), Some("DENY"));
    assert!(!response.text().contains("<script"), "{}", response.text());
}

async fn get_page(app: &TestApp, path: &str) -> TestResponse {
    app.call(Method::GET, path, None, None).await
}

async fn the_reset_page_sets_a_password_without_a_session() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let token = reset_token_for(&app, &sink, "alice@example.com").await;
    let path = format!("/account/reset-password?token={token}");
    // Opening the page (twice: mail scanners do) spends nothing.
    for _ in 0..2 {
        let page = get_page(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_page_headers(&page);
        let html = page.text();
        assert!(html.contains("alice@example.com"), "{html}");
        assert!(
            html.contains(&format!("name=\"token\" value=\"{token}\"")),
            "{html}"
        );
        assert!(
            html.contains("action=\"/account/reset-password\""),
            "{html}"
        );
    }
    let mismatch = app
        .send(form(
            "/account/reset-password",
            &[
                ("token", &token),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", "something else entirely"),
            ],
        ))
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_page_headers(&mismatch);
    assert!(mismatch.text().contains("differ"), "{}", mismatch.text());
    let done = app
        .send(form(
            "/account/reset-password",
            &[
                ("token", &token),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        ))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_page_headers(&done);
    assert!(done.text().contains("Password set"), "{}", done.text());
    login(&app, "alice@example.com", NEW_PASSWORD).await;
    // The spent link now shows the invalid-link page.
    let again = get_page(&app, &path).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(!again.text().contains(&token));
}
both_backends!(the_reset_page_sets_a_password_without_a_session);

async fn pages_never_echo_a_crafted_token() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    for path in [
        "/account/reset-password",
        "/account/verify-email",
        "/account/accept-invitation",
    ] {
        for query in [
            "",
            "?token=",
            "?token=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "?token=%22%3E%3Cimg%20src%3Dx%3E",
            "?token=%E2%80%AE%F0%9F%98%80",
            "?token=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        ] {
            let page = get_page(&app, &format!("{path}{query}")).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{path}{query}");
            assert_page_headers(&page);
            let html = page.text();
            for needle in ["<script", "<img", "alert", "BBBBBBBB", "\u{202e}"] {
                assert!(!html.contains(needle), "{path}{query}: {html}");
            }
        }
        let posted = app
            .send(form(
                path,
                &[
                    ("token", "<script>alert(1)</script>"),
                    ("new_password", NEW_PASSWORD),
                    ("confirm_password", NEW_PASSWORD),
                ],
            ))
            .await;
        assert_eq!(posted.status, StatusCode::BAD_REQUEST, "{path}");
        assert_page_headers(&posted);
        assert!(!posted.text().contains("alert"));
    }
}
both_backends!(pages_never_echo_a_crafted_token);

async fn the_verify_page_confirms_on_its_button_only() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let key = app.key_for(&alice, &["tasks:read"], None).await;
    app.call(
        Method::POST,
        "/api/v1/auth/verify-email/request",
        Some(&key),
        None,
    )
    .await;
    let token = token_in(
        &sink
            .wait_for_message_to("alice@example.com", SMTP_WAIT)
            .await,
        "/account/verify-email",
    );
    let page = get_page(&app, &format!("/account/verify-email?token={token}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_page_headers(&page);
    let standing = app.store.account_standing(&alice).await.unwrap().unwrap();
    assert_eq!(
        standing.email_verified_at_ms, None,
        "a GET verifies nothing"
    );
    let done = app
        .send(form("/account/verify-email", &[("token", &token)]))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let standing = app.store.account_standing(&alice).await.unwrap().unwrap();
    assert!(standing.email_verified_at_ms.is_some());
}
both_backends!(the_verify_page_confirms_on_its_button_only);

async fn the_invitation_page_creates_the_invited_account() {
    let sink = SmtpSink::start().await;
    // Invitations work even where signup is closed (the self-hosting default).
    let mut config = accounts_config();
    config.auth.signup = selextract_accounts::SignupPolicy::Closed;
    config.auth.password = cheap_password();
    let app = mail_app_with(config, &sink).await;
    let admin = admin_key(&app).await;
    let response = invite(&app, &admin, "new@example.com").await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let token = token_in(
        &sink.wait_for_message_to("new@example.com", SMTP_WAIT).await,
        "/account/accept-invitation",
    );
    let page = get_page(&app, &format!("/account/accept-invitation?token={token}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_page_headers(&page);
    assert!(page.text().contains("new@example.com"));
    let weak = app
        .send(form(
            "/account/accept-invitation",
            &[
                ("token", &token),
                ("password", "short"),
                ("confirm_password", "short"),
            ],
        ))
        .await;
    assert_eq!(
        weak.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        weak.text()
    );
    let done = app
        .send(form(
            "/account/accept-invitation",
            &[
                ("token", &token),
                ("password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        ))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    login(&app, "new@example.com", NEW_PASSWORD).await;
    let user = app
        .store
        .find_user_by_email("new@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(!user.is_admin);
    let standing = app.store.account_standing(&user.id).await.unwrap().unwrap();
    assert!(standing.email_verified_at_ms.is_some());
    let again = app
        .send(form(
            "/account/accept-invitation",
            &[
                ("token", &token),
                ("password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        ))
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.text());
}
both_backends!(the_invitation_page_creates_the_invited_account);
