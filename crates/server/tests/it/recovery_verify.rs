//! E-mail verification through a real SMTP conversation, by API and by page, and the mail
//! routes without or with a refusing mail server, on both backends.

use axum::http::{Method, StatusCode};
use selextract_testkit::{SMTP_WAIT, SmtpSink};
use serde_json::json;

use crate::login_support::{PASSWORD, accounts_config, login, try_login, user_with_password};
use crate::recovery_support::{
    admin_key, assert_page_headers, audit_events, form, get_page, mail_app, mail_app_with, post,
    request_reset, token_in,
};
use crate::support::{TestApp, both_backends};

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
