//! Sign-ins through OpenID Connect that must be refused: missing, forged, mismatched,
//! expired or foreign sign-in cookies, a replayed callback, closed sign-up, an unverified
//! address that someone else holds, a disabled account, and a provider that refuses or goes
//! away. Same real provider as `oidc`.

use axum::http::StatusCode;
use selextract_accounts::SignupPolicy;
use serde_json::{Value, json};

use crate::login_support::{PASSWORD, user_with_password};
use crate::oidc_support::{
    Setup, assert_refused, assert_sign_in_cookie_cleared, assert_signed_in, events, finish_on, get,
    me, oidc_config, setup, sign_in, start, start_on, url_params, user_count,
};
use crate::support::{both_backends, send_via};

/// Decision: an address the provider does not vouch for is never linked to the account
/// that holds it — that would let anyone who can type the address at some provider take
/// the account. It is refused (`email_taken`, as a password sign-up with that address
/// would be), and no account or link is made.
async fn an_unverified_email_is_never_linked_to_an_existing_account() {
    let setup = setup(SignupPolicy::Open).await;
    let app = &setup.app;
    let user_id = user_with_password(app, "unverified@oidc.test", PASSWORD).await;
    let response = sign_in(&setup, "unverified").await;
    assert_refused(&response, StatusCode::CONFLICT, "email_taken");
    assert_sign_in_cookie_cleared(&response);
    assert!(
        app.store
            .list_oidc_identities(&user_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        app.store
            .find_user_by_oidc_identity("test", "unverified")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(user_count(app).await, 1);
    assert!(events(app, &user_id).await.is_empty());
}
both_backends!(an_unverified_email_is_never_linked_to_an_existing_account);

async fn missing_forged_and_mismatched_sign_in_cookies_are_refused() {
    let setup = setup(SignupPolicy::Open).await;
    let app = &setup.app;
    let started = start(app).await;
    let back = setup
        .provider
        .sign_in(&started.authorize_url, "verified")
        .await;
    let mut forged = started.cookie.clone().into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let (payload, _) = started.cookie.rsplit_once('.').unwrap();
    let other = start(app).await;
    let for_other_provider = start_on(&app.router, "/api/v1/auth/oidc/other").await;
    // A redirect URI in the provider's table wins over the public URL.
    assert_eq!(
        url_params(&for_other_provider.authorize_url)["redirect_uri"],
        "http://elsewhere.test/api/v1/auth/oidc/other/callback"
    );
    let huge = "A".repeat(100_000);
    let cases: Vec<(&str, Option<String>, String)> = vec![
        ("no cookie", None, back.path_and_query()),
        ("one flipped byte", Some(forged), back.path_and_query()),
        (
            "no signature",
            Some(payload.to_owned()),
            back.path_and_query(),
        ),
        (
            "a bogus signature",
            Some(format!("{payload}.AAAA")),
            back.path_and_query(),
        ),
        ("empty", Some(String::new()), back.path_and_query()),
        ("huge", Some(huge), back.path_and_query()),
        (
            "another sign-in's cookie",
            Some(other.cookie.clone()),
            back.path_and_query(),
        ),
        (
            "another provider's cookie with its state",
            Some(for_other_provider.cookie.clone()),
            format!(
                "/api/v1/auth/oidc/test/callback?code=x&state={}",
                url_params(&for_other_provider.authorize_url)["state"]
            ),
        ),
        (
            "the right cookie without a state",
            Some(started.cookie.clone()),
            back.path_and_query().replace("state=", "ignored="),
        ),
    ];
    for (case, cookie, path) in cases {
        let response = send_via(&app.router, get(&path, cookie.as_deref())).await;
        let json = assert_refused(&response, StatusCode::BAD_REQUEST, "oidc_state_invalid");
        assert!(
            json["message"].as_str().unwrap().contains("start again"),
            "{case}: {json}"
        );
        assert_sign_in_cookie_cleared(&response);
    }
    assert_eq!(user_count(app).await, 0);
    // None of that spent the code: the genuine cookie still completes the sign-in.
    let response = finish_on(&app.router, &back, Some(&started.cookie)).await;
    assert_signed_in(&response, "/");
}
both_backends!(missing_forged_and_mismatched_sign_in_cookies_are_refused);

/// The provider's code is single-use: replaying the whole callback (cookie included) is
/// refused and starts no second session.
async fn a_replayed_callback_is_refused() {
    let setup = setup(SignupPolicy::Open).await;
    let started = start(&setup.app).await;
    let back = setup
        .provider
        .sign_in(&started.authorize_url, "verified")
        .await;
    let first = finish_on(&setup.app.router, &back, Some(&started.cookie)).await;
    assert_signed_in(&first, "/");
    let sibling = setup
        .app
        .sibling(oidc_config(&setup.provider, SignupPolicy::Open));
    for router in [&setup.app.router, &sibling] {
        let replay = finish_on(router, &back, Some(&started.cookie)).await;
        let json = assert_refused(&replay, StatusCode::FORBIDDEN, "oidc_refused");
        assert!(
            json["message"].as_str().unwrap().contains("invalid_grant"),
            "{json}"
        );
    }
    assert_eq!(user_count(&setup.app).await, 1);
}
both_backends!(a_replayed_callback_is_refused);

async fn closed_or_invite_only_sign_up_creates_no_account() {
    for policy in [SignupPolicy::Closed, SignupPolicy::InviteOnly] {
        let setup = setup(policy).await;
        let response = sign_in(&setup, "verified").await;
        let json = assert_refused(&response, StatusCode::FORBIDDEN, "signup_closed");
        assert!(
            json["message"].as_str().unwrap().contains("no account"),
            "{json}"
        );
        assert_eq!(user_count(&setup.app).await, 0, "{policy:?}");
        assert!(
            setup
                .app
                .store
                .find_user_by_oidc_identity("test", "verified")
                .await
                .unwrap()
                .is_none()
        );
    }
}
both_backends!(closed_or_invite_only_sign_up_creates_no_account);

async fn the_users_refusal_at_the_provider_is_shown_clearly() {
    let setup = setup(SignupPolicy::Open).await;
    let started = start(&setup.app).await;
    let back = setup.provider.deny(&started.authorize_url).await;
    assert_eq!(back.param("error").as_deref(), Some("access_denied"));
    let response = finish_on(&setup.app.router, &back, Some(&started.cookie)).await;
    let json = assert_refused(&response, StatusCode::FORBIDDEN, "oidc_refused");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("Test IdP refused the sign-in (access_denied)"),
        "{json}"
    );
    assert_sign_in_cookie_cleared(&response);
    // A browser gets a page saying the same.
    let mut request = get(&back.path_and_query(), Some(&started.cookie));
    request
        .headers_mut()
        .insert("accept", "text/html,application/xhtml+xml".parse().unwrap());
    let page = send_via(&setup.app.router, request).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text().contains("access_denied") && page.text().contains("Sign-in failed"),
        "{}",
        page.text()
    );
    assert_eq!(user_count(&setup.app).await, 0);
}
both_backends!(the_users_refusal_at_the_provider_is_shown_clearly);

async fn a_disabled_account_cannot_sign_in_through_its_provider() {
    let setup = setup(SignupPolicy::Open).await;
    let first = sign_in(&setup, "verified").await;
    let browser = assert_signed_in(&first, "/");
    let user_id = me(&setup.app, &browser).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    setup
        .app
        .store
        .set_user_disabled(&user_id, true)
        .await
        .unwrap();
    let response = sign_in(&setup, "verified").await;
    assert_refused(&response, StatusCode::FORBIDDEN, "forbidden");
}
both_backends!(a_disabled_account_cannot_sign_in_through_its_provider);

/// A provider that stops answering between the redirect and the callback: a clear 502, no
/// account.
async fn a_provider_that_went_away_is_reported_as_unavailable() {
    let Setup { app, provider } = setup(SignupPolicy::Open).await;
    let started = start(&app).await;
    let back = provider.sign_in(&started.authorize_url, "verified").await;
    drop(provider);
    let response = finish_on(&app.router, &back, Some(&started.cookie)).await;
    assert_refused(
        &response,
        StatusCode::BAD_GATEWAY,
        "oidc_provider_unavailable",
    );
    assert_eq!(user_count(&app).await, 0);
}
both_backends!(a_provider_that_went_away_is_reported_as_unavailable);

/// `Signing::sign("oidc", payload)` written out independently: HMAC-SHA256 under the key
/// HMAC-SHA256(secret, "selextract/oidc"), base64url without padding.
fn sign_as_installation(secret: &[u8], payload: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, KeyInit, Mac};
    let mac = |key: &[u8], data: &[u8]| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let key = mac(secret, b"selextract/oidc");
    format!(
        "{payload}.{}",
        URL_SAFE_NO_PAD.encode(mac(&key, payload.as_bytes()))
    )
}

/// A cookie made by this installation's key is still refused once its ten minutes are over,
/// and one made with another installation's key is refused even when current. (The cookies
/// are re-signed here with the secret the first process kept in the database; the same
/// re-signing of an unexpired payload is accepted, which shows the forgery is faithful.)
async fn an_expired_or_foreign_cookie_is_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let setup = setup(SignupPolicy::Open).await;
    let app = &setup.app;
    let started = start(app).await;
    let back = setup
        .provider
        .sign_in(&started.authorize_url, "verified")
        .await;
    let secret = app
        .store
        .get_flag("auth_signing_secret")
        .await
        .unwrap()
        .expect("the generated installation secret");
    let (payload, _) = started.cookie.rsplit_once('.').unwrap();
    let mut login: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!(
        login["expires_at_ms"].as_i64().unwrap() > now_ms + 590_000,
        "{login}"
    );
    let encode = |login: &Value| URL_SAFE_NO_PAD.encode(login.to_string());

    login["expires_at_ms"] = json!(now_ms - 1);
    let expired = sign_as_installation(secret.as_bytes(), &encode(&login));
    let response = finish_on(&app.router, &back, Some(&expired)).await;
    let json = assert_refused(&response, StatusCode::BAD_REQUEST, "oidc_state_invalid");
    assert!(
        json["message"].as_str().unwrap().contains("10 minutes"),
        "{json}"
    );

    login["expires_at_ms"] = json!(now_ms + 60_000);
    let foreign = sign_as_installation(b"another installation", &encode(&login));
    let response = finish_on(&app.router, &back, Some(&foreign)).await;
    assert_refused(&response, StatusCode::BAD_REQUEST, "oidc_state_invalid");

    let faithful = sign_as_installation(secret.as_bytes(), &encode(&login));
    let response = finish_on(&app.router, &back, Some(&faithful)).await;
    assert_signed_in(&response, "/");
}
both_backends!(an_expired_or_foreign_cookie_is_refused);
