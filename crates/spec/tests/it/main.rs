//! Integration tests of the task spec: parsing every accepted shape, the validation rules
//! and the JSON paths their errors name.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod canonical;
mod errors;
mod limits;
mod original_api;
mod original_worker;
mod rules;
mod schedules;

use selextract_spec::{Limits, TaskInput, parse_task_input};
use serde_json::{Value, json};

/// A small valid canonical task; tests change one thing at a time.
pub fn minimal_task() -> Value {
    json!({
        "name": "Books",
        "start_urls": ["https://books.example/"],
        "fields": [{"name": "title", "selector": "h1"}]
    })
}

/// The minimal task after `edit`.
pub fn task_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut task = minimal_task();
    edit(&mut task);
    task
}

/// Parses with default limits and expects success.
pub fn parse_ok(json: &Value) -> TaskInput {
    match parse_task_input(json, &Limits::default()) {
        Ok(input) => input,
        Err(errors) => panic!("expected a valid task, got errors:\n{errors}"),
    }
}

/// The `(path, message)` pairs `json` produces with `limits`.
pub fn errors_with_limits(json: &Value, limits: &Limits) -> Vec<(String, String)> {
    match parse_task_input(json, limits) {
        Ok(input) => panic!("expected errors, got a valid task: {:?}", input.spec.spec()),
        Err(errors) => errors
            .0
            .into_iter()
            .map(|error| (error.path, error.message))
            .collect(),
    }
}

/// The `(path, message)` pairs `json` produces with default limits.
pub fn errors_of(json: &Value) -> Vec<(String, String)> {
    errors_with_limits(json, &Limits::default())
}

/// Only the paths of the errors `json` produces, in order.
pub fn paths_of(json: &Value) -> Vec<String> {
    errors_of(json).into_iter().map(|(path, _)| path).collect()
}

/// The one error `json` produces; fails when there are none or several.
pub fn single_error(json: &Value) -> (String, String) {
    let mut errors = errors_of(json);
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got {errors:?}"
    );
    errors.remove(0)
}

/// The canonical JSON of a parsed task, as the API would show it.
pub fn canonical_json(input: &TaskInput) -> Value {
    serde_json::to_value(&input.spec).unwrap()
}
