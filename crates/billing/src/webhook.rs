//! Webhook deliveries: the `X-Signature` check over the raw body, and the events this
//! service acts on, parsed from Lemon Squeezy's documented payload
//! (`{"meta": {"event_name", "test_mode", "custom_data": {"user_id"}}, "data": {…}}`).

use hmac::{KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::{Invoice, Order, PayloadError, Subscription};

/// Larger bodies are refused before parsing; real deliveries are a few kilobytes.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 1024 * 1024;
/// `custom_data.user_id` longer than this is not one of ours.
const MAX_USER_ID_CHARS: usize = 64;

type HmacSha256 = hmac::Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Signature header")]
    Missing,
    #[error("X-Signature is not a hex SHA-256 HMAC")]
    Malformed,
    #[error("X-Signature does not match the body")]
    Mismatch,
}

/// The hex HMAC-SHA256 of `body` under `secret`: what the provider sends as `X-Signature`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(body);
    to_hex(&mac.finalize().into_bytes())
}

/// Checks `X-Signature` against the raw body, in constant time (the comparison is the MAC
/// crate's `verify_slice`). The body must be the exact bytes received: re-serialised JSON
/// would not match.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let expected = from_hex(header).ok_or(SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = new_mac(secret);
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

fn new_mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (longer ones are hashed), so this cannot fail.
    match <HmacSha256 as KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// The identity of one delivery for exactly-once processing: the SHA-256 of its raw body. A
/// retried or replayed delivery has the same body, hence the same key.
pub fn event_key(body: &[u8]) -> String {
    to_hex(&Sha256::digest(body))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The events this service handles; others are acknowledged and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventName {
    SubscriptionCreated,
    SubscriptionUpdated,
    SubscriptionCancelled,
    SubscriptionResumed,
    SubscriptionExpired,
    SubscriptionPaused,
    SubscriptionUnpaused,
    SubscriptionPaymentSuccess,
    SubscriptionPaymentFailed,
    SubscriptionPaymentRecovered,
    SubscriptionPaymentRefunded,
    OrderRefunded,
    Other(String),
}

impl EventName {
    pub fn parse(name: &str) -> EventName {
        match name {
            "subscription_created" => EventName::SubscriptionCreated,
            "subscription_updated" => EventName::SubscriptionUpdated,
            "subscription_cancelled" => EventName::SubscriptionCancelled,
            "subscription_resumed" => EventName::SubscriptionResumed,
            "subscription_expired" => EventName::SubscriptionExpired,
            "subscription_paused" => EventName::SubscriptionPaused,
            "subscription_unpaused" => EventName::SubscriptionUnpaused,
            "subscription_payment_success" => EventName::SubscriptionPaymentSuccess,
            "subscription_payment_failed" => EventName::SubscriptionPaymentFailed,
            "subscription_payment_recovered" => EventName::SubscriptionPaymentRecovered,
            "subscription_payment_refunded" => EventName::SubscriptionPaymentRefunded,
            "order_refunded" => EventName::OrderRefunded,
            other => EventName::Other(other.to_owned()),
        }
    }

    /// The provider's name (`subscription_created`), also the suffix of the audit event.
    pub fn as_str(&self) -> &str {
        match self {
            EventName::SubscriptionCreated => "subscription_created",
            EventName::SubscriptionUpdated => "subscription_updated",
            EventName::SubscriptionCancelled => "subscription_cancelled",
            EventName::SubscriptionResumed => "subscription_resumed",
            EventName::SubscriptionExpired => "subscription_expired",
            EventName::SubscriptionPaused => "subscription_paused",
            EventName::SubscriptionUnpaused => "subscription_unpaused",
            EventName::SubscriptionPaymentSuccess => "subscription_payment_success",
            EventName::SubscriptionPaymentFailed => "subscription_payment_failed",
            EventName::SubscriptionPaymentRecovered => "subscription_payment_recovered",
            EventName::SubscriptionPaymentRefunded => "subscription_payment_refunded",
            EventName::OrderRefunded => "order_refunded",
            EventName::Other(name) => name,
        }
    }
}

/// The object an event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookObject {
    Subscription(Subscription),
    /// `subscription_payment_*`: a subscription invoice, mapped to its subscription by
    /// `subscription_id`.
    Invoice(Invoice),
    Order(Order),
    /// An event this service does not act on.
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub name: EventName,
    pub test_mode: bool,
    /// `meta.custom_data.user_id`, set by this service when it created the checkout.
    pub user_id: Option<String>,
    pub object: WebhookObject,
}

/// Parses a (verified) delivery. Size, JSON and every field the event's object needs are
/// checked; errors name the JSON path.
pub fn parse_event(body: &[u8]) -> Result<WebhookEvent, PayloadError> {
    if body.len() > MAX_WEBHOOK_BODY_BYTES {
        return Err(PayloadError::TooLarge(MAX_WEBHOOK_BODY_BYTES));
    }
    let root: Value =
        serde_json::from_slice(body).map_err(|error| PayloadError::NotJson(error.to_string()))?;
    let meta = root
        .get("meta")
        .filter(|meta| meta.is_object())
        .ok_or_else(|| PayloadError::Missing("meta".to_owned()))?;
    let name = meta
        .get("event_name")
        .and_then(Value::as_str)
        .ok_or_else(|| PayloadError::Missing("meta.event_name".to_owned()))?;
    let name = EventName::parse(name);
    let test_mode = meta
        .get("test_mode")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let user_id = match meta
        .get("custom_data")
        .and_then(|custom| custom.get("user_id"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_USER_ID_CHARS => {
            Some(id.clone())
        }
        Some(_) => {
            return Err(PayloadError::Invalid {
                field: "meta.custom_data.user_id".to_owned(),
                expected: "a user id string",
            });
        }
    };
    let data = root
        .get("data")
        .ok_or_else(|| PayloadError::Missing("data".to_owned()))?;
    let object = match &name {
        EventName::SubscriptionCreated
        | EventName::SubscriptionUpdated
        | EventName::SubscriptionCancelled
        | EventName::SubscriptionResumed
        | EventName::SubscriptionExpired
        | EventName::SubscriptionPaused
        | EventName::SubscriptionUnpaused => {
            WebhookObject::Subscription(Subscription::from_resource(data, "data")?)
        }
        EventName::SubscriptionPaymentSuccess
        | EventName::SubscriptionPaymentFailed
        | EventName::SubscriptionPaymentRecovered
        | EventName::SubscriptionPaymentRefunded => {
            WebhookObject::Invoice(Invoice::from_resource(data, "data")?)
        }
        EventName::OrderRefunded => WebhookObject::Order(Order::from_resource(data, "data")?),
        EventName::Other(_) => WebhookObject::Ignored,
    };
    Ok(WebhookEvent {
        name,
        test_mode,
        user_id,
        object,
    })
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
