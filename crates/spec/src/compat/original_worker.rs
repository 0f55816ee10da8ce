//! The original worker's job shape (`{"url", "fields": […], "pagination": {"enabled", …}}`)
//! rewritten as canonical spec v1 JSON.
//!
//! Most keys keep their canonical names, so paths map to themselves; fields are optional
//! unless marked `required`, as the original worker never dropped records.

use serde_json::{Map, Value, json};

use super::{Conversion, PathMap, describe, present};
use crate::selector_is_xpath;

const TOP_LEVEL_KEYS: &[&str] = &[
    "url",
    "fields",
    "pagination",
    "item_selector",
    "headers",
    "javascript",
    "name",
    "priority",
    "start",
];
const FIELD_KEYS: &[&str] = &[
    "name",
    "selector",
    "type",
    "attribute",
    "multiple",
    "required",
];
const PAGINATION_KEYS: &[&str] = &["enabled", "next_selector", "max_pages"];

pub(super) fn convert(object: &Map<String, Value>) -> Conversion {
    let mut conversion = Conversion::new(PathMap::converted());
    conversion.reject_unknown_keys(object, TOP_LEVEL_KEYS, "");
    conversion.take_creation_options(object);
    for key in ["name", "item_selector", "headers"] {
        if let Some(value) = present(object, key) {
            conversion.canonical.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(url) = present(object, "url") {
        conversion
            .canonical
            .insert("start_urls".to_owned(), json!([url]));
        conversion.paths.collapse("start_urls", "url");
    }
    convert_fields(&mut conversion, object);
    convert_pagination(&mut conversion, object);
    if let Some(javascript) = present(object, "javascript")
        && let Some(javascript) = conversion.expect_bool(javascript, "javascript")
    {
        conversion.canonical.insert(
            "mode".to_owned(),
            Value::from(if javascript { "browser" } else { "http" }),
        );
        conversion.paths.collapse("mode", "javascript");
    }
    conversion
}

fn convert_fields(conversion: &mut Conversion, object: &Map<String, Value>) {
    let Some(fields) = present(object, "fields") else {
        conversion.error("$", "missing field `fields`");
        return;
    };
    let Some(fields) = fields.as_array() else {
        conversion.error(
            "fields",
            format!("invalid type: {}, expected a sequence", describe(fields)),
        );
        return;
    };
    let mut converted = Vec::with_capacity(fields.len());
    for (index, field) in fields.iter().enumerate() {
        let path = format!("fields[{index}]");
        if let Some(field) = conversion.expect_object(field, &path) {
            converted.push(Value::Object(convert_field(conversion, field, &path)));
        }
    }
    conversion
        .canonical
        .insert("fields".to_owned(), Value::Array(converted));
}

/// The original worker told CSS from XPath by the selector's first characters; so does
/// this conversion, by the same rule as canonical `item_selector`.
fn convert_field(
    conversion: &mut Conversion,
    field: &Map<String, Value>,
    path: &str,
) -> Map<String, Value> {
    conversion.reject_unknown_keys(field, FIELD_KEYS, path);
    let mut converted = Map::new();
    for key in ["name", "selector", "attribute", "multiple"] {
        if let Some(value) = present(field, key) {
            converted.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(selector) = present(field, "selector").and_then(Value::as_str) {
        let selector_type = if selector_is_xpath(selector, None) {
            "xpath"
        } else {
            "css"
        };
        converted.insert("selector_type".to_owned(), Value::from(selector_type));
    }
    if let Some(field_type) = present(field, "type")
        && let Some(field_type) = conversion.convert_field_type(field_type, &format!("{path}.type"))
    {
        converted.insert("type".to_owned(), field_type);
    }
    let required = present(field, "required")
        .cloned()
        .unwrap_or(Value::Bool(false));
    converted.insert("required".to_owned(), required);
    converted
}

/// Pagination is kept only when `enabled` is true: the original worker ignored the rest
/// of the object otherwise.
fn convert_pagination(conversion: &mut Conversion, object: &Map<String, Value>) {
    let Some(pagination) = present(object, "pagination") else {
        return;
    };
    let Some(pagination) = conversion.expect_object(pagination, "pagination") else {
        return;
    };
    conversion.reject_unknown_keys(pagination, PAGINATION_KEYS, "pagination");
    let enabled = present(pagination, "enabled")
        .and_then(|enabled| conversion.expect_bool(enabled, "pagination.enabled"))
        .unwrap_or(false);
    if !enabled {
        return;
    }
    let mut converted = Map::new();
    for key in ["next_selector", "max_pages"] {
        if let Some(value) = present(pagination, key) {
            converted.insert(key.to_owned(), value.clone());
        }
    }
    conversion
        .canonical
        .insert("pagination".to_owned(), Value::Object(converted));
}
