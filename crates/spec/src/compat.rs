//! Parsing a task from JSON in any accepted shape: the canonical spec v1 or one of the two
//! shapes of the original platform (its API and its worker), converted to v1.
//!
//! Each compatibility shape is first rewritten into canonical JSON, then goes through the
//! same deserialisation and validation as canonical input; errors found there are mapped
//! back to paths in the input's own terms.

mod original_api;
mod original_worker;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ValidationError, ValidationErrors};
use crate::model::TaskSpec;
use crate::validate::{Limits, ValidatedSpec, validate};

/// Which shape a task was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputShape {
    /// Task spec v1 (SPEC §2).
    Canonical,
    /// The original platform's API: `{"name", "task_type", "config": {…}}`.
    OriginalApi,
    /// The original worker's job: `{"url", "fields": […], "pagination": {"enabled", …}}`.
    OriginalWorker,
}

/// A parsed and validated task, plus the creation options that travel beside the spec.
#[derive(Debug, Clone)]
pub struct TaskInput {
    pub spec: ValidatedSpec,
    pub shape: InputShape,
    /// Queue priority 1..=10 when given.
    pub priority: Option<u8>,
    /// `false` creates the task without enqueueing its first run.
    pub start: Option<bool>,
}

/// Detects the shape of `json`, converts it to spec v1 and validates it. Errors name the
/// JSON path in the input as the user sent it (`config.selectors.price`, `fields[1].colour`).
pub fn parse_task_input(json: &Value, limits: &Limits) -> Result<TaskInput, ValidationErrors> {
    let Some(object) = json.as_object() else {
        return Err(ValidationError::new("$", "expected a JSON object").into());
    };
    let shape = detect_shape(object);
    let conversion = match shape {
        InputShape::Canonical => split_canonical(object),
        InputShape::OriginalApi => original_api::convert(object),
        InputShape::OriginalWorker => original_worker::convert(object),
    };
    let Conversion {
        canonical,
        paths,
        priority,
        start,
        mut errors,
    } = conversion;
    // A conversion error leaves the canonical document incomplete; validating it would
    // only add errors about the gaps.
    if shape != InputShape::Canonical && !errors.is_empty() {
        return Err(ValidationErrors(errors));
    }
    let result = deserialize_spec(canonical).and_then(|spec| validate(spec, limits));
    match result {
        Ok(spec) if errors.is_empty() => Ok(TaskInput {
            spec,
            shape,
            priority,
            start,
        }),
        Ok(_) => Err(ValidationErrors(errors)),
        Err(ValidationErrors(found)) => {
            errors.extend(
                found
                    .into_iter()
                    .map(|error| paths.to_input_terms(error, json)),
            );
            Err(ValidationErrors(errors))
        }
    }
}

fn detect_shape(object: &Map<String, Value>) -> InputShape {
    if object.contains_key("config") || object.contains_key("task_type") {
        InputShape::OriginalApi
    } else if object.get("url").is_some_and(Value::is_string)
        && object.contains_key("fields")
        && !object.contains_key("start_urls")
    {
        InputShape::OriginalWorker
    } else {
        InputShape::Canonical
    }
}

/// Deserialises canonical JSON, naming the path of an unknown key or a wrong type.
fn deserialize_spec(canonical: Map<String, Value>) -> Result<TaskSpec, ValidationErrors> {
    serde_path_to_error::deserialize::<_, TaskSpec>(Value::Object(canonical)).map_err(|error| {
        let path = error.path().to_string();
        // serde_path_to_error writes the root as "."; the API uses "$".
        let path = if path == "." { "$".to_owned() } else { path };
        ValidationError::new(path, error.into_inner().to_string()).into()
    })
}

/// The outcome of rewriting one input into canonical JSON.
struct Conversion {
    canonical: Map<String, Value>,
    paths: PathMap,
    priority: Option<u8>,
    start: Option<bool>,
    /// Problems found while converting, already in the input's terms.
    errors: Vec<ValidationError>,
}

impl Conversion {
    fn new(paths: PathMap) -> Self {
        Conversion {
            canonical: Map::new(),
            paths,
            priority: None,
            start: None,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError::new(path, message));
    }

    /// Reads the creation options that any shape may carry at the top level.
    fn take_creation_options(&mut self, object: &Map<String, Value>) {
        self.priority = match object.get("priority") {
            None | Some(Value::Null) => None,
            Some(value) => match value
                .as_u64()
                .filter(|priority| (1..=10).contains(priority))
            {
                Some(priority) => u8::try_from(priority).ok(),
                None => {
                    self.error("priority", "must be an integer between 1 and 10");
                    None
                }
            },
        };
        self.start = match object.get("start") {
            None | Some(Value::Null) => None,
            Some(value) => self.expect_bool(value, "start"),
        };
    }

    fn expect_bool(&mut self, value: &Value, path: &str) -> Option<bool> {
        let flag = value.as_bool();
        if flag.is_none() {
            self.error(
                path,
                format!("invalid type: {}, expected true or false", describe(value)),
            );
        }
        flag
    }

    fn expect_str<'a>(&mut self, value: &'a Value, path: &str) -> Option<&'a str> {
        let text = value.as_str();
        if text.is_none() {
            self.error(
                path,
                format!("invalid type: {}, expected a string", describe(value)),
            );
        }
        text
    }

    fn expect_object<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
    ) -> Option<&'a Map<String, Value>> {
        let object = value.as_object();
        if object.is_none() {
            self.error(
                path,
                format!("invalid type: {}, expected an object", describe(value)),
            );
        }
        object
    }

    /// The first of the synonyms `keys` present in `object`, with its input path; giving
    /// more than one of them is an error, since they would contradict each other.
    fn one_of<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        keys: &[&str],
        prefix: &str,
    ) -> Option<(String, &'a Value)> {
        let mut found = keys
            .iter()
            .filter_map(|key| present(object, key).map(|value| (*key, value)));
        let (first_key, first_value) = found.next()?;
        let others: Vec<&str> = found.map(|(key, _)| key).collect();
        for key in others {
            let choices = keys
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.error(
                join_path(prefix, key),
                format!("give only one of {choices}"),
            );
        }
        Some((join_path(prefix, first_key), first_value))
    }

    /// Unknown keys are rejected in every shape (SPEC §2), each at its own path.
    fn reject_unknown_keys(&mut self, object: &Map<String, Value>, allowed: &[&str], prefix: &str) {
        for key in object.keys().filter(|key| !allowed.contains(&key.as_str())) {
            let expected = allowed
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.error(
                join_path(prefix, key),
                format!("unknown field `{key}`, expected one of {expected}"),
            );
        }
    }

    /// Converts a field `type` of the original shapes, where `href` meant a link and `src`
    /// an image.
    fn convert_field_type(&mut self, value: &Value, path: &str) -> Option<Value> {
        let name = self.expect_str(value, path)?;
        let canonical = match name {
            "text" | "html" | "attribute" | "link" | "image" => name,
            "href" => "link",
            "src" => "image",
            other => {
                self.error(
                    path,
                    format!("unknown field type {other:?}, expected one of text, html, attribute, link, image, href, src"),
                );
                return None;
            }
        };
        Some(Value::from(canonical))
    }
}

/// Canonical input: only the creation options are lifted out; the rest is the spec.
fn split_canonical(object: &Map<String, Value>) -> Conversion {
    let mut conversion = Conversion::new(PathMap::canonical());
    conversion.take_creation_options(object);
    conversion.canonical = object
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "priority" | "start"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    conversion
}

/// How paths in the canonical document translate back to paths in the input.
struct PathMap {
    rules: Vec<PathRule>,
    /// Whether mapped paths are cut back to the longest prefix present in the input; off
    /// for canonical input, where the canonical path names the value even when defaulted.
    clamp_to_input: bool,
}

struct PathRule {
    canonical: String,
    input: String,
    /// Append what follows `canonical` (`headers.X-A` → `config.custom_headers.X-A`).
    keep_suffix: bool,
    /// Added to the message when the input used other units than the canonical value.
    note: Option<&'static str>,
}

impl PathMap {
    fn canonical() -> Self {
        PathMap {
            rules: Vec::new(),
            clamp_to_input: false,
        }
    }

    fn converted() -> Self {
        PathMap {
            rules: Vec::new(),
            clamp_to_input: true,
        }
    }

    /// `canonical` and everything under it lives at `input` with the same inner structure.
    fn rename(&mut self, canonical: impl Into<String>, input: impl Into<String>) {
        self.rules.push(PathRule {
            canonical: canonical.into(),
            input: input.into(),
            keep_suffix: true,
            note: None,
        });
    }

    /// `canonical` and everything under it came from the single value at `input`.
    fn collapse(&mut self, canonical: impl Into<String>, input: impl Into<String>) {
        self.rules.push(PathRule {
            canonical: canonical.into(),
            input: input.into(),
            keep_suffix: false,
            note: None,
        });
    }

    /// Like [`PathMap::collapse`], for a value converted between units; `note` explains
    /// the canonical unit the message speaks of.
    fn collapse_with_note(&mut self, canonical: &str, input: &str, note: &'static str) {
        self.rules.push(PathRule {
            canonical: canonical.to_owned(),
            input: input.to_owned(),
            keep_suffix: false,
            note: Some(note),
        });
    }

    fn to_input_terms(&self, error: ValidationError, input: &Value) -> ValidationError {
        let (mapped, note) = self.map(&error.path);
        let path = if self.clamp_to_input {
            existing_prefix(input, &mapped)
        } else {
            mapped
        };
        let message = match note {
            Some(note) => format!("{} ({note})", error.message),
            None => error.message,
        };
        ValidationError { path, message }
    }

    fn map(&self, path: &str) -> (String, Option<&'static str>) {
        let best = self
            .rules
            .iter()
            .filter_map(|rule| path_suffix(path, &rule.canonical).map(|suffix| (rule, suffix)))
            .max_by_key(|(rule, _)| rule.canonical.len());
        match best {
            Some((rule, suffix)) if rule.keep_suffix => {
                (format!("{}{suffix}", rule.input), rule.note)
            }
            Some((rule, _)) => (rule.input.clone(), rule.note),
            None => (path.to_owned(), None),
        }
    }
}

/// What follows `prefix` in `path` when `path` is `prefix` or lies under it.
fn path_suffix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let suffix = path.strip_prefix(prefix)?;
    (suffix.is_empty() || suffix.starts_with('.') || suffix.starts_with('[')).then_some(suffix)
}

/// The longest prefix of `path` that names a value present in `input` (`$` at worst).
///
/// Keys are matched against the object's real keys rather than split on dots, because a
/// header name may itself contain a dot.
fn existing_prefix(input: &Value, path: &str) -> String {
    let mut value = input;
    let mut consumed = 0;
    loop {
        let rest = &path[consumed..];
        let step = match value {
            Value::Object(object) => {
                // Top-level keys start the path; deeper keys follow a dot.
                let (separator, after) = match (consumed, rest.strip_prefix('.')) {
                    (0, _) => (0, rest),
                    (_, Some(after)) => (1, after),
                    (_, None) => break,
                };
                object
                    .iter()
                    .filter(|(key, _)| !key.is_empty() && path_suffix(after, key).is_some())
                    .max_by_key(|(key, _)| key.len())
                    .map(|(key, child)| (separator + key.len(), child))
            }
            Value::Array(items) => rest
                .strip_prefix('[')
                .and_then(|inner| inner.split_once(']'))
                .and_then(|(index, _)| {
                    let child = items.get(index.parse::<usize>().ok()?)?;
                    Some((index.len() + 2, child))
                }),
            _ => None,
        };
        match step {
            Some((length, child)) => {
                consumed += length;
                value = child;
            }
            None => break,
        }
    }
    if consumed == 0 {
        "$".to_owned()
    } else {
        path[..consumed].to_owned()
    }
}

/// The value at `key`, treating an explicit `null` as absent: the original platform's
/// clients sent `null` for every unset option.
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Names a JSON value's kind the way serde's messages do.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("boolean `{flag}`"),
        Value::Number(number) => format!("number `{number}`"),
        Value::String(text) => format!("string {text:?}"),
        Value::Array(_) => "sequence".to_owned(),
        Value::Object(_) => "map".to_owned(),
    }
}
