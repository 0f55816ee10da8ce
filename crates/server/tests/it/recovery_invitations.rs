//! Invitations through a real SMTP conversation, by API and by page, and pages that never
//! echo a crafted token, on both backends.

use axum::http::StatusCode;
use selextract_store::AuditFilter;
use selextract_testkit::{SMTP_WAIT, SmtpSink};
use serde_json::json;

use crate::login_support::{PASSWORD, accounts_config, cheap_password, login, user_with_password};
use crate::recovery_support::{
    NEW_PASSWORD, admin_key, assert_page_headers, form, get_page, invite, mail_app, mail_app_with,
    post, token_in,
};
use crate::support::both_backends;

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
