//! Shared set-up for the Lemon Squeezy billing tests: the served API, the provider fake, the
//! billing config and a person with a key and a token.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use selextract_billing::LemonSqueezyConfig;
use selextract_server::ServerConfig;
use selextract_store::Plans;
use selextract_testkit::FakeLemonSqueezy;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::login_support::{PASSWORD, accounts_config, token_login, user_with_password};
use crate::support::{TestApp, request};

pub(crate) const API_KEY: &str = "ls-test-api-key";
pub(crate) const SIGNING_SECRET: &str = "ls-whsec-test";
pub(crate) const STORE_ID: u64 = 7;
pub(crate) const STARTER: u64 = 101;
pub(crate) const PROFESSIONAL: u64 = 102;
pub(crate) const WEBHOOK: &str = "/api/v1/billing/webhooks/lemon-squeezy";

pub(crate) struct Billing {
    pub(crate) app: TestApp,
    pub(crate) fake: FakeLemonSqueezy,
    pub(crate) webhook_url: String,
    pub(crate) shutdown: CancellationToken,
}

impl Drop for Billing {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A person: user id, an API key with every scope, and an access token (JWT).
pub(crate) struct Person {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) jwt: String,
}

pub(crate) fn billing_config(api_base: &str, enabled: bool) -> ServerConfig {
    let mut config = accounts_config();
    config.plans = Plans {
        billing_enabled: true,
        default_plan: "free".to_owned(),
        lemon_squeezy: LemonSqueezyConfig {
            enabled,
            api_key: Some(API_KEY.into()),
            signing_secret: Some(SIGNING_SECRET.into()),
            store_id: STORE_ID,
            api_base: api_base.to_owned(),
            variants: BTreeMap::from([
                ("starter".to_owned(), STARTER),
                ("professional".to_owned(), PROFESSIONAL),
            ]),
            test_mode: true,
        },
        ..Plans::default()
    };
    config.plans.check().unwrap();
    config
}

impl Billing {
    pub(crate) async fn start() -> Billing {
        Billing::start_with(true).await
    }

    pub(crate) async fn start_with(enabled: bool) -> Billing {
        let fake = FakeLemonSqueezy::start(API_KEY, SIGNING_SECRET, STORE_ID).await;
        let app = TestApp::with_config(billing_config(&fake.api_base(), enabled)).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(selextract_server::serve(
            listener,
            app.state.clone(),
            shutdown.clone(),
        ));
        Billing {
            app,
            fake,
            webhook_url: format!("http://{addr}{WEBHOOK}"),
            shutdown,
        }
    }

    pub(crate) async fn person(&self, email: &str) -> Person {
        let id = user_with_password(&self.app, email, PASSWORD).await;
        assert!(self.app.store.set_user_plan(&id, "free", 1).await.unwrap());
        let key = self
            .app
            .key_for(&id, crate::support::ALL_SCOPES, None)
            .await;
        let (jwt, _) = token_login(&self.app, email, PASSWORD).await;
        Person { id, key, jwt }
    }

    pub(crate) async fn plan_of(&self, user_id: &str) -> String {
        self.app
            .store
            .find_user_by_id(user_id)
            .await
            .unwrap()
            .unwrap()
            .plan
    }

    pub(crate) async fn deliver(&self, body: &str) -> (u16, String) {
        self.fake.send_webhook(&self.webhook_url, body).await
    }

    pub(crate) async fn deliver_ok(&self, body: &str) -> Value {
        let (status, text) = self.deliver(body).await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self
            .app
            .send(request(method, path, Some(token), body))
            .await;
        let json = if response.body.is_empty() {
            Value::Null
        } else {
            response.json()
        };
        (response.status, json)
    }

    pub(crate) async fn events(&self) -> u64 {
        self.app.store.count_billing_events().await.unwrap()
    }
}
