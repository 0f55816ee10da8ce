//! The installation-wide limits a task is validated against.

use serde::{Deserialize, Serialize};

/// Installation-wide limits a task must stay within (SPEC §2, configurable by the operator
/// under `[limits]`). They bound everything a task can make the service spend: parse depth,
/// memory per value and page, waiting, and run time. A [`ValidatedSpec`] carries the limits
/// it was validated against, so the extractor, the engine and the browser enforce the same
/// numbers the API checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_start_urls: usize,
    pub max_fields: usize,
    pub max_pages_per_start_url: u32,
    pub max_headers: usize,
    /// Bytes of one selector (CSS or XPath), checked before any parser sees it.
    pub max_selector_bytes: usize,
    /// Nesting depth of one selector: brackets and parentheses (`((…))`, `[…[…]]`,
    /// `:not(:is(…))`), checked before any parser sees it.
    pub max_selector_depth: usize,
    /// Transform steps of one field.
    pub max_transforms: usize,
    /// Bytes of one regular-expression pattern.
    pub max_regex_bytes: usize,
    /// Bytes of one extracted value (after transforms); a longer value fails its page as
    /// `records_too_large`.
    pub max_value_bytes: usize,
    /// Bytes of one record (its JSON); a larger record fails its page as `records_too_large`.
    pub max_record_bytes: usize,
    /// Bytes of all records of one page (their JSON); more fails the page as
    /// `records_too_large`.
    pub max_page_records_bytes: usize,
    /// Maximum `rate_limit.delay_ms`.
    pub max_delay_ms: u64,
    /// Maximum `rate_limit.jitter_ms`.
    pub max_jitter_ms: u64,
    /// Maximum `rate_limit.requests_per_minute`.
    pub max_requests_per_minute: u32,
    /// Browser `wait_conditions` per task.
    pub max_wait_conditions: usize,
    /// Sum of the `timeout_ms` of a task's `wait_conditions`: the longest a page may wait.
    pub max_total_wait_ms: u64,
    /// Snapshots one browser render may return (in-page pagination: clicks, scrolling).
    pub max_snapshots: u32,
    /// Bytes of one browser DOM snapshot (the `max_body_bytes` of browser mode); a larger
    /// snapshot fails its page as `body_too_large`.
    pub max_snapshot_bytes: usize,
    /// Longest a run may take; then it stops fetching and ends `partial` (or `failed` when
    /// nothing succeeded) with reason `time_limit`.
    pub max_run_seconds: u64,
    /// Work one page's extraction may do, in steps: an element or node visited by a
    /// selector, a text or inner-HTML walk or an XPath evaluation, and the parser's own
    /// work estimated before parsing (html5ever rescans the open elements for nested
    /// blocks, which is quadratic in their depth). A page that needs more fails as
    /// `extraction_too_costly`; ordinary pages use well under a hundredth of it.
    pub max_extraction_steps: u64,
    /// The shortest gap a schedule's cron may leave between two fires, in milliseconds
    /// (sampled over its next 16 fires); `1000` allows every second.
    pub min_schedule_interval_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_start_urls: 10_000,
            max_fields: 50,
            max_pages_per_start_url: 10_000,
            max_headers: 20,
            max_selector_bytes: 4_096,
            max_selector_depth: 32,
            max_transforms: 20,
            max_regex_bytes: 2_048,
            max_value_bytes: 1024 * 1024,
            max_record_bytes: 4 * 1024 * 1024,
            max_page_records_bytes: 32 * 1024 * 1024,
            max_delay_ms: 60_000,
            max_jitter_ms: 60_000,
            max_requests_per_minute: 60_000,
            max_wait_conditions: 10,
            max_total_wait_ms: 120_000,
            max_snapshots: 200,
            max_snapshot_bytes: 16 * 1024 * 1024,
            max_run_seconds: 6 * 60 * 60,
            max_extraction_steps: 10_000_000,
            min_schedule_interval_ms: 1_000,
        }
    }
}
