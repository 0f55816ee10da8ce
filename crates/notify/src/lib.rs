//! selextract-notify: what a finished run tells people (SPEC §5). A run's events
//! (`run.completed`, `run.failed`, `run.partial`, `changes.detected`) become outbox rows
//! ([`deliveries_for_run`]) written in the transaction that settles the run; the delivery
//! loop ([`run_deliveries`]) of every worker process sends them — signed JSON webhooks,
//! Slack-compatible incoming webhooks and e-mail — with retries, a delivery log and target
//! health.
//!
//! Architecture invariants:
//! - Nothing is sent from the run's own code path: deliveries are outbox rows first, so a
//!   worker killed after the run's transaction loses nothing, and one killed before it
//!   leaves a running run whose next attempt writes them.
//! - At-least-once: each attempt is made under a lease by exactly one process; a process
//!   killed mid-send leaves a lease that expires and the delivery is sent again. Receivers
//!   deduplicate by `X-Selextract-Delivery` (the delivery id, stable across attempts).
//! - Every webhook request goes through the fetcher's URL guard ([`selextract_fetch::guard`]):
//!   the resolver reqwest connects with returns only allowed addresses, IP-literal hosts are
//!   checked before sending, and redirects are never followed (a 3xx is a permanent failure).
//! - Retries back off exponentially with jitter between `initial_backoff` and
//!   `max_backoff`, until `retry_for` after the event (24 h by default); each attempt is
//!   bounded by `attempt_timeout`, so a receiver that never answers holds one of the
//!   loop's `concurrency` slots for at most that long.
//! - Signing secrets are derived, never stored: HMAC-SHA256 of the installation's webhook
//!   key (32 random bytes in `kv`) and `webhook:{user}:{version}` ([`WebhookSecrets`]).

mod config;
mod deliver;
mod document;
mod email;
mod metrics;
mod secret;
mod signature;
mod slack;
mod sweep;
mod transport;

pub use config::NotifyConfig;
pub use deliver::{NotifyDeps, deliver_due_once, run_deliveries};
pub use document::{
    ChangesDocument, EventDocument, MAX_SAMPLE_ENTRIES, MAX_SAMPLE_ENTRY_BYTES, RunDocument,
    RunEventInput, TaskDocument, attach_change_sample, deliveries_for_run,
};
pub use email::{EmailBodies, event_email, target_disabled_email};
pub use metrics::{DELIVERIES_TOTAL, DELIVERY_DURATION_SECONDS, describe_notify_metrics};
pub use secret::WebhookSecrets;
pub use signature::{
    DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, SignatureError, sign, verify_signature,
};
pub use slack::slack_body;
pub use sweep::sweep_outcomes;
pub use transport::TransportBuildError;
