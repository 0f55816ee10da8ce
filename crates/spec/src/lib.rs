//! Task spec v1: the types a user writes, the two compatibility shapes of the original
//! platform, and validation that names the JSON path of every error. No IO, no async.

mod compat;
mod error;
mod model;
mod scan;
mod task_regex;
mod validate;

pub use compat::{InputShape, TaskInput, parse_task_input};
pub use error::{ValidationError, ValidationErrors};
pub use model::*;
pub use scan::{SelectorScanError, scan_selector, xpath_namespace_prefix};
pub use task_regex::{REGEX_DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT, RegexError, build_regex};
pub use validate::{Limits, ValidatedSpec, validate};

/// Whether a selector is XPath: the explicit type when given, else XPath when the text
/// starts like a path expression (`/`, `./`, `(`).
pub fn selector_is_xpath(selector: &str, explicit: Option<SelectorType>) -> bool {
    match explicit {
        Some(SelectorType::Xpath) => true,
        Some(SelectorType::Css) => false,
        None => {
            let s = selector.trim_start();
            s.starts_with('/') || s.starts_with("./") || s.starts_with('(')
        }
    }
}
