//! `POST /auth/token`: JWT access tokens on the existing routes, refused when tampered with
//! or expired, rotating refresh tokens, a replayed refresh token revoking its family, and
//! per-plan rate limits for every kind of caller.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use selextract_store::AuditFilter;
use serde_json::json;

use crate::login_support::{
    PASSWORD, accounts_app, accounts_config, login, refresh, token_login, user_with_password,
};
use crate::support::{TestApp, both_backends, catalogue_spec};

both_backends!(an_access_token_works_on_the_existing_routes_without_csrf);
async fn an_access_token_works_on_the_existing_routes_without_csrf() {
    let app = accounts_app().await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let response = app
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"grant_type": "password", "email": "alice@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let tokens = response.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3);

    let listed = app.get("/api/v1/tasks", access).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
    let mut spec = catalogue_spec("http://shop.invalid/catalog");
    spec["start"] = json!(false);
    let created = app.post("/api/v1/tasks", access, spec).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let me = app.get("/api/v1/auth/me", access).await;
    assert_eq!(me.json()["email"], "alice@example.com");
    // A JWT carries every scope, so it may mint keys.
    let key = app
        .post(
            "/api/v1/api-keys",
            access,
            json!({"name": "ci", "scopes": ["tasks:read", "keys:write"]}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text());

    // The password grant fails like a login.
    for body in [
        json!({"grant_type": "password", "email": "alice@example.com", "password": "wrong password!"}),
        json!({"grant_type": "password", "email": "nobody@example.com", "password": PASSWORD}),
    ] {
        app.call(Method::POST, "/api/v1/auth/token", None, Some(body))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    for body in [
        json!({"grant_type": "client_credentials"}),
        json!({"email": "alice@example.com", "password": PASSWORD}),
        json!({"grant_type": "refresh_token"}),
    ] {
        app.call(Method::POST, "/api/v1/auth/token", None, Some(body))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

both_backends!(tampered_forged_and_expired_access_tokens_are_refused);
async fn tampered_forged_and_expired_access_tokens_are_refused() {
    let mut config = accounts_config();
    config.auth.tokens.access_ttl_seconds = 1;
    let app = TestApp::with_config(config).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let bob = user_with_password(&app, "bob@example.com", PASSWORD).await;
    let (access, _) = token_login(&app, "alice@example.com", PASSWORD).await;
    assert_eq!(
        app.get("/api/v1/tasks", &access).await.status,
        StatusCode::OK
    );

    let parts: Vec<&str> = access.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["sub"], alice.as_str());
    // Bob's id in Alice's token, the signature kept; then no signature at all.
    claims["sub"] = json!(bob);
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let mut flipped = parts[2].to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for token in [
        format!("{}.{forged_payload}.{}", parts[0], parts[2]),
        format!("{none_header}.{}.", parts[1]),
        format!("{none_header}.{}.x", parts[1]),
        format!("{}.{}.{flipped}", parts[0], parts[1]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{access}.{}", parts[2]),
        "a.b.c".to_owned(),
        format!("{}.{}.{}", "x".repeat(3000), parts[1], parts[2]),
    ] {
        let response = app.get("/api/v1/tasks", &token).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{}: {}",
            &token[..token.len().min(80)],
            response.text()
        );
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.get("/api/v1/tasks", &access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

both_backends!(a_refresh_token_rotates_and_its_replay_revokes_the_family);
async fn a_refresh_token_rotates_and_its_replay_revokes_the_family() {
    let app = accounts_app().await;
    let id = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let (first_access, first_refresh) = token_login(&app, "alice@example.com", PASSWORD).await;
    let (other_access, other_refresh) = token_login(&app, "alice@example.com", PASSWORD).await;

    let second = refresh(&app, &first_refresh).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    let second = second.json();
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    let second_access = second["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    let third = refresh(&app, &second_refresh).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text());
    let third_refresh = third.json()["refresh_token"].as_str().unwrap().to_owned();
    for access in [&first_access, &second_access] {
        assert_eq!(
            app.get("/api/v1/tasks", access).await.status,
            StatusCode::OK
        );
    }

    // The first token was spent: presenting it again revokes the whole family.
    refresh(&app, &first_refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    for access in [&first_access, &second_access] {
        app.get("/api/v1/tasks", access)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    refresh(&app, &third_refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    let audit = app
        .store
        .list_audit(&AuditFilter {
            user_id: Some(id.clone()),
            event: Some("refresh_reuse_detected".to_owned()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");

    // Another login's family is untouched.
    assert_eq!(
        app.get("/api/v1/tasks", &other_access).await.status,
        StatusCode::OK
    );
    assert_eq!(refresh(&app, &other_refresh).await.status, StatusCode::OK);

    for bogus in ["", "nonsense", &"A".repeat(43), &"x".repeat(100_000)] {
        refresh(&app, bogus)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    }
}

both_backends!(logout_with_an_access_token_revokes_its_family);
async fn logout_with_an_access_token_revokes_its_family() {
    let app = accounts_app().await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let (access, refresh_token) = token_login(&app, "alice@example.com", PASSWORD).await;
    let browser = login(&app, "alice@example.com", PASSWORD).await;
    let done = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&access), None)
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    app.get("/api/v1/tasks", &access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    refresh(&app, &refresh_token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    // The session is another login.
    assert_eq!(
        browser
            .send(&app, Method::GET, "/api/v1/auth/me", None)
            .await
            .status,
        StatusCode::OK
    );
}

both_backends!(a_plans_rate_limit_applies_to_keys_sessions_and_tokens);
async fn a_plans_rate_limit_applies_to_keys_sessions_and_tokens() {
    let mut config = accounts_config();
    config.rate_limit_per_minute = 100;
    config.plans.billing_enabled = true;
    config
        .plans
        .plans
        .get_mut("free")
        .unwrap()
        .rate_limit_per_minute = Some(2);
    let app = TestApp::with_config(config).await;
    let free = app.user_on_plan("free@example.com", "free").await;
    let paying = app.user_on_plan("pro@example.com", "professional").await;
    for remaining in ["1", "0"] {
        let response = app.get("/api/v1/tasks", &free.key).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.header("x-ratelimit-limit"), Some("2"));
        assert_eq!(response.header("x-ratelimit-remaining"), Some(remaining));
    }
    app.get("/api/v1/tasks", &free.key)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let response = app.get("/api/v1/tasks", &paying.key).await;
    assert_eq!(response.header("x-ratelimit-limit"), Some("100"));

    // Sessions and JWTs of one user share one budget at the plan's limit.
    let hash = selextract_accounts::password::hash_password(
        &crate::login_support::cheap_password(),
        PASSWORD,
    )
    .unwrap();
    app.store
        .set_user_password_hash(&free.id, Some(&hash))
        .await
        .unwrap();
    let browser = login(&app, "free@example.com", PASSWORD).await;
    let (access, _) = token_login(&app, "free@example.com", PASSWORD).await;
    let first = browser.send(&app, Method::GET, "/api/v1/tasks", None).await;
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/tasks", &access).await.status,
        StatusCode::OK
    );
    browser
        .send(&app, Method::GET, "/api/v1/tasks", None)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    app.get("/api/v1/tasks", &access)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

both_backends!(one_refresh_token_presented_eight_times_at_once_rotates_once_and_revokes_its_family);
/// Eight concurrent presentations of one refresh token (a stolen copy racing its owner):
/// exactly one rotates; the others are replays, so the family — the winner's new tokens
/// included — is revoked.
async fn one_refresh_token_presented_eight_times_at_once_rotates_once_and_revokes_its_family() {
    let app = accounts_app().await;
    user_with_password(&app, "alice@example.com", PASSWORD).await;
    let (access, refresh_token) = token_login(&app, "alice@example.com", PASSWORD).await;
    let attempts = (0..8).map(|_| refresh(&app, &refresh_token));
    let responses = futures::future::join_all(attempts).await;
    let winners: Vec<_> = responses
        .iter()
        .filter(|response| response.status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation");
    for response in &responses {
        if response.status != StatusCode::OK {
            response.assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
        }
    }
    let winner = winners[0].json();
    refresh(&app, winner["refresh_token"].as_str().unwrap())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "token_invalid");
    for token in [access.as_str(), winner["access_token"].as_str().unwrap()] {
        app.get("/api/v1/tasks", token)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}
