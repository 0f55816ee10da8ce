//! The provider's objects this service reads — subscriptions, subscription invoices, orders —
//! parsed from JSON:API resource objects (`{"type", "id", "attributes": {…}}`), the same
//! shape in REST answers and webhook bodies. Only the fields used are read; a missing or
//! mistyped one is a [`PayloadError`] naming its JSON path.

use serde_json::Value;

use crate::time::parse_timestamp_ms;

/// A body or object that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("{0}: missing")]
    Missing(String),
    #[error("{field}: expected {expected}")]
    Invalid {
        field: String,
        expected: &'static str,
    },
}

/// Links Lemon Squeezy signs for one subscription; they expire (24 h), so they are read
/// fresh from the API when a user asks, never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionUrls {
    pub customer_portal: Option<String>,
    pub update_payment_method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    pub variant_id: u64,
    /// on_trial, active, paused, past_due, unpaid, cancelled, expired.
    pub status: String,
    pub cancelled: bool,
    /// `pause.mode` when payment collection is paused: `void` or `free`.
    pub pause_mode: Option<String>,
    pub card_brand: Option<String>,
    pub card_last_four: Option<String>,
    pub renews_at_ms: Option<i64>,
    pub ends_at_ms: Option<i64>,
    pub trial_ends_at_ms: Option<i64>,
    pub created_at_ms: i64,
    /// Orders the provider's changes: an older update never overwrites a newer one.
    pub updated_at_ms: i64,
    pub urls: SubscriptionUrls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub subscription_id: String,
    /// pending, paid, void, refunded, partial_refund.
    pub status: String,
    /// initial, renewal, updated.
    pub billing_reason: Option<String>,
    pub refunded: bool,
    /// In the currency's smallest unit (cents).
    pub total: i64,
    pub refunded_amount: i64,
    pub currency: String,
    pub invoice_url: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub status: String,
    pub refunded: bool,
    pub total: i64,
    pub currency: String,
    pub updated_at_ms: i64,
}

/// Whether a subscription in this state gives its user the plan its variant sells, at
/// `now_ms`. Trials, active and past-due subscriptions do (past due is the provider's retry
/// window); a cancelled one does until its `ends_at` (the provider sends `expired` then);
/// a paused one only when its pause mode is `free` (service continues without payment);
/// unpaid and expired ones do not.
pub fn entitles_to_plan(subscription: &Subscription, now_ms: i64) -> bool {
    match subscription.status.as_str() {
        "on_trial" | "active" | "past_due" => true,
        "cancelled" => subscription.ends_at_ms.is_none_or(|ends| ends > now_ms),
        "paused" => subscription.pause_mode.as_deref() == Some("free"),
        _ => false,
    }
}

/// Reads one resource object's fields, naming each by its JSON path in errors.
pub(crate) struct Resource<'a> {
    path: String,
    id: String,
    attributes: &'a serde_json::Map<String, Value>,
}

impl<'a> Resource<'a> {
    /// The resource at `path` (for messages) with its expected `type`.
    pub(crate) fn read(
        value: &'a Value,
        path: &str,
        expected_type: &'static str,
    ) -> Result<Self, PayloadError> {
        let object = value.as_object().ok_or_else(|| PayloadError::Invalid {
            field: path.to_owned(),
            expected: "an object",
        })?;
        let kind = object
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| PayloadError::Missing(format!("{path}.type")))?;
        if kind != expected_type {
            return Err(PayloadError::Invalid {
                field: format!("{path}.type"),
                expected: expected_type,
            });
        }
        let id = object
            .get("id")
            .and_then(id_text)
            .ok_or_else(|| PayloadError::Missing(format!("{path}.id")))?;
        let attributes = object
            .get("attributes")
            .and_then(Value::as_object)
            .ok_or_else(|| PayloadError::Missing(format!("{path}.attributes")))?;
        Ok(Resource {
            path: format!("{path}.attributes"),
            id,
            attributes,
        })
    }

    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.attributes.get(name).filter(|value| !value.is_null())
    }

    fn text(&self, name: &str) -> Result<String, PayloadError> {
        self.opt_text(name)?
            .ok_or_else(|| PayloadError::Missing(self.field(name)))
    }

    fn opt_text(&self, name: &str) -> Result<Option<String>, PayloadError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(PayloadError::Invalid {
                field: self.field(name),
                expected: "a string",
            }),
        }
    }

    /// Ids are integers in attributes; a numeric string is accepted too.
    fn opt_id(&self, name: &str) -> Result<Option<String>, PayloadError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => id_text(value)
                .map(Some)
                .ok_or_else(|| PayloadError::Invalid {
                    field: self.field(name),
                    expected: "an id",
                }),
        }
    }

    fn id(&self, name: &str) -> Result<String, PayloadError> {
        self.opt_id(name)?
            .ok_or_else(|| PayloadError::Missing(self.field(name)))
    }

    fn number(&self, name: &str) -> Result<i64, PayloadError> {
        match self.get(name) {
            None => Err(PayloadError::Missing(self.field(name))),
            Some(value) => value.as_i64().ok_or_else(|| PayloadError::Invalid {
                field: self.field(name),
                expected: "an integer",
            }),
        }
    }

    fn opt_number(&self, name: &str) -> Result<i64, PayloadError> {
        match self.get(name) {
            None => Ok(0),
            Some(_) => self.number(name),
        }
    }

    fn flag(&self, name: &str) -> Result<bool, PayloadError> {
        match self.get(name) {
            None => Ok(false),
            Some(value) => value.as_bool().ok_or_else(|| PayloadError::Invalid {
                field: self.field(name),
                expected: "true or false",
            }),
        }
    }

    fn opt_time(&self, name: &str) -> Result<Option<i64>, PayloadError> {
        match self.opt_text(name)? {
            None => Ok(None),
            Some(text) => {
                parse_timestamp_ms(&text)
                    .map(Some)
                    .ok_or_else(|| PayloadError::Invalid {
                        field: self.field(name),
                        expected: "an ISO 8601 date-time",
                    })
            }
        }
    }

    fn time(&self, name: &str) -> Result<i64, PayloadError> {
        self.opt_time(name)?
            .ok_or_else(|| PayloadError::Missing(self.field(name)))
    }

    fn url(&self, object: &str, name: &str) -> Result<Option<String>, PayloadError> {
        let Some(urls) = self.get(object) else {
            return Ok(None);
        };
        match urls.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(url)) => Ok(Some(url.clone())),
            Some(_) => Err(PayloadError::Invalid {
                field: format!("{}.{name}", self.field(object)),
                expected: "a string",
            }),
        }
    }
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() && text.len() <= 64 => Some(text.clone()),
        Value::Number(number) => number.as_u64().map(|n| n.to_string()),
        _ => None,
    }
}

impl Subscription {
    /// A `subscriptions` resource object at `path`.
    pub fn from_resource(value: &Value, path: &str) -> Result<Self, PayloadError> {
        let r = Resource::read(value, path, "subscriptions")?;
        let variant_id = r.number("variant_id")?;
        let variant_id = u64::try_from(variant_id).map_err(|_| PayloadError::Invalid {
            field: r.field("variant_id"),
            expected: "a positive id",
        })?;
        let pause_mode = match r.get("pause") {
            Some(pause) => pause.get("mode").and_then(Value::as_str).map(str::to_owned),
            None => None,
        };
        Ok(Subscription {
            customer_id: r.opt_id("customer_id")?,
            order_id: r.opt_id("order_id")?,
            variant_id,
            status: r.text("status")?,
            cancelled: r.flag("cancelled")?,
            pause_mode,
            card_brand: r.opt_text("card_brand")?,
            card_last_four: r.opt_text("card_last_four")?,
            renews_at_ms: r.opt_time("renews_at")?,
            ends_at_ms: r.opt_time("ends_at")?,
            trial_ends_at_ms: r.opt_time("trial_ends_at")?,
            created_at_ms: r.time("created_at")?,
            updated_at_ms: r.time("updated_at")?,
            urls: SubscriptionUrls {
                customer_portal: r.url("urls", "customer_portal")?,
                update_payment_method: r.url("urls", "update_payment_method")?,
            },
            id: r.id,
        })
    }
}

impl Invoice {
    /// A `subscription-invoices` resource object at `path`.
    pub fn from_resource(value: &Value, path: &str) -> Result<Self, PayloadError> {
        let r = Resource::read(value, path, "subscription-invoices")?;
        Ok(Invoice {
            subscription_id: r.id("subscription_id")?,
            status: r.text("status")?,
            billing_reason: r.opt_text("billing_reason")?,
            refunded: r.flag("refunded")?,
            total: r.number("total")?,
            refunded_amount: r.opt_number("refunded_amount")?,
            currency: r.text("currency")?,
            invoice_url: r.url("urls", "invoice_url")?,
            created_at_ms: r.time("created_at")?,
            updated_at_ms: r.time("updated_at")?,
            id: r.id,
        })
    }
}

impl Order {
    /// An `orders` resource object at `path`.
    pub fn from_resource(value: &Value, path: &str) -> Result<Self, PayloadError> {
        let r = Resource::read(value, path, "orders")?;
        Ok(Order {
            status: r.text("status")?,
            refunded: r.flag("refunded")?,
            total: r.number("total")?,
            currency: r.text("currency")?,
            updated_at_ms: r.time("updated_at")?,
            id: r.id,
        })
    }
}
