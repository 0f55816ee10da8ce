//! The public shapes of errors, limits and input shapes, as other crates and the API see them.

use selextract_spec::{InputShape, Limits, ValidationError, ValidationErrors};
use serde_json::json;

use crate::{minimal_task, task_with};

#[test]
fn a_validation_error_displays_as_path_colon_message() {
    let error = ValidationError::new("fields[2].selector", "invalid CSS selector: unexpected EOL");
    assert_eq!(
        error.to_string(),
        "fields[2].selector: invalid CSS selector: unexpected EOL"
    );
}

#[test]
fn validation_errors_display_one_error_per_line() {
    let errors = ValidationErrors(vec![
        ValidationError::new("name", "must not be empty"),
        ValidationError::new("timeout_ms", "too big"),
    ]);
    assert_eq!(
        errors.to_string(),
        "name: must not be empty\ntimeout_ms: too big"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(errors.clone());
    assert_eq!(boxed.to_string(), errors.to_string());
    assert_eq!(errors.paths(), ["name", "timeout_ms"]);
}

#[test]
fn validation_errors_serialise_as_api_details_with_field_and_message() {
    let errors = ValidationErrors(vec![ValidationError::new(
        "fields[0].name",
        "must not be empty",
    )]);
    assert_eq!(
        serde_json::to_value(&errors).unwrap(),
        json!([{"field": "fields[0].name", "message": "must not be empty"}])
    );
}

#[test]
fn parse_errors_from_a_real_document_serialise_with_their_paths() {
    let task = task_with(|t| t["timeout_ms"] = json!(1));
    let errors = selextract_spec::parse_task_input(&task, &Limits::default()).unwrap_err();
    assert_eq!(
        serde_json::to_value(&errors).unwrap(),
        json!([{"field": "timeout_ms", "message": "must be between 100 and 300000"}])
    );
}

#[test]
fn input_shapes_serialise_in_snake_case() {
    assert_eq!(
        serde_json::to_value(InputShape::Canonical).unwrap(),
        json!("canonical")
    );
    assert_eq!(
        serde_json::to_value(InputShape::OriginalApi).unwrap(),
        json!("original_api")
    );
    assert_eq!(
        serde_json::to_value(InputShape::OriginalWorker).unwrap(),
        json!("original_worker")
    );
    assert_eq!(
        serde_json::from_value::<InputShape>(json!("original_worker")).unwrap(),
        InputShape::OriginalWorker
    );
}

#[test]
fn default_limits_are_the_spec_values() {
    let limits = Limits::default();
    assert_eq!(
        (
            limits.max_start_urls,
            limits.max_fields,
            limits.max_pages_per_start_url,
            limits.max_headers
        ),
        (10_000, 50, 10_000, 20)
    );
}

#[test]
fn limits_read_from_configuration_keep_defaults_for_omitted_keys() {
    let limits: Limits = serde_json::from_value(json!({"max_fields": 10})).unwrap();
    assert_eq!(
        limits,
        Limits {
            max_fields: 10,
            ..Limits::default()
        }
    );
    assert!(serde_json::from_value::<Limits>(json!({"max_feilds": 10})).is_err());
}

#[test]
fn a_validated_spec_serialises_as_its_canonical_spec() {
    let input = crate::parse_ok(&minimal_task());
    assert_eq!(
        serde_json::to_value(&input.spec).unwrap(),
        serde_json::to_value(input.spec.spec()).unwrap()
    );
}
