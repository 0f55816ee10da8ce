//! Password reset through a real SMTP conversation (the test kit's sink, spoken to by the
//! server's lettre mailer), by API and by page, on both backends.

use axum::http::{Method, StatusCode};
use selextract_store::testing::expire_account_tokens_for;
use selextract_testkit::{SMTP_WAIT, SmtpSink};
use serde_json::json;

use crate::login_support::{PASSWORD, login, refresh, token_login, try_login, user_with_password};
use crate::recovery_support::{
    NEW_PASSWORD, assert_page_headers, audit_events, confirm_reset, form, get_page, mail_app, post,
    request_reset, reset_token_for, token_in,
};
use crate::support::both_backends;

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
