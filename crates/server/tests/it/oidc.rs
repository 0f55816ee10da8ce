//! Signing in with OpenID Connect, end to end against a real provider: the certified
//! `oidc-provider` npm package run by the test kit with Node on 127.0.0.1 (installed by
//! scripts/ensure-test-services; without it these tests fail, they do not skip).
//!
//! The browser is played by hand: the API's redirect goes to the provider (the kit's
//! `sign_in` submits its login form over HTTP), and the provider's redirect back is
//! delivered to the router with the sign-in cookie — to the same API process, or to a
//! sibling process on the same database.

use axum::http::{Method, StatusCode};
use selextract_accounts::SignupPolicy;
use selextract_testkit::{OidcProviderOptions, OidcTestAccount};
use serde_json::json;

use crate::login_support::{PASSWORD, try_login, user_with_password};
use crate::oidc_support::{
    CALLBACK, assert_refused, assert_signed_in, events, finish_on, me, oidc_config, sample, scrape,
    setup, setup_with, sign_in, start, start_on, url_params, user_count,
};
use crate::support::both_backends;

async fn a_first_sign_in_creates_an_account_whose_session_works() {
    let setup = setup(SignupPolicy::Open).await;
    let app = &setup.app;
    let before = scrape(app).await;
    let started = start(app).await;
    // The redirect asks for the code flow with PKCE (S256), a state and a nonce; the client
    // secret never travels through the browser.
    let url = url_params(&started.authorize_url);
    assert!(
        started
            .authorize_url
            .starts_with(&format!("{}/", setup.provider.issuer())),
        "{}",
        started.authorize_url
    );
    assert_eq!(url["response_type"], "code");
    assert_eq!(url["code_challenge_method"], "S256");
    assert_eq!(url["client_id"], setup.provider.client_id());
    assert_eq!(url["redirect_uri"], CALLBACK);
    assert!(url["scope"].split(' ').any(|scope| scope == "openid"));
    for name in ["state", "nonce", "code_challenge"] {
        assert!(url[name].len() >= 20, "{name}: {}", url[name]);
    }
    assert!(
        !started
            .authorize_url
            .contains(setup.provider.client_secret())
    );
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/api/v1/auth/oidc",
        "Max-Age=600",
    ] {
        assert!(
            started.cookie_line.contains(attribute),
            "{}",
            started.cookie_line
        );
    }

    let back = setup
        .provider
        .sign_in(&started.authorize_url, "verified")
        .await;
    assert!(back.param("code").is_some(), "{}", back.url);
    let response = finish_on(&app.router, &back, Some(&started.cookie)).await;
    let browser = assert_signed_in(&response, "/");
    let location = response.header("location").unwrap();
    assert!(!location.contains("code") && !location.contains("token"));

    let account = me(app, &browser).await;
    assert_eq!(account["email"], "verified@oidc.test");
    assert_eq!(account["email_verified"], true);
    assert_eq!(account["display_name"], "Test verified");
    // The session works on the rest of the API too.
    let tasks = browser.send(app, Method::GET, "/api/v1/tasks", None).await;
    assert_eq!(tasks.status, StatusCode::OK, "{}", tasks.text());

    let user_id = account["id"].as_str().unwrap();
    let identities = app.store.list_oidc_identities(user_id).await.unwrap();
    assert_eq!(identities.len(), 1);
    assert_eq!(
        (
            identities[0].provider.as_str(),
            identities[0].subject.as_str()
        ),
        ("test", "verified")
    );
    let names: Vec<String> = events(app, user_id)
        .await
        .into_iter()
        .map(|(event, _)| event)
        .collect();
    assert_eq!(names, ["signup", "oidc_linked", "login"]);

    // Signing in again logs into the same account: no second account.
    let again = sign_in(&setup, "verified").await;
    let second = assert_signed_in(&again, "/");
    assert_eq!(me(app, &second).await["id"], account["id"]);
    assert_eq!(user_count(app).await, 1);
    let after = scrape(app).await;
    // Per-process counters (other tests may share the process under `cargo test`; under
    // nextest each test has its own, and the differences are exact).
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    let logins = delta("selextract_user_logins_total{method=\"oidc\"}");
    let registrations = delta("selextract_user_registrations_total");
    assert!(logins >= 2.0 && registrations >= 1.0, "{after}");
    if std::env::var_os("NEXTEST").is_some() {
        assert_eq!((logins, registrations), (2.0, 1.0));
    }
}
both_backends!(a_first_sign_in_creates_an_account_whose_session_works);

async fn a_verified_email_links_to_the_existing_password_account() {
    let setup = setup(SignupPolicy::Closed).await;
    let app = &setup.app;
    // Registered with other capitals: e-mails compare normalised.
    let user_id = user_with_password(app, "Verified@OIDC.test", PASSWORD).await;
    let response = sign_in(&setup, "verified").await;
    let browser = assert_signed_in(&response, "/");
    let account = me(app, &browser).await;
    assert_eq!(account["id"], user_id.as_str());
    assert_eq!(
        account["email_verified"], true,
        "the provider vouched for the address"
    );
    assert_eq!(user_count(app).await, 1);
    let names: Vec<String> = events(app, &user_id)
        .await
        .into_iter()
        .map(|(event, _)| event)
        .collect();
    assert_eq!(names, ["oidc_linked", "login"]);
    // The password still works beside the link.
    assert_eq!(
        try_login(app, "verified@oidc.test", PASSWORD).await.status,
        StatusCode::OK
    );
}
both_backends!(a_verified_email_links_to_the_existing_password_account);

/// With open sign-up and nobody holding the address, an unverified address makes a new
/// account whose address is not verified (so `auth.require_verified_email` applies).
async fn an_unverified_email_of_nobody_makes_an_unverified_account() {
    let setup = setup(SignupPolicy::Open).await;
    let response = sign_in(&setup, "unverified").await;
    let browser = assert_signed_in(&response, "/");
    let account = me(&setup.app, &browser).await;
    assert_eq!(account["email"], "unverified@oidc.test");
    assert_eq!(account["email_verified"], false);

    // Where verified addresses are required, the same sign-in is refused.
    let mut config = oidc_config(&setup.provider, SignupPolicy::Open);
    config.auth.require_verified_email = true;
    let strict = setup.app.sibling(config);
    let started = start_on(&strict, "/api/v1/auth/oidc/test").await;
    let back = setup
        .provider
        .sign_in(&started.authorize_url, "unverified")
        .await;
    let response = finish_on(&strict, &back, Some(&started.cookie)).await;
    assert_refused(&response, StatusCode::FORBIDDEN, "email_not_verified");
}
both_backends!(an_unverified_email_of_nobody_makes_an_unverified_account);

/// Behind a load balancer the callback may reach another API process: the cookie is signed
/// with the installation's key, which every process on the database shares.
async fn a_sign_in_started_on_one_process_finishes_on_another() {
    let setup = setup(SignupPolicy::Open).await;
    let sibling = setup
        .app
        .sibling(oidc_config(&setup.provider, SignupPolicy::Open));
    let started = start(&setup.app).await;
    let back = setup
        .provider
        .sign_in(&started.authorize_url, "verified")
        .await;
    let response = finish_on(&sibling, &back, Some(&started.cookie)).await;
    let browser = assert_signed_in(&response, "/");
    // And the session made there works here.
    assert_eq!(
        me(&setup.app, &browser).await["email"],
        "verified@oidc.test"
    );
}
both_backends!(a_sign_in_started_on_one_process_finishes_on_another);

async fn unknown_providers_are_not_found_and_known_ones_are_listed() {
    let setup = setup(SignupPolicy::Open).await;
    let app = &setup.app;
    for path in [
        "/api/v1/auth/oidc/nope",
        "/api/v1/auth/oidc/nope/callback?code=x&state=y",
        "/api/v1/auth/oidc/..%2Ftest",
        "/api/v1/auth/oidc/TEST",
    ] {
        let response = app.call(Method::GET, path, None, None).await;
        response.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    let list = app.call(Method::GET, "/api/v1/auth/oidc", None, None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.json(),
        json!({"providers": [
            {"name": "other", "display_name": "Test IdP", "login_url": "/api/v1/auth/oidc/other"},
            {"name": "test", "display_name": "Test IdP", "login_url": "/api/v1/auth/oidc/test"},
        ]})
    );
}
both_backends!(unknown_providers_are_not_found_and_known_ones_are_listed);

/// The return path survives the trip; anything that is not a path on this site becomes `/`.
async fn the_return_path_is_kept_and_stays_on_this_site() {
    let setup = setup(SignupPolicy::Open).await;
    for (asked, landed) in [
        ("%2Ftasks%3Fpage%3D2", "/tasks?page=2"),
        ("https%3A%2F%2Fevil.example%2F", "/"),
        ("%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
    ] {
        let started = start_on(
            &setup.app.router,
            &format!("/api/v1/auth/oidc/test?return_to={asked}"),
        )
        .await;
        let back = setup
            .provider
            .sign_in(&started.authorize_url, "verified")
            .await;
        let response = finish_on(&setup.app.router, &back, Some(&started.cookie)).await;
        assert_signed_in(&response, landed);
    }
}
both_backends!(the_return_path_is_kept_and_stays_on_this_site);

/// A provider account with an odd name and address: stored normalised, the name kept; an
/// address that is none is refused.
async fn unicode_and_odd_claims_make_a_sane_account() {
    let options = OidcProviderOptions::new(CALLBACK)
        .account(OidcTestAccount {
            sub: "ünï-€-1".to_owned(),
            email: "  Zoë.O'Brien+tag@Example.COM ".to_owned(),
            email_verified: true,
            name: "Zoë <b>O'Brien</b>".to_owned(),
        })
        .account(OidcTestAccount::new("no-address", "not an address", true));
    let setup = setup_with(options, SignupPolicy::Open).await;
    let response = sign_in(&setup, "ünï-€-1").await;
    let browser = assert_signed_in(&response, "/");
    let account = me(&setup.app, &browser).await;
    assert_eq!(account["email"], "zoë.o'brien+tag@example.com");
    assert_eq!(account["display_name"], "Zoë <b>O'Brien</b>");

    let response = sign_in(&setup, "no-address").await;
    let json = assert_refused(&response, StatusCode::FORBIDDEN, "oidc_refused");
    assert!(
        json["message"].as_str().unwrap().contains("e-mail address"),
        "{json}"
    );
    assert_eq!(user_count(&setup.app).await, 1);
}
both_backends!(unicode_and_odd_claims_make_a_sane_account);
