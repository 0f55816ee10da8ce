//! selextract-billing: the Lemon Squeezy side of paid plans (SPEC §6) — the
//! `[billing.lemon_squeezy]` settings, a small REST client for checkouts and subscriptions,
//! webhook signature verification, the payload types of the webhook events this service
//! handles, and the mapping from a subscription's state to the plan it entitles its user to.
//!
//! Architecture invariants:
//! - No SQL and no HTTP server: the store keeps the state, the server routes the requests;
//!   this crate only speaks the provider's language.
//! - A webhook body is trusted only after [`verify_signature`] over the raw bytes, before
//!   any parsing.
//! - Nothing here decides *whether* a change is new: ordering and exactly-once processing
//!   are the store's (it sees every event in one transaction).

#[cfg(feature = "client")]
mod client;
mod config;
mod model;
mod time;
mod webhook;

#[cfg(feature = "client")]
pub use client::{ClientError, LemonSqueezyClient};
pub use config::{DEFAULT_API_BASE, LemonSqueezyConfig};
pub use model::{Invoice, Order, PayloadError, Subscription, SubscriptionUrls, entitles_to_plan};
pub use webhook::{
    EventName, MAX_WEBHOOK_BODY_BYTES, SignatureError, WebhookEvent, WebhookObject, event_key,
    parse_event, sign, verify_signature,
};
