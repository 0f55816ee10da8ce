//! The delivery loop's Prometheus metrics, through the `metrics` facade. Labels are
//! bounded: outcomes and channels, never targets or ids.

use std::time::Duration;

/// Delivery attempts and settlements by `outcome`: `delivered`, `retried`, `failed`,
/// `disabled` (a target disabled), `cancelled` (deliveries of a disabled target).
pub const DELIVERIES_TOTAL: &str = "selextract_webhook_deliveries_total";
/// The time one attempt took, by `channel` (`webhook`, `slack`, `email`).
pub const DELIVERY_DURATION_SECONDS: &str = "selextract_webhook_delivery_duration_seconds";

/// Registers help texts; call once after installing a recorder.
pub fn describe_notify_metrics() {
    metrics::describe_counter!(
        DELIVERIES_TOTAL,
        "Notification delivery outcomes: delivered, retried, failed, disabled (targets), cancelled."
    );
    metrics::describe_histogram!(
        DELIVERY_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time of one notification delivery attempt, by channel."
    );
}

pub(crate) fn count(outcome: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(DELIVERIES_TOTAL, "outcome" => outcome).increment(n);
    }
}

pub(crate) fn attempt_took(channel: &str, elapsed: Duration) {
    let channel = match channel {
        "webhook" => "webhook",
        "slack" => "slack",
        "email" => "email",
        _ => "other",
    };
    metrics::histogram!(DELIVERY_DURATION_SECONDS, "channel" => channel)
        .record(elapsed.as_secs_f64());
}
