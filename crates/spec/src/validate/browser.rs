//! Browser settings: viewport, user agent and the wait conditions.

use crate::error::ValidationError;
use crate::model::{BrowserSpec, WaitCondition};

use super::request::has_control_characters;
use super::selectors::check_selector;
use super::{Limits, push};

const VIEWPORT_RANGE: (u32, u32) = (100, 10_000);
const MAX_WAIT_MS: u64 = 120_000;

pub(super) fn check_browser(
    browser: &BrowserSpec,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    let (min, max) = VIEWPORT_RANGE;
    if !(min..=max).contains(&browser.viewport_width) {
        push(
            errors,
            "browser.viewport_width",
            format!("must be between {min} and {max}"),
        );
    }
    if !(min..=max).contains(&browser.viewport_height) {
        push(
            errors,
            "browser.viewport_height",
            format!("must be between {min} and {max}"),
        );
    }
    if browser
        .user_agent
        .as_deref()
        .is_some_and(has_control_characters)
    {
        push(
            errors,
            "browser.user_agent",
            "must not contain control characters",
        );
    }
    check_wait_conditions(&browser.wait_conditions, limits, errors);
}

/// Each condition, their number and their total wait: a page waits for its conditions one
/// after another, so the sum of their timeouts is the longest a page can hold a browser.
fn check_wait_conditions(
    conditions: &[WaitCondition],
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    if conditions.len() > limits.max_wait_conditions {
        // Not checked one by one: their number is what is refused.
        push(
            errors,
            "browser.wait_conditions",
            format!(
                "{} conditions exceed the limit of {} (limits.max_wait_conditions)",
                conditions.len(),
                limits.max_wait_conditions
            ),
        );
        return;
    }
    let mut total_wait_ms = 0u64;
    for (index, condition) in conditions.iter().enumerate() {
        let path = format!("browser.wait_conditions[{index}]");
        let timeout_ms = match condition {
            WaitCondition::Element {
                selector,
                timeout_ms,
            } => {
                // The browser waits with `document.querySelector`, which only speaks CSS.
                check_selector(selector, false, &format!("{path}.selector"), limits, errors);
                *timeout_ms
            }
            WaitCondition::Timeout { timeout_ms } | WaitCondition::NetworkIdle { timeout_ms } => {
                *timeout_ms
            }
        };
        total_wait_ms = total_wait_ms.saturating_add(timeout_ms);
        if timeout_ms > MAX_WAIT_MS {
            push(
                errors,
                format!("{path}.timeout_ms"),
                format!("must be at most {MAX_WAIT_MS}"),
            );
        }
    }
    if total_wait_ms > limits.max_total_wait_ms {
        push(
            errors,
            "browser.wait_conditions",
            format!(
                "the timeouts add up to {total_wait_ms} ms, more than the limit of {} ms (limits.max_total_wait_ms)",
                limits.max_total_wait_ms
            ),
        );
    }
}
