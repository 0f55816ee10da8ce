//! Semantic validation of a [`TaskSpec`]: every rule of SPEC §2, every error named by the
//! JSON path of the offending value, all errors collected in one pass.

mod compile;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{ValidationError, ValidationErrors};
use crate::model::{
    BrowserSpec, FieldSpec, FieldType, Mode, Notify, Pagination, RateLimit, Schedule, TaskSpec,
    Transform, WaitCondition,
};
use crate::selector_is_xpath;

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
        }
    }
}

/// A task spec that passed [`validate`]: the only way to get one, so code that holds a
/// `ValidatedSpec` never re-checks selectors, URLs or limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedSpec {
    spec: TaskSpec,
    start_urls: Vec<Url>,
    limits: Limits,
}

impl ValidatedSpec {
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    /// The start URLs, parsed; same order as `spec().start_urls`.
    pub fn start_urls(&self) -> &[Url] {
        &self.start_urls
    }

    /// The limits this spec was validated against; consumers enforce these at run time.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn into_spec(self) -> TaskSpec {
        self.spec
    }
}

impl Serialize for ValidatedSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

const MAX_NAME_CHARS: usize = 200;
const TIMEOUT_MS_RANGE: (u64, u64) = (100, 300_000);
const MAX_RETRIES: u32 = 10;
const MAX_RETRY_DELAY_MS: u64 = 60_000;
const CONCURRENCY_PER_DOMAIN_RANGE: (u32, u32) = (1, 64);
const VIEWPORT_RANGE: (u32, u32) = (100, 10_000);
const MAX_WAIT_MS: u64 = 120_000;

/// Normalises `spec` (trims the name and start URLs) and checks every rule, returning all
/// errors found rather than the first.
pub fn validate(mut spec: TaskSpec, limits: &Limits) -> Result<ValidatedSpec, ValidationErrors> {
    normalise(&mut spec);
    let mut errors = Vec::new();
    check_version_and_name(&spec, &mut errors);
    let start_urls = check_start_urls(&spec.start_urls, limits, &mut errors);
    check_optional_selector(
        &spec.item_selector,
        selector_is_xpath_opt(&spec.item_selector, spec.item_selector_type),
        "item_selector",
        &mut errors,
    );
    check_fields(&spec.fields, limits, &mut errors);
    if let Some(pagination) = &spec.pagination {
        check_pagination(pagination, spec.mode, limits, &mut errors);
    }
    check_headers_and_cookies(&spec, limits, &mut errors);
    check_request_settings(&spec, &mut errors);
    check_rate_limit(&spec.rate_limit, &mut errors);
    check_browser(&spec.browser, &mut errors);
    if let Some(schedule) = &spec.schedule {
        check_schedule(schedule, &spec.fields, &mut errors);
    }
    if let Some(notify) = &spec.notify {
        check_notify(notify, &mut errors);
    }
    if errors.is_empty() {
        Ok(ValidatedSpec {
            spec,
            start_urls,
            limits: *limits,
        })
    } else {
        Err(ValidationErrors(errors))
    }
}

/// Whitespace around a URL or a name is a copy-paste accident, never meaningful.
fn normalise(spec: &mut TaskSpec) {
    let trimmed_name = spec.name.trim();
    if trimmed_name.len() != spec.name.len() {
        spec.name = trimmed_name.to_owned();
    }
    for url in &mut spec.start_urls {
        let trimmed = url.trim();
        if trimmed.len() != url.len() {
            *url = trimmed.to_owned();
        }
    }
}

fn push(errors: &mut Vec<ValidationError>, path: impl Into<String>, message: impl Into<String>) {
    errors.push(ValidationError::new(path, message));
}

fn check_version_and_name(spec: &TaskSpec, errors: &mut Vec<ValidationError>) {
    if spec.version != 1 {
        push(
            errors,
            "version",
            format!("unsupported version {} (only 1 exists)", spec.version),
        );
    }
    if spec.name.is_empty() {
        push(errors, "name", "must not be empty");
    } else if spec.name.chars().count() > MAX_NAME_CHARS {
        push(
            errors,
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        );
    }
}

fn check_start_urls(
    urls: &[String],
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) -> Vec<Url> {
    if urls.is_empty() {
        push(errors, "start_urls", "must contain at least 1 URL");
    } else if urls.len() > limits.max_start_urls {
        push(
            errors,
            "start_urls",
            format!(
                "at most {} URLs allowed (got {})",
                limits.max_start_urls,
                urls.len()
            ),
        );
    }
    let mut parsed = Vec::with_capacity(urls.len());
    for (index, url) in urls.iter().enumerate() {
        match parse_http_url(url) {
            Some(url) => parsed.push(url),
            None => push(
                errors,
                format!("start_urls[{index}]"),
                "not an absolute http(s) URL",
            ),
        }
    }
    parsed
}

/// An absolute `http`/`https` URL with a host, or `None`.
fn parse_http_url(text: &str) -> Option<Url> {
    let url = Url::parse(text.trim()).ok()?;
    let has_host = url.host_str().is_some_and(|host| !host.is_empty());
    (matches!(url.scheme(), "http" | "https") && has_host).then_some(url)
}

fn selector_is_xpath_opt(selector: &Option<String>, explicit: Option<crate::SelectorType>) -> bool {
    selector
        .as_deref()
        .is_some_and(|selector| selector_is_xpath(selector, explicit))
}

fn check_optional_selector(
    selector: &Option<String>,
    is_xpath: bool,
    path: &str,
    errors: &mut Vec<ValidationError>,
) {
    if let Some(selector) = selector {
        check_selector(selector, is_xpath, path, errors);
    }
}

fn check_selector(selector: &str, is_xpath: bool, path: &str, errors: &mut Vec<ValidationError>) {
    if let Some(problem) = compile::selector_problem(selector, is_xpath) {
        push(errors, path, problem);
    }
}

fn check_fields(fields: &[FieldSpec], limits: &Limits, errors: &mut Vec<ValidationError>) {
    if fields.is_empty() {
        push(errors, "fields", "must contain at least 1 field");
    } else if fields.len() > limits.max_fields {
        push(
            errors,
            "fields",
            format!(
                "at most {} fields allowed (got {})",
                limits.max_fields,
                fields.len()
            ),
        );
    }
    let mut seen_names = HashSet::new();
    for (index, field) in fields.iter().enumerate() {
        let path = format!("fields[{index}]");
        if field.name.trim().is_empty() {
            push(errors, format!("{path}.name"), "must not be empty");
        } else if !seen_names.insert(field.name.as_str()) {
            push(
                errors,
                format!("{path}.name"),
                format!("duplicate field name {:?}", field.name),
            );
        }
        check_field(field, &path, errors);
    }
}

fn check_field(field: &FieldSpec, path: &str, errors: &mut Vec<ValidationError>) {
    let is_xpath = selector_is_xpath(&field.selector, Some(field.selector_type));
    check_selector(
        &field.selector,
        is_xpath,
        &format!("{path}.selector"),
        errors,
    );
    let has_attribute = field
        .attribute
        .as_deref()
        .is_some_and(|attribute| !attribute.trim().is_empty());
    if field.field_type == FieldType::Attribute && !has_attribute && !is_xpath {
        push(
            errors,
            format!("{path}.attribute"),
            "required when type is \"attribute\"",
        );
    } else if field.attribute.is_some() && !has_attribute {
        push(errors, format!("{path}.attribute"), "must not be empty");
    }
    if field.default.is_some() && field.required {
        push(
            errors,
            format!("{path}.default"),
            "only allowed when \"required\" is false",
        );
    }
    for (index, transform) in field.transform.iter().enumerate() {
        check_transform(transform, &format!("{path}.transform[{index}]"), errors);
    }
}

fn check_transform(transform: &Transform, path: &str, errors: &mut Vec<ValidationError>) {
    match transform {
        Transform::Simple(_) => {}
        Transform::Regex { regex } => {
            if let Some(problem) = compile::regex_problem(regex) {
                push(errors, format!("{path}.regex"), problem);
            }
        }
        Transform::Replace { replace: (from, _) } => {
            // Replacing the empty string would insert the replacement between every character.
            if from.is_empty() {
                push(errors, format!("{path}.replace[0]"), "must not be empty");
            }
        }
        Transform::Date { date } => {
            if date.trim().is_empty() {
                push(errors, format!("{path}.date"), "must not be empty");
            }
        }
    }
}

fn check_pagination(
    pagination: &Pagination,
    mode: Mode,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    let max = limits.max_pages_per_start_url;
    if pagination.max_pages == 0 || pagination.max_pages > max {
        push(
            errors,
            "pagination.max_pages",
            format!("must be between 1 and {max}"),
        );
    }
    check_optional_selector(
        &pagination.next_selector,
        selector_is_xpath_opt(&pagination.next_selector, pagination.next_selector_type),
        "pagination.next_selector",
        errors,
    );
    check_optional_selector(
        &pagination.stop_selector,
        selector_is_xpath_opt(&pagination.stop_selector, None),
        "pagination.stop_selector",
        errors,
    );
    if pagination.scroll && mode == Mode::Http {
        push(
            errors,
            "pagination.scroll",
            "only allowed when mode is \"browser\" or \"auto\"",
        );
    }
}

/// RFC 9110 `tchar`: the characters allowed in header and cookie names.
fn is_http_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// Tabs are allowed in header values; every other control character (CR and LF above all,
/// which would smuggle extra headers) is not.
fn has_control_characters(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\t')
}

fn check_headers_and_cookies(spec: &TaskSpec, limits: &Limits, errors: &mut Vec<ValidationError>) {
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

fn check_request_settings(spec: &TaskSpec, errors: &mut Vec<ValidationError>) {
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

fn check_rate_limit(rate_limit: &RateLimit, errors: &mut Vec<ValidationError>) {
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
}

fn check_browser(browser: &BrowserSpec, errors: &mut Vec<ValidationError>) {
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
    for (index, condition) in browser.wait_conditions.iter().enumerate() {
        let path = format!("browser.wait_conditions[{index}]");
        let timeout_ms = match condition {
            WaitCondition::Element {
                selector,
                timeout_ms,
            } => {
                // The browser waits with `document.querySelector`, which only speaks CSS.
                check_selector(selector, false, &format!("{path}.selector"), errors);
                *timeout_ms
            }
            WaitCondition::Timeout { timeout_ms } | WaitCondition::NetworkIdle { timeout_ms } => {
                *timeout_ms
            }
        };
        if timeout_ms > MAX_WAIT_MS {
            push(
                errors,
                format!("{path}.timeout_ms"),
                format!("must be at most {MAX_WAIT_MS}"),
            );
        }
    }
}

fn check_schedule(schedule: &Schedule, fields: &[FieldSpec], errors: &mut Vec<ValidationError>) {
    let cron_fields = schedule.cron.split_whitespace().count();
    if !(5..=6).contains(&cron_fields) {
        push(
            errors,
            "schedule.cron",
            format!("must have 5 or 6 whitespace-separated fields (got {cron_fields})"),
        );
    }
    if schedule.timezone.trim().is_empty() {
        push(errors, "schedule.timezone", "must not be empty");
    }
    if let Some(key_field) = &schedule.key_field
        && !fields.iter().any(|field| &field.name == key_field)
    {
        push(
            errors,
            "schedule.key_field",
            format!("no field named {key_field:?}"),
        );
    }
    if let Some(threshold) = schedule.change_threshold
        && !(0.0..=1.0).contains(&threshold)
    {
        push(
            errors,
            "schedule.change_threshold",
            "must be between 0 and 1",
        );
    }
}

fn check_notify(notify: &Notify, errors: &mut Vec<ValidationError>) {
    if let Some(webhook_url) = &notify.webhook_url
        && parse_http_url(webhook_url).is_none()
    {
        push(errors, "notify.webhook_url", "not an absolute http(s) URL");
    }
    if let Some(email) = &notify.email
        && !looks_like_email(email)
    {
        push(errors, "notify.email", "not an e-mail address");
    }
}

/// Deliberately loose: exactly one `@` with something on both sides and no whitespace.
/// The SMTP server is the real judge.
fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    }
}
