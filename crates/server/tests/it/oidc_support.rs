//! Shared set-up for the OpenID Connect sign-in tests: the provider config, starting and
//! finishing a sign-in by hand, and assertions on its outcome.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use selextract_accounts::SignupPolicy;
use selextract_accounts::oidc::OidcProviderConfig;
use selextract_server::ServerConfig;
use selextract_store::AuditFilter;
use selextract_testkit::{OidcProvider, OidcProviderOptions, SignInRedirect};
use serde_json::{Value, json};

use crate::login_support::{Browser, accounts_config, browser_from, set_cookie};
use crate::support::{TestApp, TestResponse, from_peer, request, send_via};

pub(crate) const CALLBACK: &str = "http://app.test/api/v1/auth/oidc/test/callback";

/// `[auth.oidc.test]` pointing at `provider`, plus `[auth.oidc.other]` (same issuer, a
/// callback the provider does not know) for cookies of another provider.
pub(crate) fn oidc_config(provider: &OidcProvider, signup: SignupPolicy) -> ServerConfig {
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

pub(crate) struct Setup {
    pub(crate) app: TestApp,
    pub(crate) provider: OidcProvider,
}

pub(crate) async fn setup_with(options: OidcProviderOptions, signup: SignupPolicy) -> Setup {
    let provider = OidcProvider::start_with(options);
    let app = TestApp::with_config(oidc_config(&provider, signup)).await;
    Setup { app, provider }
}

pub(crate) async fn setup(signup: SignupPolicy) -> Setup {
    setup_with(OidcProviderOptions::new(CALLBACK), signup).await
}

/// What the start of a sign-in gives the browser.
pub(crate) struct Started {
    pub(crate) authorize_url: String,
    /// The `selextract_oidc` cookie's value.
    pub(crate) cookie: String,
    /// The whole `Set-Cookie` line.
    pub(crate) cookie_line: String,
}

pub(crate) async fn start_on(router: &Router, path: &str) -> Started {
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

pub(crate) async fn start(app: &TestApp) -> Started {
    start_on(&app.router, "/api/v1/auth/oidc/test").await
}

pub(crate) fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::GET).uri(path);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", format!("selextract_oidc={cookie}"));
    }
    builder.body(Body::empty()).unwrap()
}

/// Delivers the provider's redirect back to `router`, with `cookie` as the sign-in cookie.
pub(crate) async fn finish_on(
    router: &Router,
    back: &SignInRedirect,
    cookie: Option<&str>,
) -> TestResponse {
    send_via(router, get(&back.path_and_query(), cookie)).await
}

/// A whole sign-in of `account` on the app's own router: the final response.
pub(crate) async fn sign_in(setup: &Setup, account: &str) -> TestResponse {
    let started = start(&setup.app).await;
    let back = setup
        .provider
        .sign_in(&started.authorize_url, account)
        .await;
    finish_on(&setup.app.router, &back, Some(&started.cookie)).await
}

/// Asserts a successful sign-in: a redirect to `to` with session cookies, the sign-in
/// cookie cleared, nothing secret in the URL; returns the browser.
pub(crate) fn assert_signed_in(response: &TestResponse, to: &str) -> Browser {
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

pub(crate) fn assert_sign_in_cookie_cleared(response: &TestResponse) {
    let (value, line) =
        set_cookie(response, "selextract_oidc").expect("the sign-in cookie is cleared");
    assert_eq!(value, "", "{line}");
    assert!(line.contains("Max-Age=0"), "{line}");
}

/// Asserts a refusal with `code` that starts no session.
pub(crate) fn assert_refused(response: &TestResponse, status: StatusCode, code: &str) -> Value {
    let json = response.assert_error(status, code);
    assert!(
        set_cookie(response, "selextract_session").is_none(),
        "a session was started"
    );
    json
}

pub(crate) async fn me(app: &TestApp, browser: &Browser) -> Value {
    let response = browser
        .send(app, Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

pub(crate) async fn events(app: &TestApp, user_id: &str) -> Vec<(String, Value)> {
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

pub(crate) async fn user_count(app: &TestApp) -> u64 {
    app.store.count_users().await.unwrap()
}

pub(crate) async fn scrape(app: &TestApp) -> String {
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
pub(crate) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

pub(crate) fn url_params(url: &str) -> std::collections::HashMap<String, String> {
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

pub(crate) fn percent_decode(text: &str) -> String {
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
