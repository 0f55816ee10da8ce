//! How a record is identified across runs, and its canonical text.

use selextract_results::Record;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Prefix of a key made from the record's content, so it can never equal the JSON text of
/// a key field's value.
const HASH_KEY_PREFIX: &str = "sha256:";

/// The record's canonical JSON text: compact, object keys sorted at every depth, so equal
/// records have equal texts whatever order their fields were extracted in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// The canonical text of a record (an object).
pub(crate) fn canonical_record(record: &Record) -> String {
    let mut out = String::new();
    write_object(record, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        // Scalars: serde_json's own compact text, which escapes every control character,
        // so a canonical text never holds a raw tab or newline.
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_object(map: &serde_json::Map<String, Value>, out: &mut String) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
    out.push('{');
    for (index, (name, value)) in entries.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(name.clone()).to_string());
        out.push(':');
        write_canonical(value, out);
    }
    out.push('}');
}

/// The key of a record: with `key_field`, the canonical JSON text of that field's value
/// (`"sku-1"`, `42`); without it, or when the record lacks the field or holds `null` there,
/// `sha256:` and the hex SHA-256 of the record's canonical text.
pub fn record_key(record: &Record, key_field: Option<&str>) -> String {
    record_entry(record, key_field).0
}

/// The key and the canonical text of a record.
pub(crate) fn record_entry(record: &Record, key_field: Option<&str>) -> (String, String) {
    let text = canonical_record(record);
    let key = match key_field.and_then(|field| record.get(field)) {
        Some(value) if !value.is_null() => canonical_json(value),
        _ => content_key(&text),
    };
    (key, text)
}

fn content_key(canonical_text: &str) -> String {
    let digest = Sha256::digest(canonical_text.as_bytes());
    let mut key = String::with_capacity(HASH_KEY_PREFIX.len() + 64);
    key.push_str(HASH_KEY_PREFIX);
    for byte in digest {
        key.push(hex_digit(byte >> 4));
        key.push(hex_digit(byte & 0x0f));
    }
    key
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// Hex SHA-256 of a text (object names derived from a key field's name).
pub(crate) fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest
        .iter()
        .take(8)
        .flat_map(|byte| [hex_digit(byte >> 4), hex_digit(byte & 0x0f)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Record {
        match value {
            Value::Object(map) => map,
            _ => Record::new(),
        }
    }

    #[test]
    fn canonical_text_sorts_keys_at_every_depth() {
        let left = record(json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": "\t"}}));
        let right = record(json!({"a": {"x": "\t", "y": [1, {"c": 3, "d": 2}]}, "b": 1}));
        assert_eq!(canonical_record(&left), canonical_record(&right));
        assert_eq!(
            canonical_record(&left),
            r#"{"a":{"x":"\t","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
    }

    #[test]
    fn a_key_field_keys_by_its_json_text_and_falls_back_to_the_content_hash() {
        let with_key = record(json!({"sku": "a-1", "price": 3}));
        assert_eq!(record_key(&with_key, Some("sku")), r#""a-1""#);
        let numeric = record(json!({"sku": 7}));
        assert_eq!(record_key(&numeric, Some("sku")), "7");
        let missing = record(json!({"price": 3}));
        let null = record(json!({"sku": null, "price": 3}));
        assert!(record_key(&missing, Some("sku")).starts_with("sha256:"));
        assert!(record_key(&null, Some("sku")).starts_with("sha256:"));
        assert_ne!(
            record_key(&missing, Some("sku")),
            record_key(&null, Some("sku"))
        );
    }

    #[test]
    fn the_content_hash_ignores_field_order_and_sees_every_value() {
        let one = record(json!({"a": 1, "b": 2}));
        let same = record(json!({"b": 2, "a": 1}));
        let other = record(json!({"a": 1, "b": 3}));
        assert_eq!(record_key(&one, None), record_key(&same, None));
        assert_ne!(record_key(&one, None), record_key(&other, None));
        assert_eq!(record_key(&one, None).len(), "sha256:".len() + 64);
    }
}
