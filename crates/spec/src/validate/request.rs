//! How requests are made: headers, cookies, timeouts, retries and the rate limit.

use crate::error::ValidationError;
use crate::model::{RateLimit, TaskSpec};

use super::{Limits, push};

const TIMEOUT_MS_RANGE: (u64, u64) = (100, 300_000);
const MAX_RETRIES: u32 = 10;
const MAX_RETRY_DELAY_MS: u64 = 60_000;
const CONCURRENCY_PER_DOMAIN_RANGE: (u32, u32) = (1, 64);

/// RFC 9110 `tchar`: the characters allowed in header and cookie names.
fn is_http_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// Tabs are allowed in header values; every other control character (CR and LF above all,
/// which would smuggle extra headers) is not.
pub(super) fn has_control_characters(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\t')
}

pub(super) fn check_headers_and_cookies(
    spec: &TaskSpec,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    if spec.headers.len() > limits.max_headers {
        push(
            errors,
            "headers",
            format!(
                "at most {} headers allowed (got {})",
                limits.max_headers,
                spec.headers.len()
            ),
        );
    }
    for (name, value) in &spec.headers {
        let path = format!("headers.{name}");
        if !is_http_token(name) {
            push(
                errors,
                &path,
                "invalid header name (letters, digits and !#$%&'*+-.^_`|~ only)",
            );
        }
        if has_control_characters(value) {
            push(
                errors,
                &path,
                "header value must not contain CR, LF or other control characters",
            );
        }
    }
    for (name, value) in &spec.cookies {
        if name.is_empty() {
            push(errors, "cookies", "cookie names must not be empty");
            continue;
        }
        let path = format!("cookies.{name}");
        if !is_http_token(name) {
            push(
                errors,
                &path,
                "invalid cookie name (letters, digits and !#$%&'*+-.^_`|~ only)",
            );
        }
        if has_control_characters(value) || value.contains(';') {
            push(
                errors,
                &path,
                "cookie value must not contain ';' or control characters",
            );
        }
    }
}

pub(super) fn check_request_settings(spec: &TaskSpec, errors: &mut Vec<ValidationError>) {
    let (min, max) = TIMEOUT_MS_RANGE;
    if !(min..=max).contains(&spec.timeout_ms) {
        push(
            errors,
            "timeout_ms",
            format!("must be between {min} and {max}"),
        );
    }
    if spec.max_retries > MAX_RETRIES {
        push(
            errors,
            "max_retries",
            format!("must be at most {MAX_RETRIES}"),
        );
    }
    if spec.retry_delay_ms > MAX_RETRY_DELAY_MS {
        push(
            errors,
            "retry_delay_ms",
            format!("must be at most {MAX_RETRY_DELAY_MS}"),
        );
    }
}

pub(super) fn check_rate_limit(
    rate_limit: &RateLimit,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    let (min, max) = CONCURRENCY_PER_DOMAIN_RANGE;
    if !(min..=max).contains(&rate_limit.concurrency_per_domain) {
        push(
            errors,
            "rate_limit.concurrency_per_domain",
            format!("must be between {min} and {max}"),
        );
    }
    if rate_limit.requests_per_minute == Some(0) {
        push(
            errors,
            "rate_limit.requests_per_minute",
            "must be at least 1",
        );
    }
    check_at_most(
        rate_limit.requests_per_minute.map_or(0, u64::from),
        u64::from(limits.max_requests_per_minute),
        "rate_limit.requests_per_minute",
        "max_requests_per_minute",
        errors,
    );
    check_at_most(
        rate_limit.delay_ms,
        limits.max_delay_ms,
        "rate_limit.delay_ms",
        "max_delay_ms",
        errors,
    );
    check_at_most(
        rate_limit.jitter_ms,
        limits.max_jitter_ms,
        "rate_limit.jitter_ms",
        "max_jitter_ms",
        errors,
    );
}

/// `value` at `path` must not exceed the operator's `limits.<limit_name>`.
fn check_at_most(
    value: u64,
    limit: u64,
    path: &str,
    limit_name: &str,
    errors: &mut Vec<ValidationError>,
) {
    if value > limit {
        push(
            errors,
            path,
            format!("{value} exceeds the limit of {limit} (limits.{limit_name})"),
        );
    }
}
