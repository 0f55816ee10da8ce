//! A small client of the Lemon Squeezy REST API (JSON:API over HTTPS, a Bearer API key):
//! checkouts, one subscription's reads and changes, and its invoices. Each call is one
//! request with a timeout; retrying is the caller's decision.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use selextract_config::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::config::LemonSqueezyConfig;
use crate::model::{Invoice, PayloadError, Subscription};

const JSON_API: &str = "application/vnd.api+json";
const TIMEOUT: Duration = Duration::from_secs(15);
/// Error bodies are quoted in logs only this far.
const MAX_ERROR_BODY_CHARS: usize = 300;
/// Invoices of one subscription read per call (the provider's page size cap).
const INVOICE_PAGE_SIZE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("billing is not configured: {0}")]
    NotConfigured(&'static str),
    #[error("request to the billing provider failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("the billing provider answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("the billing provider has no such {0}")]
    NotFound(&'static str),
    #[error("unexpected answer from the billing provider: {0}")]
    Decode(#[from] PayloadError),
}

#[derive(Clone)]
pub struct LemonSqueezyClient {
    http: reqwest::Client,
    base: String,
    api_key: SecretString,
    store_id: u64,
    test_mode: bool,
}

impl std::fmt::Debug for LemonSqueezyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LemonSqueezyClient")
            .field("base", &self.base)
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

impl LemonSqueezyClient {
    pub fn new(config: &LemonSqueezyConfig) -> Result<Self, ClientError> {
        let api_key = config
            .api_key
            .clone()
            .ok_or(ClientError::NotConfigured("billing.lemon_squeezy.api_key"))?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(LemonSqueezyClient {
            http,
            base: config.api_base.trim_end_matches('/').to_owned(),
            api_key,
            store_id: config.store_id,
            test_mode: config.test_mode,
        })
    }

    /// Creates a hosted checkout for `variant_id` that carries `user_id` as custom data (the
    /// provider echoes it in every webhook of the resulting subscription); the checkout URL.
    pub async fn create_checkout(
        &self,
        variant_id: u64,
        user_id: &str,
        email: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut checkout_data = json!({ "custom": { "user_id": user_id } });
        if let Some(email) = email {
            checkout_data["email"] = Value::String(email.to_owned());
        }
        let body = json!({
            "data": {
                "type": "checkouts",
                "attributes": {
                    "checkout_data": checkout_data,
                    "test_mode": self.test_mode,
                },
                "relationships": {
                    "store": { "data": { "type": "stores", "id": self.store_id.to_string() } },
                    "variant": { "data": { "type": "variants", "id": variant_id.to_string() } },
                },
            }
        });
        let answer = self
            .call(Method::POST, "/checkouts", Some(body), "checkout")
            .await?;
        answer
            .pointer("/data/attributes/url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| PayloadError::Missing("data.attributes.url".to_owned()).into())
    }

    pub async fn get_subscription(&self, id: &str) -> Result<Subscription, ClientError> {
        let answer = self
            .call(Method::GET, &subscription_path(id), None, "subscription")
            .await?;
        subscription_of(&answer)
    }

    /// Moves the subscription to another variant (plan change, prorated by the provider).
    pub async fn change_subscription_variant(
        &self,
        id: &str,
        variant_id: u64,
    ) -> Result<Subscription, ClientError> {
        self.patch_subscription(id, json!({ "variant_id": variant_id }))
            .await
    }

    /// Cancels at the end of the paid period (the provider's "grace period").
    pub async fn cancel_subscription(&self, id: &str) -> Result<Subscription, ClientError> {
        let answer = self
            .call(Method::DELETE, &subscription_path(id), None, "subscription")
            .await?;
        subscription_of(&answer)
    }

    /// Undoes a cancellation during the grace period.
    pub async fn resume_subscription(&self, id: &str) -> Result<Subscription, ClientError> {
        self.patch_subscription(id, json!({ "cancelled": false }))
            .await
    }

    /// Changes `attributes` of the subscription (a JSON:API PATCH of its resource).
    async fn patch_subscription(
        &self,
        id: &str,
        attributes: Value,
    ) -> Result<Subscription, ClientError> {
        let body = json!({
            "data": { "type": "subscriptions", "id": id, "attributes": attributes }
        });
        let answer = self
            .call(
                Method::PATCH,
                &subscription_path(id),
                Some(body),
                "subscription",
            )
            .await?;
        subscription_of(&answer)
    }

    /// The subscription's invoices, newest first (one page of up to 100).
    pub async fn list_subscription_invoices(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<Invoice>, ClientError> {
        let path = format!(
            "/subscription-invoices?filter[subscription_id]={}&page[size]={INVOICE_PAGE_SIZE}",
            encode_id(subscription_id)
        );
        let answer = self.call(Method::GET, &path, None, "invoice").await?;
        let items = answer
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| PayloadError::Missing("data".to_owned()))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Invoice::from_resource(item, &format!("data[{i}]")).map_err(Into::into)
            })
            .collect()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &'static str,
    ) -> Result<Value, ClientError> {
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.api_key.expose_secret()))
            .map_err(|_| ClientError::NotConfigured("billing.lemon_squeezy.api_key"))?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(ACCEPT, JSON_API)
            .header(AUTHORIZATION, bearer);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, JSON_API)
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status == StatusCode::NOT_FOUND {
            return Err(ClientError::NotFound(what));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(ClientError::Status {
                status,
                body: text.chars().take(MAX_ERROR_BODY_CHARS).collect(),
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|error| ClientError::Decode(PayloadError::NotJson(error.to_string())))
    }
}

fn subscription_path(id: &str) -> String {
    format!("/subscriptions/{}", encode_id(id))
}

/// Ids come from the provider (digits); anything else is percent-encoded so that it can
/// never change the path.
fn encode_id(id: &str) -> String {
    id.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn subscription_of(answer: &Value) -> Result<Subscription, ClientError> {
    let data = answer
        .get("data")
        .ok_or_else(|| PayloadError::Missing("data".to_owned()))?;
    Ok(Subscription::from_resource(data, "data")?)
}
