//! Helpers for the tests of logins: a server with open signup and a cheap password cost,
//! users with passwords, a "browser" holding the session and CSRF cookies, JWT logins.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use selextract_accounts::password::hash_password;
use selextract_accounts::{AuthConfig, PasswordConfig, SignupPolicy};
use selextract_server::ServerConfig;
use selextract_store::NewUser;
use serde_json::{Value, json};

use crate::support::{TestApp, TestResponse};

pub const PASSWORD: &str = "correct horse battery staple";

/// The cheapest cost argon2 accepts: the tests are about the flows, not the hash.
pub fn cheap_password() -> PasswordConfig {
    PasswordConfig {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

/// Open signup, cheap hashes, and the credential revision compared on every request.
pub fn accounts_config() -> ServerConfig {
    ServerConfig {
        credential_check_interval: std::time::Duration::ZERO,
        auth: AuthConfig {
            signup: SignupPolicy::Open,
            password: cheap_password(),
            ..AuthConfig::default()
        },
        ..ServerConfig::default()
    }
}

pub async fn accounts_app() -> TestApp {
    TestApp::with_config(accounts_config()).await
}

/// A user with `password` (hashed at the cheap cost); returns the id.
pub async fn user_with_password(app: &TestApp, email: &str, password: &str) -> String {
    let hash = hash_password(&cheap_password(), password).unwrap();
    app.store
        .create_user(NewUser {
            email: email.to_owned(),
            password_hash: Some(hash),
            is_admin: false,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs: 8,
        })
        .await
        .unwrap()
        .id
}

/// The cookies a browser keeps after a login.
#[derive(Debug, Clone)]
pub struct Browser {
    pub session: String,
    pub csrf: String,
}

impl Browser {
    /// A request carrying the session cookie (and the CSRF cookie), with the
    /// `X-CSRF-Token` header when `with_csrf`.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        with_csrf: bool,
    ) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(path).header(
            "cookie",
            format!(
                "selextract_session={}; selextract_csrf={}",
                self.session, self.csrf
            ),
        );
        if with_csrf {
            builder = builder.header("x-csrf-token", &self.csrf);
        }
        let body = match body {
            Some(value) => {
                builder = builder.header("content-type", "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        builder.body(body).unwrap()
    }

    pub async fn send(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> TestResponse {
        app.send(self.request(method, path, body, true)).await
    }
}

/// The value of cookie `name` set by `response`, and the whole `Set-Cookie` line.
pub fn set_cookie<'a>(response: &'a TestResponse, name: &str) -> Option<(String, &'a str)> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|line| line.starts_with(&format!("{name}=")))
        .map(|line| {
            let value = line[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned();
            (value, line)
        })
}

pub fn browser_from(response: &TestResponse) -> Browser {
    let (session, _) = set_cookie(response, "selextract_session").expect("session cookie");
    let (csrf, _) = set_cookie(response, "selextract_csrf").expect("csrf cookie");
    Browser { session, csrf }
}

pub async fn try_login(app: &TestApp, email: &str, password: &str) -> TestResponse {
    app.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

pub async fn login(app: &TestApp, email: &str, password: &str) -> Browser {
    let response = try_login(app, email, password).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    browser_from(&response)
}

/// `(access token, refresh token)` from a password grant.
pub async fn token_login(app: &TestApp, email: &str, password: &str) -> (String, String) {
    let response = app
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"grant_type": "password", "email": email, "password": password})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let json = response.json();
    (
        json["access_token"].as_str().unwrap().to_owned(),
        json["refresh_token"].as_str().unwrap().to_owned(),
    )
}

pub async fn refresh(app: &TestApp, refresh_token: &str) -> TestResponse {
    app.call(
        Method::POST,
        "/api/v1/auth/token",
        None,
        Some(json!({"grant_type": "refresh_token", "refresh_token": refresh_token})),
    )
    .await
}
