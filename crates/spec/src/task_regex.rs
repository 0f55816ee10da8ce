//! The one way a task's regular expression is compiled, by validation and by the
//! extractor alike, so that a pattern accepted when a task is saved is exactly the pattern
//! that runs, within the same bounds on size.

use regex::{Regex, RegexBuilder};

use crate::Limits;

/// Bytes the compiled program of one task regex may take. Counted repetitions multiply a
/// pattern's size (`(a{1000}){1000}` is a million states), so without this bound a
/// 16-byte pattern could ask for gigabytes. Real patterns stay below it; a Unicode class
/// repeated a counted number of times is the costly kind (`\w{1,50}` fits, a letter class
/// `{1,100}` does not: write `+`).
pub const REGEX_SIZE_LIMIT: usize = 4 * 1024 * 1024;

/// Bytes of the lazy DFA cache of one task regex, the memory it may use while matching.
pub const REGEX_DFA_SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// Why a task's regular expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegexError {
    #[error("pattern of {bytes} bytes exceeds the limit of {limit} (limits.max_regex_bytes)")]
    TooLong { bytes: usize, limit: usize },
    #[error(
        "the compiled pattern would exceed {limit} bytes (counted repetitions such as {{1000}} multiply its size)"
    )]
    TooBig { limit: usize },
    #[error("invalid regular expression: {0}")]
    Syntax(String),
}

/// Compiles a task's regular expression: at most `limits.max_regex_bytes` of pattern and
/// [`REGEX_SIZE_LIMIT`] of compiled program. The length is checked before the parser
/// sees the pattern.
pub fn build_regex(pattern: &str, limits: &Limits) -> Result<Regex, RegexError> {
    if pattern.len() > limits.max_regex_bytes {
        return Err(RegexError::TooLong {
            bytes: pattern.len(),
            limit: limits.max_regex_bytes,
        });
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(_) => RegexError::TooBig {
                limit: REGEX_SIZE_LIMIT,
            },
            other => RegexError::Syntax(syntax_error_text(&other)),
        })
}

/// The regex crate's syntax errors span several lines (the pattern, a caret, the cause);
/// the cause line is what a user needs.
fn syntax_error_text(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}
