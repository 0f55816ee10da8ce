//! Fields and their transforms.

use std::collections::HashSet;

use crate::error::ValidationError;
use crate::model::{FieldSpec, FieldType, Transform};
use crate::selector_is_xpath;
use crate::task_regex::build_regex;

use super::selectors::check_selector;
use super::{Limits, push};

pub(super) fn check_fields(
    fields: &[FieldSpec],
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
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
        check_field(field, &path, limits, errors);
    }
}

fn check_field(field: &FieldSpec, path: &str, limits: &Limits, errors: &mut Vec<ValidationError>) {
    let is_xpath = selector_is_xpath(&field.selector, Some(field.selector_type));
    check_selector(
        &field.selector,
        is_xpath,
        &format!("{path}.selector"),
        limits,
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
    if field.transform.len() > limits.max_transforms {
        // The steps are not checked one by one: compiling an unbounded number of regular
        // expressions is the very work the limit is there to refuse.
        push(
            errors,
            format!("{path}.transform"),
            format!(
                "{} steps exceed the limit of {} (limits.max_transforms)",
                field.transform.len(),
                limits.max_transforms
            ),
        );
        return;
    }
    for (index, transform) in field.transform.iter().enumerate() {
        check_transform(
            transform,
            &format!("{path}.transform[{index}]"),
            limits,
            errors,
        );
    }
}

fn check_transform(
    transform: &Transform,
    path: &str,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    match transform {
        Transform::Simple(_) => {}
        Transform::Regex { regex } => {
            if let Err(problem) = build_regex(regex, limits) {
                push(errors, format!("{path}.regex"), problem.to_string());
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
