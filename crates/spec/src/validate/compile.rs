//! Compiling selectors the way the extractor will, so that a task
//! never fails at run time on something that could have been rejected when it was saved.
//! Parser messages are turned into one readable line.

use crate::selector_is_xpath;

/// Why `selector` does not compile, or `None` when it does.
pub(super) fn selector_problem(selector: &str, is_xpath: bool) -> Option<String> {
    if selector.trim().is_empty() {
        return Some("must not be empty".to_owned());
    }
    if is_xpath {
        return match sxd_xpath::Factory::new().build(selector) {
            Ok(Some(_)) => None,
            Ok(None) => Some("must not be empty".to_owned()),
            Err(error) => Some(format!(
                "invalid XPath expression: {}",
                words_of_identifier(&error.to_string())
            )),
        };
    }
    let error = scraper::Selector::parse(selector).err()?;
    let mut message = format!("invalid CSS selector: {}", css_error_text(&error));
    if selector_is_xpath(selector, None) {
        message.push_str(" (this looks like XPath: set the selector type to \"xpath\")");
    }
    Some(message)
}

/// scraper's Display for unusual errors is a multi-line debug dump addressed to its
/// developers; users get one line.
fn css_error_text(error: &scraper::error::SelectorErrorKind) -> String {
    match error {
        scraper::error::SelectorErrorKind::UnexpectedSelectorParseError(kind) => {
            let debug = format!("{kind:?}");
            words_of_identifier(&debug.split_whitespace().collect::<Vec<_>>().join(" "))
        }
        other => lowercase_first(&other.to_string()),
    }
}

/// scraper capitalises its messages; ours continue after a colon.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Some parser errors display as a bare variant name (`EmptyPredicate`); users read
/// "empty predicate". Text that does not start with such a name is returned unchanged.
fn words_of_identifier(text: &str) -> String {
    let end = text
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(text.len());
    let (identifier, rest) = text.split_at(end);
    if !identifier.starts_with(|c: char| c.is_ascii_uppercase()) {
        return text.to_owned();
    }
    let mut words = String::with_capacity(text.len() + 8);
    for (index, c) in identifier.chars().enumerate() {
        if index > 0 && c.is_ascii_uppercase() {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    words.push_str(rest);
    words
}
