//! Field transforms: compiled once per spec, applied in order to each extracted value.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use regex::Regex;
use selextract_spec::{Limits, RegexError, SimpleTransform, Transform, build_regex};
use serde_json::Value;

use crate::compile::CompileError;

/// One compiled transform step.
#[derive(Debug)]
pub(crate) enum Step {
    Trim,
    Lowercase,
    Uppercase,
    /// `group`: the pattern has a capture group, whose first group is the result.
    Regex {
        regex: Regex,
        group: bool,
    },
    Replace {
        from: String,
        to: String,
    },
    Number,
    Integer,
    Boolean,
    Date {
        format: String,
    },
    /// A step of a validated spec that did not compile here: every value fails it.
    Broken,
}

/// What a chain of steps made of one value.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Value(Value),
    /// The value is gone (a regex that did not match): the field counts as missing.
    Missing,
    /// A conversion failed: the value becomes `null` and the failure is counted.
    Failed,
    /// A step would make a value of this many bytes, more than the limit: it was not made.
    TooLarge(usize),
}

impl Step {
    pub(crate) fn compile(
        transform: &Transform,
        path: &str,
        limits: &Limits,
    ) -> Result<Step, CompileError> {
        Ok(match transform {
            Transform::Simple(simple) => match simple {
                SimpleTransform::Trim => Step::Trim,
                SimpleTransform::Lowercase => Step::Lowercase,
                SimpleTransform::Uppercase => Step::Uppercase,
                SimpleTransform::Number => Step::Number,
                SimpleTransform::Integer => Step::Integer,
                SimpleTransform::Boolean => Step::Boolean,
            },
            Transform::Regex { regex } => {
                let compiled = build_regex(regex, limits).map_err(|error| {
                    let path = format!("{path}.regex");
                    match error {
                        RegexError::Syntax(message) => CompileError::InvalidRegex { path, message },
                        other => CompileError::OverLimit {
                            path,
                            message: other.to_string(),
                        },
                    }
                })?;
                let group = compiled.captures_len() > 1;
                Step::Regex {
                    regex: compiled,
                    group,
                }
            }
            Transform::Replace {
                replace: (from, to),
            } => Step::Replace {
                from: from.clone(),
                to: to.clone(),
            },
            Transform::Date { date } => {
                let invalid = date.trim().is_empty()
                    || StrftimeItems::new(date).any(|item| matches!(item, Item::Error));
                if invalid {
                    return Err(CompileError::InvalidDateFormat {
                        path: format!("{path}.date"),
                        message: format!("{date:?} is not a strftime format"),
                    });
                }
                Step::Date {
                    format: date.clone(),
                }
            }
        })
    }
}

/// Runs `steps` over one value. A failed conversion ends the chain with `null`; a step
/// whose result would exceed `max_bytes` ends it with [`Outcome::TooLarge`] before that
/// result is allocated (`replace` grows a value geometrically: 40 steps of `a` → `aa`
/// would ask for terabytes).
pub(crate) fn apply(steps: &[Step], mut value: Value, max_bytes: usize) -> Outcome {
    for step in steps {
        value = match apply_step(step, value, max_bytes) {
            Outcome::Value(Value::String(text)) if text.len() > max_bytes => {
                // Case mapping can lengthen text (at most threefold): caught here, after
                // one bounded allocation.
                return Outcome::TooLarge(text.len());
            }
            Outcome::Value(next) => next,
            other => return other,
        };
    }
    Outcome::Value(value)
}

fn apply_step(step: &Step, value: Value, max_bytes: usize) -> Outcome {
    let text = match value {
        Value::String(text) => text,
        Value::Null => return Outcome::Value(Value::Null),
        other => other.to_string(),
    };
    match step {
        Step::Trim => {
            let trimmed = text.trim();
            Outcome::Value(Value::String(if trimmed.len() == text.len() {
                text
            } else {
                trimmed.to_owned()
            }))
        }
        Step::Lowercase => Outcome::Value(Value::String(text.to_lowercase())),
        Step::Uppercase => Outcome::Value(Value::String(text.to_uppercase())),
        Step::Regex { regex, group } => {
            let found = if *group {
                regex
                    .captures(&text)
                    .and_then(|captures| captures.get(1))
                    .map(|m| m.as_str().to_owned())
            } else {
                regex.find(&text).map(|m| m.as_str().to_owned())
            };
            found.map_or(Outcome::Missing, |found| {
                Outcome::Value(Value::String(found))
            })
        }
        Step::Replace { from, to } => {
            // Replacing "" would insert `to` between every character; validation forbids it.
            if from.is_empty() || !text.contains(from.as_str()) {
                return Outcome::Value(Value::String(text));
            }
            let occurrences = text.matches(from.as_str()).count();
            let length = replaced_length(text.len(), occurrences, from.len(), to.len());
            if length > max_bytes {
                Outcome::TooLarge(length)
            } else {
                Outcome::Value(Value::String(text.replace(from.as_str(), to)))
            }
        }
        Step::Number => converted(
            parse_number(&text).and_then(|n| serde_json::Number::from_f64(n).map(Value::Number)),
        ),
        Step::Integer => converted(
            parse_number(&text)
                .and_then(truncate_to_i64)
                .map(Value::from),
        ),
        Step::Boolean => converted(parse_boolean(&text).map(Value::Bool)),
        Step::Date { format } => converted(parse_date(&text, format).map(Value::String)),
        Step::Broken => Outcome::Failed,
    }
}

/// The length of `text` after replacing `occurrences` of a `from_len`-byte string by a
/// `to_len`-byte one; saturates instead of overflowing (it is only compared to a limit).
fn replaced_length(text_len: usize, occurrences: usize, from_len: usize, to_len: usize) -> usize {
    let removed = occurrences.saturating_mul(from_len);
    let added = occurrences.saturating_mul(to_len);
    text_len.saturating_sub(removed).saturating_add(added)
}

fn converted(value: Option<Value>) -> Outcome {
    value.map_or(Outcome::Failed, Outcome::Value)
}

fn truncate_to_i64(number: f64) -> Option<i64> {
    let truncated = number.trunc();
    // i64::MAX is not exactly representable; 2^63 is the first f64 out of range.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    (-TWO_POW_63..TWO_POW_63)
        .contains(&truncated)
        .then_some(truncated as i64)
}

/// The first number in `text`, read the way a shop writes prices: currency symbols and
/// words around it are ignored, thousands separators (`,` `.` `'` and spaces) removed, and
/// the decimal separator guessed: with both `.` and `,` the last one is decimal; a lone
/// separator repeated is thousands; a single `,` followed by exactly three digits is
/// thousands (`1,299`), otherwise decimal (`12,5`); a single `.` is decimal.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<f64>()
        && number.is_finite()
        && trimmed.bytes().any(|b| b.is_ascii_digit())
    {
        return Some(number);
    }
    let start = trimmed.find(|c: char| c.is_ascii_digit())?;
    let negative = trimmed[..start]
        .chars()
        .rev()
        .find(|c| !c.is_whitespace() && !is_prefix_noise(*c))
        .is_some_and(|c| c == '-' || c == '\u{2212}');
    let mut token = String::new();
    let mut chars = trimmed[start..].chars().peekable();
    while let Some(c) = chars.next() {
        let next_is_digit = chars.peek().is_some_and(char::is_ascii_digit);
        match c {
            '0'..='9' => token.push(c),
            '.' | ',' if next_is_digit => token.push(c),
            '\'' | '\u{2019}' | ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' if next_is_digit => {}
            _ => break,
        }
    }
    let normalised = normalise_separators(&token);
    let number: f64 = normalised.parse().ok()?;
    Some(if negative { -number } else { number })
}

fn normalise_separators(token: &str) -> String {
    let last_dot = token.rfind('.');
    let last_comma = token.rfind(',');
    let decimal = match (last_dot, last_comma) {
        (Some(dot), Some(comma)) => Some(if dot > comma { '.' } else { ',' }),
        (Some(_), None) => (token.matches('.').count() == 1).then_some('.'),
        (None, Some(comma)) => {
            let single = token.matches(',').count() == 1;
            let digits_after = token.len() - comma - 1;
            let integer_part_is_zero = token[..comma].trim_start_matches('0').is_empty();
            (single && (digits_after != 3 || integer_part_is_zero)).then_some(',')
        }
        (None, None) => None,
    };
    token
        .chars()
        .filter_map(|c| match c {
            '.' | ',' if Some(c) == decimal => Some('.'),
            '.' | ',' => None,
            other => Some(other),
        })
        .collect()
}

/// What may stand between a minus sign and the digits: `-$5`, `USD -5`, `Price: -5`.
fn is_prefix_noise(c: char) -> bool {
    matches!(
        c,
        '$' | '€' | '£' | '¥' | '₹' | '₽' | '₩' | '₺' | '₴' | '₪' | '¢' | '₱' | '฿' | '₫'
    ) || c.is_alphabetic()
        || c == ':'
}

fn parse_boolean(text: &str) -> Option<bool> {
    let lowered = text.trim().to_lowercase();
    match lowered.as_str() {
        "true" | "yes" | "1" | "on" | "in stock" => Some(true),
        "false" | "no" | "0" | "off" | "out of stock" => Some(false),
        _ => None,
    }
}

/// Parses with a strftime format; a date with a UTC offset becomes RFC 3339, a date and
/// time without one becomes ISO 8601 local time (`2024-03-01T10:00:00`, no zone invented),
/// a date alone becomes `YYYY-MM-DD`.
fn parse_date(text: &str, format: &str) -> Option<String> {
    let text = text.trim();
    if let Ok(moment) = DateTime::parse_from_str(text, format) {
        return Some(moment.to_rfc3339());
    }
    if let Ok(moment) = NaiveDateTime::parse_from_str(text, format) {
        return Some(moment.format("%Y-%m-%dT%H:%M:%S").to_string());
    }
    NaiveDate::parse_from_str(text, format)
        .ok()
        .map(|date| date.format("%Y-%m-%d").to_string())
}
