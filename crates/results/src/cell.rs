//! How one JSON value becomes one spreadsheet cell, shared by the CSV and XLSX writers.
//!
//! Records are flat maps of field name to value, but a value may be a list (`multiple: true`)
//! or, from custom records, any JSON. Tables have one cell per field, so:
//! strings stay as they are, numbers and booleans keep their type (as text in CSV), null is an
//! empty cell, a list of scalars is joined with `"; "`, and anything deeper (a list holding
//! lists or objects, or an object) is written as compact JSON text. Objects are not spread
//! into `parent.child` columns because the header must be known before the first row is
//! written, and the keys of nested objects are not.

use std::borrow::Cow;

use serde_json::{Number, Value};

/// The separator between the elements of a list of scalars.
pub(crate) const LIST_SEPARATOR: &str = "; ";

/// A JSON value reduced to what a table cell can hold.
#[derive(Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Empty,
    Text(Cow<'a, str>),
    Number(&'a Number),
    Bool(bool),
}

/// Reduces one field value (or a missing field, `None`) to a cell.
pub(crate) fn cell_of(value: Option<&Value>) -> Cell<'_> {
    match value {
        None | Some(Value::Null) => Cell::Empty,
        Some(Value::String(text)) => Cell::Text(Cow::Borrowed(text)),
        Some(Value::Number(number)) => Cell::Number(number),
        Some(Value::Bool(flag)) => Cell::Bool(*flag),
        Some(Value::Array(items)) if items.iter().all(is_scalar) => {
            Cell::Text(Cow::Owned(join_scalars(items)))
        }
        Some(nested @ (Value::Array(_) | Value::Object(_))) => {
            Cell::Text(Cow::Owned(nested.to_string()))
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn join_scalars(items: &[Value]) -> String {
    let mut joined = String::new();
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            joined.push_str(LIST_SEPARATOR);
        }
        match item {
            Value::String(text) => joined.push_str(text),
            Value::Null => {}
            // Numbers and booleans print as their JSON text, which is also their plain text.
            scalar => joined.push_str(&scalar.to_string()),
        }
    }
    joined
}

/// Whether text would be read as a formula by a spreadsheet that opens a CSV file.
///
/// `=`, `+`, `-` and `@` start formulas in Excel, LibreOffice and Google Sheets; tab and
/// carriage return are on OWASP's list too because some importers strip them first.
pub(crate) fn looks_like_formula(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}
