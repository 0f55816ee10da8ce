//! A local fake of the Lemon Squeezy REST API (the part this service uses) on 127.0.0.1:0,
//! and the provider's side of webhooks: it keeps subscriptions and invoices, checks the
//! Bearer key and the JSON:API media types like the real API, records every request for
//! assertions, and sends webhook deliveries signed with its own HMAC (independent of the
//! billing crate's, so the service's check is really tested), with bodies shaped like the
//! provider's documented payloads.
//!
//! Endpoints under `/v1`: `POST /checkouts`, `GET|PATCH|DELETE /subscriptions/{id}`,
//! `GET /subscription-invoices?filter[subscription_id]=ID`.
//!
//! The provider's clock starts at the real time (so `ends_at` a month ahead is in the future
//! for the service too) and every change moves it forward one second, so each state has a
//! later `updated_at` than the one before (tests of ordering rely on it).

#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const JSON_API: &str = "application/vnd.api+json";
/// 2026-01-01T00:00:00Z, for the test of the time format.
#[cfg(test)]
const CLOCK_START_MS: i64 = 1_767_225_600_000;
const MONTH_MS: i64 = 30 * 24 * 3600 * 1000;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct LsRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct FakeState {
    subscriptions: BTreeMap<String, Value>,
    /// Subscription id → the checkout's custom data, echoed in its webhooks.
    custom: BTreeMap<String, Value>,
    invoices: BTreeMap<String, Value>,
    requests: Vec<LsRequest>,
    next_id: u64,
    clock_ms: i64,
}

impl FakeState {
    fn tick(&mut self) -> String {
        self.clock_ms += 1000;
        iso(self.clock_ms)
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }
}

struct Shared {
    api_key: String,
    store_id: u64,
    state: Mutex<FakeState>,
}

pub struct FakeLemonSqueezy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    signing_secret: String,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl Drop for FakeLemonSqueezy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeLemonSqueezy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLemonSqueezy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeLemonSqueezy {
    /// Starts the fake on the current tokio runtime. Requests must carry
    /// `Authorization: Bearer {api_key}`; webhooks are signed with `signing_secret`.
    pub async fn start(api_key: &str, signing_secret: &str, store_id: u64) -> FakeLemonSqueezy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            api_key: api_key.to_owned(),
            store_id,
            state: Mutex::new(FakeState {
                next_id: 1000,
                clock_ms: now_whole_seconds_ms(),
                ..FakeState::default()
            }),
        });
        let router = Router::new()
            .route("/v1/checkouts", post(create_checkout))
            .route(
                "/v1/subscriptions/{id}",
                get(get_subscription)
                    .patch(patch_subscription)
                    .delete(cancel_subscription),
            )
            .route("/v1/subscription-invoices", get(list_invoices))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeLemonSqueezy {
            addr,
            shared,
            signing_secret: signing_secret.to_owned(),
            task,
            http: reqwest::Client::new(),
        }
    }

    /// The `api_base` setting that reaches this fake.
    pub fn api_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<LsRequest> {
        self.lock().requests.clone()
    }

    /// The subscription's attributes as the fake holds them.
    pub fn subscription(&self, id: &str) -> Option<Value> {
        self.lock().subscriptions.get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.shared.state.lock().expect("fake state lock")
    }

    /// The customer pays a checkout: a new active subscription of `variant_id` whose
    /// webhooks carry `{"user_id": user_id}`. Returns its id.
    pub fn create_subscription(&self, user_id: &str, variant_id: u64) -> String {
        let mut state = self.lock();
        let id = state.new_id();
        let now = state.tick();
        let created = state.clock_ms;
        let attributes = json!({
            "store_id": self.shared.store_id,
            "customer_id": 501,
            "order_id": 601,
            "order_item_id": 701,
            "product_id": 801,
            "variant_id": variant_id,
            "product_name": "Selextract",
            "variant_name": format!("Variant {variant_id}"),
            "user_name": "Test Customer",
            "user_email": "customer@example.com",
            "status": "active",
            "status_formatted": "Active",
            "card_brand": "visa",
            "card_last_four": "4242",
            "pause": null,
            "cancelled": false,
            "trial_ends_at": null,
            "billing_anchor": 1,
            "urls": {
                "update_payment_method": format!("https://fake-ls.test/subscription/{id}/payment-details?signature=x"),
                "customer_portal": format!("https://fake-ls.test/billing?customer=501&sub={id}&signature=x"),
                "customer_portal_update_subscription": format!("https://fake-ls.test/billing/{id}/update?signature=x"),
            },
            "renews_at": iso(created + MONTH_MS),
            "ends_at": null,
            "created_at": now,
            "updated_at": now,
            "test_mode": true,
        });
        state.subscriptions.insert(id.clone(), attributes);
        state
            .custom
            .insert(id.clone(), json!({ "user_id": user_id }));
        id
    }

    /// Changes a subscription the way the provider would on its own (a failed renewal, an
    /// expiry): sets `status` (and `ends_at` for cancelled/expired) with a new `updated_at`.
    pub fn set_subscription_status(&self, id: &str, status: &str) {
        let mut state = self.lock();
        let now = state.tick();
        let clock = state.clock_ms;
        let sub = state
            .subscriptions
            .get_mut(id)
            .expect("no such fake subscription");
        sub["status"] = json!(status);
        sub["status_formatted"] = json!(status);
        sub["updated_at"] = json!(now);
        if status == "cancelled" || status == "expired" {
            sub["cancelled"] = json!(true);
            sub["ends_at"] = json!(iso(clock + if status == "expired" { 0 } else { MONTH_MS }));
        }
    }

    /// A paid invoice of the subscription (`billing_reason` initial or renewal). Returns its id.
    pub fn add_invoice(&self, subscription_id: &str, total: i64, billing_reason: &str) -> String {
        let mut state = self.lock();
        let id = state.new_id();
        let now = state.tick();
        let attributes = json!({
            "store_id": self.shared.store_id,
            "subscription_id": subscription_id.parse::<u64>().unwrap_or(0),
            "customer_id": 501,
            "user_name": "Test Customer",
            "user_email": "customer@example.com",
            "billing_reason": billing_reason,
            "card_brand": "visa",
            "card_last_four": "4242",
            "currency": "USD",
            "currency_rate": "1.00000000",
            "status": "paid",
            "status_formatted": "Paid",
            "refunded": false,
            "refunded_at": null,
            "subtotal": total,
            "discount_total": 0,
            "tax": 0,
            "tax_inclusive": false,
            "total": total,
            "refunded_amount": 0,
            "subtotal_usd": total,
            "total_usd": total,
            "urls": { "invoice_url": format!("https://fake-ls.test/invoice/{id}?signature=x") },
            "created_at": now,
            "updated_at": now,
            "test_mode": true,
        });
        state.invoices.insert(id.clone(), attributes);
        id
    }

    /// Refunds an invoice in full.
    pub fn refund_invoice(&self, id: &str) {
        let mut state = self.lock();
        let now = state.tick();
        let invoice = state.invoices.get_mut(id).expect("no such fake invoice");
        invoice["status"] = json!("refunded");
        invoice["status_formatted"] = json!("Refunded");
        invoice["refunded"] = json!(true);
        invoice["refunded_at"] = json!(now);
        invoice["refunded_amount"] = invoice["total"].clone();
        invoice["updated_at"] = json!(now);
    }

    /// A webhook body for a `subscription_*` event about the subscription as it is now.
    pub fn subscription_event(&self, event_name: &str, id: &str) -> String {
        let state = self.lock();
        let attributes = state
            .subscriptions
            .get(id)
            .expect("no such fake subscription");
        let custom = state.custom.get(id).cloned().unwrap_or(Value::Null);
        webhook_body(event_name, custom, "subscriptions", id, attributes)
    }

    /// A webhook body for a `subscription_payment_*` event about the invoice as it is now.
    pub fn invoice_event(&self, event_name: &str, id: &str) -> String {
        let state = self.lock();
        let attributes = state.invoices.get(id).expect("no such fake invoice");
        let subscription = attributes["subscription_id"].to_string();
        let custom = state
            .custom
            .get(&subscription)
            .cloned()
            .unwrap_or(Value::Null);
        webhook_body(event_name, custom, "subscription-invoices", id, attributes)
    }

    /// An `order_refunded` body for the subscription's first order.
    pub fn order_refunded_event(&self, subscription_id: &str) -> String {
        let mut state = self.lock();
        let now = state.tick();
        let custom = state
            .custom
            .get(subscription_id)
            .cloned()
            .unwrap_or(Value::Null);
        let attributes = json!({
            "store_id": self.shared.store_id, "customer_id": 501, "identifier": "fake-order",
            "order_number": 601, "user_name": "Test Customer", "user_email": "customer@example.com",
            "currency": "USD", "currency_rate": "1.0000", "subtotal": 1900, "discount_total": 0,
            "tax": 0, "total": 1900, "subtotal_usd": 1900, "total_usd": 1900,
            "tax_name": null, "tax_rate": "0.00", "status": "refunded", "status_formatted": "Refunded",
            "refunded": true, "refunded_at": now.clone(), "created_at": now.clone(), "updated_at": now,
            "test_mode": true,
        });
        webhook_body("order_refunded", custom, "orders", "601", &attributes)
    }

    /// The `X-Signature` the provider would send for `body`.
    pub fn sign(&self, body: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.signing_secret.as_bytes())
            .expect("HMAC takes any key");
        mac.update(body.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Delivers `body` to `url` signed as the provider does; the status and the answer.
    pub async fn send_webhook(&self, url: &str, body: &str) -> (u16, String) {
        let signature = self.sign(body);
        self.send_webhook_signed(url, body, Some(&signature)).await
    }

    /// Delivers `body` with the given `X-Signature` (or none).
    pub async fn send_webhook_signed(
        &self,
        url: &str,
        body: &str,
        signature: Option<&str>,
    ) -> (u16, String) {
        let event = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["meta"]["event_name"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut request = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-Event-Name", event)
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("X-Signature", signature);
        }
        let response = request.send().await.expect("delivering the webhook");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }
}

fn webhook_body(
    event_name: &str,
    custom: Value,
    kind: &str,
    id: &str,
    attributes: &Value,
) -> String {
    let mut meta = json!({
        "test_mode": true,
        "event_name": event_name,
        "webhook_id": "7b5f3e2c-0000-4000-8000-000000000001",
    });
    if !custom.is_null() {
        meta["custom_data"] = custom;
    }
    json!({
        "meta": meta,
        "data": {
            "type": kind,
            "id": id,
            "attributes": attributes,
            "relationships": {
                "store": { "links": { "related": "https://api.lemonsqueezy.com/v1/x/store" } }
            },
            "links": { "self": format!("https://api.lemonsqueezy.com/v1/{kind}/{id}") },
        }
    })
    .to_string()
}

type Answer = Result<Response, Response>;

fn error(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [("content-type", JSON_API)],
        json!({ "jsonapi": { "version": "1.0" }, "errors": [{ "detail": detail, "status": status.as_u16().to_string() }] })
            .to_string(),
    )
        .into_response()
}

fn document(status: StatusCode, data: Value) -> Response {
    (
        status,
        [("content-type", JSON_API)],
        json!({ "jsonapi": { "version": "1.0" }, "data": data }).to_string(),
    )
        .into_response()
}

/// Records the request, then checks the key and the media types like the real API.
// The error is the response to send back; its size does not matter in a test fake.
#[allow(clippy::result_large_err)]
fn admit(
    shared: &Shared,
    method: Method,
    path: String,
    query: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let parsed = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::String("<not json>".to_owned()))
    };
    let authorization = header("authorization");
    let content_type = header("content-type");
    shared
        .state
        .lock()
        .expect("fake state lock")
        .requests
        .push(LsRequest {
            method: method.to_string(),
            path,
            query: query.unwrap_or_default(),
            authorization: authorization.clone(),
            content_type: content_type.clone(),
            body: parsed.clone(),
        });
    if authorization.as_deref() != Some(&format!("Bearer {}", shared.api_key)) {
        return Err(error(StatusCode::UNAUTHORIZED, "Unauthenticated."));
    }
    if header("accept").as_deref() != Some(JSON_API) {
        return Err(error(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must be application/vnd.api+json",
        ));
    }
    if !body.is_empty() && content_type.as_deref() != Some(JSON_API) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/vnd.api+json",
        ));
    }
    Ok(parsed)
}

fn subscription_resource(id: &str, attributes: &Value) -> Value {
    json!({ "type": "subscriptions", "id": id, "attributes": attributes })
}

async fn create_checkout(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = admit(
        &shared,
        Method::POST,
        "/v1/checkouts".into(),
        None,
        &headers,
        &body,
    )?;
    let data = &body["data"];
    if data["type"] != "checkouts" {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "data.type must be checkouts",
        ));
    }
    let store = data["relationships"]["store"]["data"]["id"]
        .as_str()
        .unwrap_or_default();
    let variant = data["relationships"]["variant"]["data"]["id"]
        .as_str()
        .unwrap_or_default();
    if store != shared.store_id.to_string() || variant.parse::<u64>().is_err() {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "store and variant relationships are required",
        ));
    }
    let mut state = shared.state.lock().expect("fake state lock");
    let id = format!("00000000-0000-4000-8000-{:012}", state.new_id());
    let now = state.tick();
    let attributes = json!({
        "store_id": shared.store_id,
        "variant_id": variant.parse::<u64>().unwrap_or(0),
        "checkout_data": data["attributes"]["checkout_data"].clone(),
        "test_mode": data["attributes"]["test_mode"].clone(),
        "url": format!("https://fake-ls.test/checkout/buy/{id}?signature=x"),
        "created_at": now,
        "updated_at": now,
    });
    Ok(document(
        StatusCode::CREATED,
        json!({ "type": "checkouts", "id": id, "attributes": attributes }),
    ))
}

async fn get_subscription(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    admit(
        &shared,
        Method::GET,
        format!("/v1/subscriptions/{id}"),
        None,
        &headers,
        &body,
    )?;
    let state = shared.state.lock().expect("fake state lock");
    match state.subscriptions.get(&id) {
        Some(attributes) => Ok(document(
            StatusCode::OK,
            subscription_resource(&id, attributes),
        )),
        None => Err(error(StatusCode::NOT_FOUND, "Not found.")),
    }
}

async fn patch_subscription(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = admit(
        &shared,
        Method::PATCH,
        format!("/v1/subscriptions/{id}"),
        None,
        &headers,
        &body,
    )?;
    if body["data"]["type"] != "subscriptions" || body["data"]["id"] != id.as_str() {
        return Err(error(
            StatusCode::CONFLICT,
            "data.type and data.id must match the URL",
        ));
    }
    let mut state = shared.state.lock().expect("fake state lock");
    if !state.subscriptions.contains_key(&id) {
        return Err(error(StatusCode::NOT_FOUND, "Not found."));
    }
    let now = state.tick();
    let changes = &body["data"]["attributes"];
    let sub = state.subscriptions.get_mut(&id).expect("checked above");
    if let Some(variant) = changes["variant_id"].as_u64() {
        sub["variant_id"] = json!(variant);
    }
    if changes["cancelled"] == false {
        if sub["status"] == "expired" {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "An expired subscription cannot be resumed.",
            ));
        }
        sub["cancelled"] = json!(false);
        sub["status"] = json!("active");
        sub["ends_at"] = Value::Null;
    }
    sub["updated_at"] = json!(now);
    Ok(document(StatusCode::OK, subscription_resource(&id, sub)))
}

async fn cancel_subscription(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    admit(
        &shared,
        Method::DELETE,
        format!("/v1/subscriptions/{id}"),
        None,
        &headers,
        &body,
    )?;
    let mut state = shared.state.lock().expect("fake state lock");
    if !state.subscriptions.contains_key(&id) {
        return Err(error(StatusCode::NOT_FOUND, "Not found."));
    }
    let now = state.tick();
    let sub = state.subscriptions.get_mut(&id).expect("checked above");
    sub["cancelled"] = json!(true);
    sub["status"] = json!("cancelled");
    sub["ends_at"] = sub["renews_at"].clone();
    sub["updated_at"] = json!(now);
    Ok(document(StatusCode::OK, subscription_resource(&id, sub)))
}

async fn list_invoices(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    admit(
        &shared,
        Method::GET,
        "/v1/subscription-invoices".into(),
        query.clone(),
        &headers,
        &body,
    )?;
    let filter = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "filter[subscription_id]")
        .map(|(_, value)| value.into_owned());
    let state = shared.state.lock().expect("fake state lock");
    let mut items: Vec<Value> = state
        .invoices
        .iter()
        .filter(|(_, attributes)| {
            filter
                .as_deref()
                .is_none_or(|wanted| attributes["subscription_id"].as_u64().map(|id| id.to_string()).as_deref() == Some(wanted))
        })
        .map(|(id, attributes)| json!({ "type": "subscription-invoices", "id": id, "attributes": attributes }))
        .collect();
    items.reverse();
    Ok(document(StatusCode::OK, Value::Array(items)))
}

/// Now in unix milliseconds, whole seconds (the provider's times have no milliseconds).
fn now_whole_seconds_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("a 64-bit time") * 1000
}

/// Unix milliseconds as the provider writes times (`2026-01-01T00:00:05.000000Z`).
fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn provider_times_are_iso_8601() {
        assert_eq!(
            super::iso(super::CLOCK_START_MS),
            "2026-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            super::iso(951_782_400_000 + 86_399_000),
            "2000-02-29T23:59:59.000000Z"
        );
    }
}
