//! End-to-end tests of the `selextract` binary as real processes.

mod admin_setup;
mod browser;
mod cluster;
mod config;
mod hostile;
mod migrate;
mod monitor_notifications;
mod monitors;
mod platform;
mod schedules;
mod scrape;
mod status;
mod support;
mod users;

/// Unix milliseconds now.
pub fn support_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX)
}
