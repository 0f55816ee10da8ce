//! The task spec v1 as serde types: what a user writes, with every default filled in.
//!
//! These types describe the *shape* of a task. A value of [`TaskSpec`] may still be
//! semantically invalid (an empty URL list, a bad selector); only
//! [`crate::ValidatedSpec`] promises a task that can run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The canonical task spec, schema version 1 (SPEC §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Schema version; only `1` exists.
    #[serde(default = "default_version")]
    pub version: u32,
    #[serde(default = "default_name")]
    pub name: String,
    pub start_urls: Vec<String>,
    #[serde(default)]
    pub mode: Mode,
    /// One record per element matched by this selector; absent: one record per page.
    #[serde(default)]
    pub item_selector: Option<String>,
    /// How `item_selector` is written; `None` means CSS unless the text starts like an
    /// XPath expression (`/`, `./` or `(`).
    #[serde(default)]
    pub item_selector_type: Option<SelectorType>,
    pub fields: Vec<FieldSpec>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
    #[serde(default)]
    pub rate_limit: RateLimit,
    #[serde(default = "default_true")]
    pub respect_robots_txt: bool,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub cookies: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    #[serde(default = "default_retry_delay_ms")]
    pub retry_delay_ms: u64,
    #[serde(default)]
    pub proxy: ProxySpec,
    #[serde(default)]
    pub browser: BrowserSpec,
    #[serde(default)]
    pub output_format: OutputFormat,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub notify: Option<Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Http,
    Browser,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectorType {
    #[default]
    Css,
    Xpath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    #[default]
    Text,
    Html,
    Attribute,
    Link,
    Image,
}

/// One field of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    pub selector: String,
    #[serde(default)]
    pub selector_type: SelectorType,
    #[serde(default, rename = "type")]
    pub field_type: FieldType,
    /// Attribute to read for `type: attribute` (not needed when an XPath selects an
    /// attribute node).
    #[serde(default)]
    pub attribute: Option<String>,
    #[serde(default)]
    pub multiple: bool,
    #[serde(default = "default_true")]
    pub required: bool,
    /// Value used when an optional field matches nothing.
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub transform: Vec<Transform>,
}

/// One transform step, applied in order to each extracted value.
///
/// Deserialised by hand (below) rather than as an untagged enum, so that a typo gets a
/// message naming the valid choices and an object with an extra key is rejected.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Transform {
    /// `"trim"`, `"lowercase"`, `"uppercase"`, `"number"`, `"integer"`, `"boolean"`.
    Simple(SimpleTransform),
    /// `{"regex": "…"}`: the first match, or capture group 1 when the pattern has one.
    Regex { regex: String },
    /// `{"replace": ["from", "to"]}`: every occurrence of the literal `from`.
    Replace { replace: (String, String) },
    /// `{"date": "%d/%m/%Y"}`: parse with a strftime format, output ISO 8601.
    Date { date: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimpleTransform {
    Trim,
    Lowercase,
    Uppercase,
    Number,
    Integer,
    Boolean,
}

impl<'de> Deserialize<'de> for Transform {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TransformVisitor)
    }
}

/// The key of an object transform; an identifier type, so that an unknown key is
/// reported at its own path (`transform[1].regexp`).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum TransformKey {
    Regex,
    Replace,
    Date,
}

struct TransformVisitor;

impl<'de> serde::de::Visitor<'de> for TransformVisitor {
    type Value = Transform;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(
            "a transform: \"trim\", \"lowercase\", \"uppercase\", \"number\", \"integer\", \"boolean\", \
             or an object with one key \"regex\", \"replace\" or \"date\"",
        )
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Transform, E> {
        use serde::de::IntoDeserializer;
        SimpleTransform::deserialize(name.into_deserializer()).map(Transform::Simple)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Transform, A::Error> {
        let Some(key) = map.next_key::<TransformKey>()? else {
            return Err(serde::de::Error::custom(
                "empty transform object, expected one key: \"regex\", \"replace\" or \"date\"",
            ));
        };
        let transform = match key {
            TransformKey::Regex => Transform::Regex {
                regex: map.next_value()?,
            },
            TransformKey::Replace => Transform::Replace {
                replace: map.next_value()?,
            },
            TransformKey::Date => Transform::Date {
                date: map.next_value()?,
            },
        };
        if map.next_key::<TransformKey>()?.is_some() {
            return Err(serde::de::Error::custom(
                "a transform object has exactly one key",
            ));
        }
        Ok(transform)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    /// Selector of the "next page" link (an `<a href>`); in browser mode it may be a
    /// button, which is clicked.
    #[serde(default)]
    pub next_selector: Option<String>,
    #[serde(default)]
    pub next_selector_type: Option<SelectorType>,
    /// Pages per start URL, the start page included.
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// Pagination stops after a page on which this selector matches.
    #[serde(default)]
    pub stop_selector: Option<String>,
    /// Browser mode: scroll to load more items instead of following a link.
    #[serde(default)]
    pub scroll: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub jitter_ms: u64,
    #[serde(default = "default_concurrency_per_domain")]
    pub concurrency_per_domain: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            requests_per_minute: None,
            delay_ms: 0,
            jitter_ms: 0,
            concurrency_per_domain: default_concurrency_per_domain(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub sticky_session: bool,
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
}

impl Default for ProxySpec {
    fn default() -> Self {
        ProxySpec {
            enabled: false,
            country: None,
            sticky_session: false,
            max_failures: default_max_failures(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserSpec {
    #[serde(default)]
    pub wait_conditions: Vec<WaitCondition>,
    #[serde(default)]
    pub load_images: bool,
    #[serde(default = "default_viewport_width")]
    pub viewport_width: u32,
    #[serde(default = "default_viewport_height")]
    pub viewport_height: u32,
    #[serde(default)]
    pub user_agent: Option<String>,
}

impl Default for BrowserSpec {
    fn default() -> Self {
        BrowserSpec {
            wait_conditions: Vec::new(),
            load_images: false,
            viewport_width: default_viewport_width(),
            viewport_height: default_viewport_height(),
            user_agent: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WaitCondition {
    Element {
        selector: String,
        #[serde(default = "default_wait_ms")]
        timeout_ms: u64,
    },
    Timeout {
        timeout_ms: u64,
    },
    NetworkIdle {
        #[serde(default = "default_wait_ms")]
        timeout_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Json,
    Jsonl,
    Csv,
    Xlsx,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Csv => "csv",
            OutputFormat::Xlsx => "xlsx",
        }
    }
}

/// When a task runs by itself (SPEC §4), and how its runs are compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A cron expression: 5 fields (minute precision) or 6 (seconds first).
    pub cron: String,
    /// The IANA zone whose wall clock `cron` follows.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// A paused schedule (`false`) keeps its settings but does not fire.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// What a tick does while the previous scheduled run is still going.
    #[serde(default)]
    pub overlap: Overlap,
    /// Which ticks missed while the installation was down are run when it is back.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Field whose value identifies a record across runs when diffing.
    #[serde(default)]
    pub key_field: Option<String>,
    /// Fraction of records changed that triggers a `changed` notification.
    #[serde(default)]
    pub change_threshold: Option<f64>,
}

/// The overlap policy: what a tick does while the previous run of the task is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The tick is recorded as skipped; no run.
    #[default]
    Skip,
    /// One run is queued behind the running one (a further tick while one waits is skipped).
    Queue,
    /// The running run is cancelled and a new one started.
    CancelPrevious,
}

/// The catch-up policy after downtime: missed ticks are recorded as missed either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run the latest missed tick once (never all of them).
    #[default]
    Latest,
    /// Run none of the missed ticks; wait for the next one.
    None,
}

/// Where a task's notifications go, and for which events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// A signed JSON webhook.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// A Slack-compatible incoming webhook (`{"text": ...}` body).
    #[serde(default)]
    pub slack_webhook_url: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default = "default_notify_on")]
    pub on: Vec<NotifyEvent>,
}

/// The events a task can notify about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    /// A run completed.
    Completed,
    /// A run failed.
    Failed,
    /// A run finished with some pages or records failing.
    Partial,
    /// A run's records differ from the previous completed run's.
    Changed,
}

fn default_version() -> u32 {
    1
}
fn default_name() -> String {
    "Untitled task".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_max_retries() -> u32 {
    3
}
fn default_retry_delay_ms() -> u64 {
    2_000
}
fn default_max_pages() -> u32 {
    50
}
fn default_concurrency_per_domain() -> u32 {
    8
}
fn default_max_failures() -> u32 {
    3
}
fn default_viewport_width() -> u32 {
    1366
}
fn default_viewport_height() -> u32 {
    900
}
fn default_wait_ms() -> u64 {
    10_000
}
fn default_timezone() -> String {
    "UTC".to_owned()
}
fn default_notify_on() -> Vec<NotifyEvent> {
    vec![
        NotifyEvent::Completed,
        NotifyEvent::Failed,
        NotifyEvent::Partial,
        NotifyEvent::Changed,
    ]
}
