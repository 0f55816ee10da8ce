//! Selectors: the cheap scan of size and nesting before any parser, then a compile the way
//! the extractor will; and the pagination selectors.

use crate::error::ValidationError;
use crate::model::{Mode, Pagination, SelectorType};
use crate::scan::{scan_selector, xpath_namespace_prefix};
use crate::selector_is_xpath;

use super::{Limits, compile, push};

pub(super) fn check_optional_selector(
    selector: &Option<String>,
    explicit: Option<SelectorType>,
    path: &str,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    if let Some(selector) = selector {
        let is_xpath = selector_is_xpath(selector, explicit);
        check_selector(selector, is_xpath, path, limits, errors);
    }
}

/// Scans `selector` for size and depth first; only a selector that passes is parsed, so
/// no parser ever sees a selector deep enough to exhaust its stack.
pub(super) fn check_selector(
    selector: &str,
    is_xpath: bool,
    path: &str,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    if let Err(refused) = scan_selector(selector, is_xpath, limits) {
        push(errors, path, refused.to_string());
    } else if let Some(name) = xpath_namespace_prefix(selector).filter(|_| is_xpath) {
        push(
            errors,
            path,
            format!("namespace prefixes are not supported ({name})"),
        );
    } else if let Some(problem) = compile::selector_problem(selector, is_xpath) {
        push(errors, path, problem);
    }
}

pub(super) fn check_pagination(
    pagination: &Pagination,
    mode: Mode,
    limits: &Limits,
    errors: &mut Vec<ValidationError>,
) {
    let max = limits.max_pages_per_start_url;
    if pagination.max_pages == 0 || pagination.max_pages > max {
        push(
            errors,
            "pagination.max_pages",
            format!("must be between 1 and {max}"),
        );
    }
    check_optional_selector(
        &pagination.next_selector,
        pagination.next_selector_type,
        "pagination.next_selector",
        limits,
        errors,
    );
    check_optional_selector(
        &pagination.stop_selector,
        None,
        "pagination.stop_selector",
        limits,
        errors,
    );
    if pagination.scroll && mode == Mode::Http {
        push(
            errors,
            "pagination.scroll",
            "only allowed when mode is \"browser\" or \"auto\"",
        );
    }
}
