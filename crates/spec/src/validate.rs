//! Semantic validation of a [`TaskSpec`]: every rule of SPEC §2, every error named by the
//! JSON path of the offending value, all errors collected in one pass.

mod browser;
mod compile;
mod fields;
mod limits;
mod request;
mod selectors;

use serde::Serialize;
use url::Url;

use crate::error::{ValidationError, ValidationErrors};
use crate::model::{FieldSpec, Notify, Schedule, TaskSpec};

pub use limits::Limits;

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

/// Normalises `spec` (trims the name and start URLs) and checks every rule, returning all
/// errors found rather than the first.
pub fn validate(mut spec: TaskSpec, limits: &Limits) -> Result<ValidatedSpec, ValidationErrors> {
    normalise(&mut spec);
    let mut errors = Vec::new();
    check_version_and_name(&spec, &mut errors);
    let start_urls = check_start_urls(&spec.start_urls, limits, &mut errors);
    selectors::check_optional_selector(
        &spec.item_selector,
        spec.item_selector_type,
        "item_selector",
        limits,
        &mut errors,
    );
    fields::check_fields(&spec.fields, limits, &mut errors);
    if let Some(pagination) = &spec.pagination {
        selectors::check_pagination(pagination, spec.mode, limits, &mut errors);
    }
    request::check_headers_and_cookies(&spec, limits, &mut errors);
    request::check_request_settings(&spec, &mut errors);
    request::check_rate_limit(&spec.rate_limit, limits, &mut errors);
    browser::check_browser(&spec.browser, limits, &mut errors);
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

pub(super) fn push(
    errors: &mut Vec<ValidationError>,
    path: impl Into<String>,
    message: impl Into<String>,
) {
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
