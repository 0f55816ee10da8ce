//! Semantic validation of a [`TaskSpec`]: every rule of SPEC §2, every error named by the
//! JSON path of the offending value, all errors collected in one pass.

mod browser;
mod compile;
mod fields;
mod limits;
mod request;
mod selectors;

use selextract_schedule::{CronSchedule, ScheduleError};
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
        check_schedule(schedule, &spec.fields, limits, &mut errors);
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

/// How many upcoming fires the minimum-interval check looks at.
const SCHEDULE_INTERVAL_SAMPLE: usize = 16;

fn check_schedule(
    schedule: &Schedule,
    fields: &[FieldSpec],
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    // The scheduler fires with the same parser, so what passes here is what runs.
    match CronSchedule::parse(&schedule.cron, &schedule.timezone) {
        Ok(cron) => check_schedule_interval(&cron, limits, errors),
        Err(error @ ScheduleError::TimeZone(_)) => {
            push(errors, "schedule.timezone", error.to_string());
        }
        Err(error) => {
            push(errors, "schedule.cron", error.to_string());
            // `parse` stops at the expression; check the zone on its own so that both
            // mistakes are reported in one pass ("* * * * *" always parses).
            if let Err(zone_error @ ScheduleError::TimeZone(_)) =
                CronSchedule::parse("* * * * *", &schedule.timezone)
            {
                push(errors, "schedule.timezone", zone_error.to_string());
            }
        }
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

/// Refuses a cron that fires more often than the operator allows, judged by the smallest gap
/// among its next 16 fires from now (the one clock read of validation). Every common cron
/// shows its smallest gap within 16 fires; a rarer one (a spring-forward change bringing two
/// fires together once a year) is not the steady load this limit is for.
fn check_schedule_interval(
    cron: &CronSchedule,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    let Some(interval) = cron.min_interval(chrono::Utc::now(), SCHEDULE_INTERVAL_SAMPLE) else {
        return;
    };
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    if interval_ms < limits.min_schedule_interval_ms {
        push(
            errors,
            "schedule.cron",
            format!(
                "fires {interval_ms} ms apart, more often than the minimum interval of {} ms \
                 (limits.min_schedule_interval_ms)",
                limits.min_schedule_interval_ms
            ),
        );
    }
}

fn check_notify(notify: &Notify, errors: &mut Vec<ValidationError>) {
    if let Some(webhook_url) = &notify.webhook_url
        && parse_http_url(webhook_url).is_none()
    {
        push(errors, "notify.webhook_url", "not an absolute http(s) URL");
    }
    if let Some(slack_webhook_url) = &notify.slack_webhook_url
        && parse_http_url(slack_webhook_url).is_none()
    {
        push(
            errors,
            "notify.slack_webhook_url",
            "not an absolute http(s) URL",
        );
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
