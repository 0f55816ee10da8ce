//! Signing in with OpenID Connect, end to end against a real provider: the certified
//! `oidc-provider` npm package run by the test kit with Node on 127.0.0.1 (installed by
//! scripts/ensure-test-services; without it these tests fail, they do not skip).
//!
//! The browser is played by hand: the API's redirect goes to the provider (the kit's
//! `sign_in` submits its login form over HTTP), and the provider's redirect back is
//! delivered to the router with the sign-in cookie — to the same API process, or to a
//! sibling process on the same database.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use selextract_accounts::SignupPolicy;
use selextract_accounts::oidc::OidcProviderConfig;
use selextract_server::ServerConfig;
use selextract_store::AuditFilter;
use selextract_testkit::{OidcProvider, OidcProviderOptions, OidcTestAccount, SignInRedirect};
use serde_json::{Value, json};

use crate::login_support::{
    Browser, PASSWORD, accounts_config, browser_from, set_cookie, try_login, user_with_password,
};
use crate::support::{TestApp, TestResponse, both_backends, from_peer, request, send_via};

const CALLBACK: &str = "http://app.test/api/v1/auth/oidc/test/callback";

/// `[auth.oidc.test]` pointing at `provider`, plus `[auth.oidc.other]` (same issuer, a
/// callback the provider does not know) for cookies of another provider.
fn oidc_config(provider: &OidcProvider, signup: SignupPolicy) -> ServerConfig {
    let mut config = accounts_config();
    config.auth.signup = signup;
    config.public_url = "http://app.test/".to_owned();
    let mut table = json!({
        "issuer": provider.issuer(),
        "client_id": provider.client_id(),
        "client_secret": provider.client_secret(),
        "display_name": "Test IdP",
    });
    // `test` takes its redirect URI from the public URL (CALLBACK); `other` names its own.
    let test: OidcProviderConfig = serde_json::from_value(table.clone()).unwrap();
    table["redirect_uri"] = json!("http://elsewhere.test/api/v1/auth/oidc/other/callback");
    let other: OidcProviderConfig = serde_json::from_value(table).unwrap();
    config.auth.oidc.insert("test".to_owned(), test);
    config.auth.oidc.insert("other".to_owned(), other);
    config
}

struct Setup {
    app: TestApp,
    provider: OidcProvider,
}

async fn setup_with(options: OidcProviderOptions, signup: SignupPolicy) -> Setup {
    let provider = OidcProvider::start_with(options);
    let app = TestApp::with_config(oidc_config(&provider, signup)).await;
    Setup { app, provider }
}

async fn setup(signup: SignupPolicy) -> Setup {
    setup_with(OidcProviderOptions::new(CALLBACK), signup).await
}

/// What the start of a sign-in gives the browser.
struct Started {
    authorize_url: String,
    /// The `selextract_oidc` cookie's value.
    cookie: String,
    /// The whole `Set-Cookie` line.
    cookie_line: String,
}

async fn start_on(router: &Router, path: &str) -> Started {
    let response = send_via(router, get(path, None)).await;
    assert_eq!(response.status, StatusCode::FOUND, "{}", response.text());
    let authorize_url = response.header("location").unwrap().to_owned();
    let (cookie, line) = set_cookie(&response, "selextract_oidc").expect("the sign-in cookie");
    Started {
        authorize_url,
        cookie,
        cookie_line: line.to_owned(),
    }
}

async fn start(app: &TestApp) -> Started {
    start_on(&app.router, "/api/v1/auth/oidc/test").await
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::GET).uri(path);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", format!("selextract_oidc={cookie}"));
    }
    builder.body(Body::empty()).unwrap()
}

/// Delivers the provider's redirect back to `router`, with `cookie` as the sign-in cookie.
async fn finish_on(router: &Router, back: &SignInRedirect, cookie: Option<&str>) -> TestResponse {
    send_via(router, get(&back.path_and_query(), cookie)).await
}

/// A whole sign-in of `account` on the app's own router: the final response.
async fn sign_in(setup: &Setup, account: &str) -> TestResponse {
    let started = start(&setup.app).await;
    let back = setup
        .provider
        .sign_in(&started.authorize_url, account)
        .await;
    finish_on(&setup.app.router, &back, Some(&started.cookie)).await
}

/// Asserts a successful sign-in: a redirect to `to` with session cookies, the sign-in
/// cookie cleared, nothing secret in the URL; returns the browser.
fn assert_signed_in(response: &TestResponse, to: &str) -> Browser {
    assert_eq!(
        response.status,
        StatusCode::SEE_OTHER,
        "{}",
        response.text()
    );
    assert_eq!(response.header("location"), Some(to));
    assert_sign_in_cookie_cleared(response);
    browser_from(response)
}

fn assert_sign_in_cookie_cleared(response: &TestResponse) {
    let (value, line) =
        set_cookie(response, "selextract_oidc").expect("the sign-in cookie is cleared");
    assert_eq!(value, "", "{line}");
    assert!(line.contains("Max-Age=0"), "{line}");
}

/// Asserts a refusal with `code` that starts no session.
fn assert_refused(response: &TestResponse, status: StatusCode, code: &str) -> Value {
    let json = response.assert_error(status, code);
    assert!(
        set_cookie(response, "selextract_session").is_none(),
        "a session was started"
    );
    json
}

async fn me(app: &TestApp, browser: &Browser) -> Value {
    let response = browser
        .send(app, Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

async fn events(app: &TestApp, user_id: &str) -> Vec<(String, Value)> {
    let filter = AuditFilter {
        user_id: Some(user_id.to_owned()),
        limit: 100,
        ..AuditFilter::default()
    };
    let mut events: Vec<_> = app
        .store
        .list_audit(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|record| (record.event, record.details))
        .collect();
    events.reverse();
    events
}

async fn user_count(app: &TestApp) -> u64 {
    app.store.count_users().await.unwrap()
}

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

async fn scrape(app: &TestApp) -> String {
    let response = app
        .send(from_peer(
            request(Method::GET, "/metrics", None, None),
            "127.0.0.1:9",
        ))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    response.text()
}

/// The value of the sample whose name and labels are exactly `series`; 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn url_params(url: &str) -> std::collections::HashMap<String, String> {
    let query = url
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default();
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), percent_decode(value)))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

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
