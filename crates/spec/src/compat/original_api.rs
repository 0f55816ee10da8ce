//! The original platform's API shape (`{"name", "task_type", "priority", "config": {…}}`)
//! rewritten as canonical spec v1 JSON.
//!
//! Its selectors are CSS, and its fields are optional: the original platform kept a record
//! even when a selector matched nothing.

use serde_json::{Map, Value, json};

use super::{Conversion, PathMap, describe, join_path, present};

const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "task_type",
    "priority",
    "start",
    "config",
];
const CONFIG_KEYS: &[&str] = &[
    "urls",
    "url",
    "selectors",
    "output_format",
    "javascript_enabled",
    "wait_for_selector",
    "custom_headers",
    "cookies",
    "schedule",
    "max_pages",
    "pagination",
    "next_page_selector",
    "delay",
    "timeout",
    "proxy",
    "use_proxy",
    "item_selector",
    "container_selector",
];
const SELECTOR_OBJECT_KEYS: &[&str] = &["selector", "type", "attribute", "multiple"];
const PAGINATION_OBJECT_KEYS: &[&str] = &["enabled", "next_selector", "max_pages"];
const TASK_TYPES: &[&str] = &[
    "simple_scraping",
    "advanced_scraping",
    "bulk_scraping",
    "monitoring",
];

pub(super) fn convert(object: &Map<String, Value>) -> Conversion {
    let mut conversion = Conversion::new(PathMap::converted());
    conversion.reject_unknown_keys(object, TOP_LEVEL_KEYS, "");
    conversion.take_creation_options(object);
    if let Some(name) = present(object, "name") {
        conversion.canonical.insert("name".to_owned(), name.clone());
    }
    // The canonical spec has no description; it is checked, then dropped.
    if let Some(description) = present(object, "description") {
        conversion.expect_str(description, "description");
    }
    let is_monitoring = read_task_type(&mut conversion, object) == Some("monitoring");
    let Some(config) = present(object, "config") else {
        conversion.error("$", "missing field `config`");
        return conversion;
    };
    let Some(config) = conversion.expect_object(config, "config") else {
        return conversion;
    };
    conversion.reject_unknown_keys(config, CONFIG_KEYS, "config");
    convert_urls(&mut conversion, config);
    convert_selectors(&mut conversion, config);
    convert_item_selector(&mut conversion, config);
    convert_pagination(&mut conversion, config);
    convert_mode_and_browser(&mut conversion, config);
    convert_schedule(&mut conversion, config, is_monitoring);
    convert_request_settings(&mut conversion, config);
    conversion
}

fn read_task_type<'a>(
    conversion: &mut Conversion,
    object: &'a Map<String, Value>,
) -> Option<&'a str> {
    let task_type = conversion.expect_str(present(object, "task_type")?, "task_type")?;
    if TASK_TYPES.contains(&task_type) {
        Some(task_type)
    } else {
        conversion.error(
            "task_type",
            format!(
                "unknown task type {task_type:?}, expected one of {}",
                TASK_TYPES.join(", ")
            ),
        );
        None
    }
}

fn convert_urls(conversion: &mut Conversion, config: &Map<String, Value>) {
    let Some((path, urls)) = conversion.one_of(config, &["urls", "url"], "config") else {
        conversion.error("config", "missing field `urls` (or `url`)");
        return;
    };
    let start_urls = match urls {
        // A lone string is one URL, whichever key it came under.
        Value::String(_) => {
            conversion.paths.collapse("start_urls", &path);
            Value::Array(vec![urls.clone()])
        }
        _ => {
            conversion.paths.rename("start_urls", &path);
            urls.clone()
        }
    };
    conversion
        .canonical
        .insert("start_urls".to_owned(), start_urls);
}

fn convert_selectors(conversion: &mut Conversion, config: &Map<String, Value>) {
    let Some(selectors) = present(config, "selectors") else {
        conversion.error("config", "missing field `selectors`");
        return;
    };
    let Some(selectors) = conversion.expect_object(selectors, "config.selectors") else {
        return;
    };
    conversion.paths.rename("fields", "config.selectors");
    let mut fields = Vec::with_capacity(selectors.len());
    for (index, (name, selector)) in selectors.iter().enumerate() {
        let path = join_path("config.selectors", name);
        conversion.paths.rename(format!("fields[{index}]"), &path);
        if let Some(field) = convert_selector(conversion, name, selector, &path) {
            fields.push(Value::Object(field));
        }
    }
    conversion
        .canonical
        .insert("fields".to_owned(), Value::Array(fields));
}

/// One entry of `config.selectors`: a CSS selector string, or an object with `selector`
/// and optional `type`, `attribute` and `multiple`.
fn convert_selector(
    conversion: &mut Conversion,
    name: &str,
    selector: &Value,
    path: &str,
) -> Option<Map<String, Value>> {
    let mut field = Map::new();
    field.insert("name".to_owned(), Value::from(name));
    match selector {
        Value::String(_) => {
            field.insert("selector".to_owned(), selector.clone());
        }
        Value::Object(object) => {
            conversion.reject_unknown_keys(object, SELECTOR_OBJECT_KEYS, path);
            let Some(selector) = present(object, "selector") else {
                conversion.error(path, "missing field `selector`");
                return None;
            };
            field.insert("selector".to_owned(), selector.clone());
            if let Some(field_type) = present(object, "type") {
                let field_type =
                    conversion.convert_field_type(field_type, &join_path(path, "type"))?;
                field.insert("type".to_owned(), field_type);
            }
            for key in ["attribute", "multiple"] {
                if let Some(value) = present(object, key) {
                    field.insert(key.to_owned(), value.clone());
                }
            }
        }
        other => {
            conversion.error(
                path,
                format!(
                    "invalid type: {}, expected a CSS selector string or an object with `selector`",
                    describe(other)
                ),
            );
            return None;
        }
    }
    field.insert("selector_type".to_owned(), Value::from("css"));
    field.insert("required".to_owned(), Value::Bool(false));
    Some(field)
}

fn convert_item_selector(conversion: &mut Conversion, config: &Map<String, Value>) {
    if let Some((path, selector)) =
        conversion.one_of(config, &["item_selector", "container_selector"], "config")
    {
        conversion
            .canonical
            .insert("item_selector".to_owned(), selector.clone());
        conversion
            .canonical
            .insert("item_selector_type".to_owned(), Value::from("css"));
        conversion.paths.collapse("item_selector", path);
    }
}

/// Pagination came in several spellings: `pagination` as a selector string, a flag or an
/// object, `next_page_selector`, and a separate `max_pages`. A `max_pages` alone asks for
/// pagination with the next link found automatically.
fn convert_pagination(conversion: &mut Conversion, config: &Map<String, Value>) {
    let mut next_selector: Option<(String, Value)> = None;
    let mut max_pages: Option<(String, Value)> = None;
    let mut wanted = false;
    let mut disabled = false;
    match present(config, "pagination") {
        None => {}
        Some(selector @ Value::String(_)) => {
            next_selector = Some(("config.pagination".to_owned(), selector.clone()));
            wanted = true;
        }
        Some(Value::Bool(enabled)) => {
            wanted = *enabled;
            disabled = !*enabled;
        }
        Some(Value::Object(object)) => {
            conversion.reject_unknown_keys(object, PAGINATION_OBJECT_KEYS, "config.pagination");
            let enabled = match present(object, "enabled") {
                Some(value) => conversion
                    .expect_bool(value, "config.pagination.enabled")
                    .unwrap_or(true),
                None => true,
            };
            wanted = enabled;
            disabled = !enabled;
            next_selector = present(object, "next_selector")
                .map(|value| ("config.pagination.next_selector".to_owned(), value.clone()));
            max_pages = present(object, "max_pages")
                .map(|value| ("config.pagination.max_pages".to_owned(), value.clone()));
        }
        Some(other) => {
            conversion.error(
                "config.pagination",
                format!(
                    "invalid type: {}, expected a selector string, a boolean or an object",
                    describe(other)
                ),
            );
        }
    }
    if let Some(value) = present(config, "next_page_selector") {
        if next_selector.is_some() {
            conversion.error(
                "config.next_page_selector",
                "give only one of `next_page_selector`, `pagination.next_selector`",
            );
        }
        next_selector = Some(("config.next_page_selector".to_owned(), value.clone()));
        wanted = true;
    }
    if let Some(value) = present(config, "max_pages") {
        if max_pages.is_some() {
            conversion.error(
                "config.max_pages",
                "give only one of `max_pages`, `pagination.max_pages`",
            );
        }
        max_pages = Some(("config.max_pages".to_owned(), value.clone()));
        wanted = true;
    }
    if !wanted || disabled {
        return;
    }
    let mut pagination = Map::new();
    let whole_path = if config.contains_key("pagination") {
        "config.pagination".to_owned()
    } else {
        "config".to_owned()
    };
    conversion.paths.collapse("pagination", whole_path);
    if let Some((path, selector)) = next_selector {
        pagination.insert("next_selector".to_owned(), selector);
        pagination.insert("next_selector_type".to_owned(), Value::from("css"));
        conversion.paths.collapse("pagination.next_selector", path);
    }
    if let Some((path, pages)) = max_pages {
        pagination.insert("max_pages".to_owned(), pages);
        conversion.paths.collapse("pagination.max_pages", path);
    }
    conversion
        .canonical
        .insert("pagination".to_owned(), Value::Object(pagination));
}

/// `javascript_enabled: true` means rendering in the browser; a `wait_for_selector` only
/// makes sense there, so it implies the browser unless JavaScript was explicitly off.
fn convert_mode_and_browser(conversion: &mut Conversion, config: &Map<String, Value>) {
    let javascript = present(config, "javascript_enabled")
        .and_then(|value| conversion.expect_bool(value, "config.javascript_enabled"));
    let wait_for_selector = present(config, "wait_for_selector")
        .and_then(|value| conversion.expect_str(value, "config.wait_for_selector"));
    if javascript.unwrap_or(wait_for_selector.is_some()) {
        conversion
            .canonical
            .insert("mode".to_owned(), Value::from("browser"));
        let path = if javascript.is_some() {
            "config.javascript_enabled"
        } else {
            "config.wait_for_selector"
        };
        conversion.paths.collapse("mode", path);
    }
    if let Some(selector) = wait_for_selector {
        conversion.canonical.insert(
            "browser".to_owned(),
            json!({"wait_conditions": [{"type": "element", "selector": selector}]}),
        );
        conversion
            .paths
            .collapse("browser", "config.wait_for_selector");
    }
}

fn convert_schedule(conversion: &mut Conversion, config: &Map<String, Value>, is_monitoring: bool) {
    match present(config, "schedule") {
        None if is_monitoring => conversion.error(
            "config.schedule",
            "required when task_type is \"monitoring\"",
        ),
        None => {}
        Some(Value::String(cron)) => {
            conversion
                .canonical
                .insert("schedule".to_owned(), json!({"cron": cron}));
            conversion.paths.collapse("schedule", "config.schedule");
        }
        // An object is taken as a canonical schedule (`cron`, `timezone`, …).
        Some(schedule @ Value::Object(_)) => {
            conversion
                .canonical
                .insert("schedule".to_owned(), schedule.clone());
            conversion.paths.rename("schedule", "config.schedule");
        }
        Some(other) => conversion.error(
            "config.schedule",
            format!(
                "invalid type: {}, expected a cron expression string",
                describe(other)
            ),
        ),
    }
}

fn convert_request_settings(conversion: &mut Conversion, config: &Map<String, Value>) {
    for (input_key, canonical_key) in [("custom_headers", "headers"), ("cookies", "cookies")] {
        if let Some(value) = present(config, input_key) {
            conversion
                .canonical
                .insert(canonical_key.to_owned(), value.clone());
            conversion
                .paths
                .rename(canonical_key, join_path("config", input_key));
        }
    }
    if let Some(format) = present(config, "output_format") {
        conversion
            .canonical
            .insert("output_format".to_owned(), format.clone());
        conversion
            .paths
            .collapse("output_format", "config.output_format");
    }
    if let Some(delay_ms) = seconds_as_millis(conversion, config, "delay") {
        conversion
            .canonical
            .insert("rate_limit".to_owned(), json!({"delay_ms": delay_ms}));
        conversion.paths.collapse_with_note(
            "rate_limit",
            "config.delay",
            "in milliseconds; `delay` is in seconds",
        );
    }
    if let Some(timeout_ms) = seconds_as_millis(conversion, config, "timeout") {
        conversion
            .canonical
            .insert("timeout_ms".to_owned(), Value::from(timeout_ms));
        conversion.paths.collapse_with_note(
            "timeout_ms",
            "config.timeout",
            "in milliseconds; `timeout` is in seconds",
        );
    }
    if let Some((path, enabled)) = conversion.one_of(config, &["use_proxy", "proxy"], "config")
        && let Some(enabled) = conversion.expect_bool(enabled, &path)
    {
        conversion
            .canonical
            .insert("proxy".to_owned(), json!({"enabled": enabled}));
        conversion.paths.collapse("proxy", path);
    }
}

/// A duration the original platform took in (possibly fractional) seconds.
fn seconds_as_millis(
    conversion: &mut Conversion,
    config: &Map<String, Value>,
    key: &str,
) -> Option<u64> {
    let value = present(config, key)?;
    match value
        .as_f64()
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
    {
        // Float-to-int `as` saturates, so an absurd number of seconds cannot wrap around;
        // validation then reports it as out of range.
        Some(seconds) => Some((seconds * 1000.0).round() as u64),
        None => {
            conversion.error(
                join_path("config", key),
                "must be a non-negative number of seconds",
            );
            None
        }
    }
}
