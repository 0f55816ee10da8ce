//! Shared set-up for the mail tests: a server that mails into the test kit's SMTP sink,
//! tokens out of the mails, the reset and invitation calls, and browser-style form posts.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use selextract_mail::{Mailer, SmtpConfig, TlsMode};
use selextract_server::ServerConfig;
use selextract_store::{AuditFilter, NewUser};
use selextract_testkit::{ReceivedMail, SMTP_WAIT, SmtpSink};
use serde_json::{Value, json};

use crate::login_support::accounts_config;
use crate::support::{TestApp, TestResponse};

pub(crate) const PUBLIC_URL: &str = "https://sx.example";
pub(crate) const NEW_PASSWORD: &str = "a brand new passphrase";

/// A server with open signup, cheap hashes, a public URL and mail into `sink`.
pub(crate) async fn mail_app_with(config: ServerConfig, sink: &SmtpSink) -> TestApp {
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

pub(crate) async fn mail_app(sink: &SmtpSink) -> TestApp {
    mail_app_with(accounts_config(), sink).await
}

/// The token of the link in `mail`, checking the link goes to `path` on the public URL.
pub(crate) fn token_in(mail: &ReceivedMail, path: &str) -> String {
    let link = mail.first_link().expect("a link in the message");
    let prefix = format!("{PUBLIC_URL}{path}?token=");
    let token = link
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{link} does not start with {prefix}"));
    assert_eq!(token.len(), 43, "{link}");
    token.to_owned()
}

pub(crate) async fn post(app: &TestApp, path: &str, body: Value) -> TestResponse {
    app.call(Method::POST, path, None, Some(body)).await
}

pub(crate) async fn request_reset(app: &TestApp, email: &str) -> TestResponse {
    post(app, "/api/v1/auth/password-reset", json!({"email": email})).await
}

pub(crate) async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> TestResponse {
    post(
        app,
        "/api/v1/auth/password-reset/confirm",
        json!({"token": token, "new_password": password}),
    )
    .await
}

pub(crate) async fn reset_token_for(app: &TestApp, sink: &SmtpSink, email: &str) -> String {
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

pub(crate) async fn audit_events(app: &TestApp, user_id: &str) -> Vec<String> {
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

pub(crate) async fn admin_key(app: &TestApp) -> String {
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

pub(crate) async fn invite(app: &TestApp, key: &str, email: &str) -> TestResponse {
    app.post("/api/v1/admin/invitations", key, json!({"email": email}))
        .await
}

/// A form POST as a browser sends it.
pub(crate) fn form(path: &str, fields: &[(&str, &str)]) -> Request<Body> {
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

pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn assert_page_headers(response: &TestResponse) {
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

pub(crate) async fn get_page(app: &TestApp, path: &str) -> TestResponse {
    app.call(Method::GET, path, None, None).await
}
