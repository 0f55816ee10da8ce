//! The cheap scan every selector passes before any parser sees it: its length and its
//! nesting depth. CSS and XPath parsers recurse once (or more) per nesting level, so a
//! selector of 2,000 nested parentheses would overflow a thread's stack; this scan is a
//! single loop with no recursion, and the parsers only ever see what it let through.

use crate::Limits;

/// Why a selector was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorScanError {
    #[error("selector of {bytes} bytes exceeds the limit of {limit} (limits.max_selector_bytes)")]
    TooLong { bytes: usize, limit: usize },
    #[error("nesting depth {depth} exceeds the limit of {limit} (limits.max_selector_depth)")]
    TooDeep { depth: usize, limit: usize },
}

/// Checks `selector` against `limits.max_selector_bytes` and `limits.max_selector_depth`.
///
/// Depth counts `(`, `[` and `{` outside quoted strings; for CSS also outside comments
/// and escapes (`\(`), for XPath also each unary minus (`- - - 1` nests like brackets
/// in the parser). A closer only closes the bracket it matches, as in the CSS
/// tokenizer, so `(]` cannot hide depth. Strings end where each language ends them (CSS:
/// at the quote or a newline; XPath has no escapes), so a quote cannot hide brackets
/// from this scan that the parser would then see.
pub fn scan_selector(
    selector: &str,
    is_xpath: bool,
    limits: &Limits,
) -> Result<(), SelectorScanError> {
    if selector.len() > limits.max_selector_bytes {
        return Err(SelectorScanError::TooLong {
            bytes: selector.len(),
            limit: limits.max_selector_bytes,
        });
    }
    let depth = if is_xpath {
        xpath_depth(selector.as_bytes())
    } else {
        css_depth(selector.as_bytes())
    };
    if depth > limits.max_selector_depth {
        return Err(SelectorScanError::TooDeep {
            depth,
            limit: limits.max_selector_depth,
        });
    }
    Ok(())
}

/// Open brackets, each with the depth it added (1, or more for XPath negations that
/// wrap it).
struct Brackets {
    open: Vec<(u8, usize)>,
    depth: usize,
    deepest: usize,
}

impl Brackets {
    fn new() -> Self {
        Brackets {
            open: Vec::new(),
            depth: 0,
            deepest: 0,
        }
    }

    fn open(&mut self, opener: u8, added: usize) {
        let closer = match opener {
            b'(' => b')',
            b'[' => b']',
            _ => b'}',
        };
        self.open.push((closer, added));
        self.depth += added;
        self.deepest = self.deepest.max(self.depth);
    }

    /// Closes the innermost bracket when `closer` matches it; a stray closer changes
    /// nothing (for the CSS tokenizer it is an ordinary token).
    fn close(&mut self, closer: u8) {
        if let Some(&(expected, added)) = self.open.last()
            && expected == closer
        {
            self.open.pop();
            self.depth -= added;
        }
    }

    fn reach(&mut self, depth: usize) {
        self.deepest = self.deepest.max(depth);
    }
}

fn css_depth(bytes: &[u8]) -> usize {
    let mut brackets = Brackets::new();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            // An escape: the next character is literal (hex escapes are digits, never
            // brackets). Continuation bytes of UTF-8 are never ASCII, so skipping one
            // byte of a multi-byte character is harmless.
            b'\\' => index += 1,
            quote @ (b'"' | b'\'') => {
                index += 1;
                while index < bytes.len() {
                    match bytes[index] {
                        b'\\' => index += 1,
                        b'\n' | b'\r' | b'\x0c' => break,
                        byte if byte == quote => break,
                        _ => {}
                    }
                    index += 1;
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                index += 2;
                while index < bytes.len() && !bytes[index..].starts_with(b"*/") {
                    index += 1;
                }
                index += 1;
            }
            opener @ (b'(' | b'[' | b'{') => brackets.open(opener, 1),
            closer @ (b')' | b']' | b'}') => brackets.close(closer),
            _ => {}
        }
        index += 1;
    }
    brackets.deepest
}

fn xpath_depth(bytes: &[u8]) -> usize {
    let mut brackets = Brackets::new();
    // Unary minus signs in a row, not yet applied to an operand: each nests one level.
    let mut negations = 0usize;
    // The last significant byte ended an operand (a name, a number, `)`, `]`, a string),
    // so a `-` after it is subtraction or part of a name, not a negation.
    let mut after_operand = false;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        match byte {
            quote @ (b'"' | b'\'') => {
                index += 1;
                while index < bytes.len() && bytes[index] != quote {
                    index += 1;
                }
                negations = 0;
                after_operand = true;
            }
            b'-' if !after_operand => {
                negations += 1;
                brackets.reach(brackets.depth + negations);
            }
            opener @ (b'(' | b'[' | b'{') => {
                brackets.open(opener, 1 + negations);
                negations = 0;
                after_operand = false;
            }
            closer @ (b')' | b']' | b'}') => {
                brackets.close(closer);
                negations = 0;
                after_operand = true;
            }
            byte if byte.is_ascii_whitespace() => {}
            byte => {
                negations = 0;
                after_operand = byte.is_ascii_alphanumeric()
                    || matches!(byte, b'_' | b'.' | b'*' | b'-')
                    || !byte.is_ascii();
            }
        }
        index += 1;
    }
    brackets.deepest
}

/// The first prefixed name in an XPath (`x:a` in `//x:a`, `@x:lang`, `x:*`, `fn:f()`), or
/// `None`. There are no namespaces to bind a prefix to, and `sxd-xpath` panics on a
/// prefixed name test during evaluation, so such selectors are refused. A colon counts
/// outside string literals only, and not in an axis (`child::a`).
pub fn xpath_namespace_prefix(selector: &str) -> Option<&str> {
    let bytes = selector.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            quote @ (b'"' | b'\'') => {
                index += 1;
                while index < bytes.len() && bytes[index] != quote {
                    index += 1;
                }
            }
            b':' if bytes.get(index + 1) == Some(&b':') => index += 1,
            b':' => {
                let is_name = |byte: &u8| {
                    byte.is_ascii_alphanumeric()
                        || matches!(byte, b'_' | b'-' | b'.')
                        || !byte.is_ascii()
                };
                let start = bytes[..index]
                    .iter()
                    .rposition(|byte| !is_name(byte))
                    .map_or(0, |before| before + 1);
                let end = bytes[index + 1..]
                    .iter()
                    .position(|byte| !(is_name(byte) || *byte == b'*'))
                    .map_or(bytes.len(), |after| index + 1 + after);
                // Both ends are ASCII bytes or string ends, so they are char boundaries.
                return Some(selector.get(start..end).unwrap_or(selector));
            }
            _ => {}
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_comments_and_escapes() {
        assert_eq!(css_depth(b"div:not(:is(a, b))"), 2);
        assert_eq!(css_depth(b"a[title='(((']"), 1);
        assert_eq!(css_depth(b"a[title=\"\\\"(((\"]"), 1);
        assert_eq!(css_depth(b"a\\(\\(b"), 0);
        assert_eq!(css_depth(b"/* ( \" */ :not(:not(a))"), 2);
        assert_eq!(css_depth(b"a[x=\"\n(((]"), 4);
        assert_eq!(css_depth(b":not(]:not(]:not(]"), 3);
        assert_eq!(xpath_depth(b"//a[contains(@title, '((')]"), 2);
        assert_eq!(xpath_depth(b"//a[@x=\"\\\"](((1)))"), 3);
        assert_eq!(xpath_depth(b"- - - 1"), 3);
        assert_eq!(xpath_depth(b"-(-(-(1)))"), 6);
        assert_eq!(xpath_depth(b"//div[@data-id - 1 > 0]"), 1);
        assert_eq!(xpath_depth(b"count(//a) - 1"), 1);
    }

    #[test]
    fn prefixed_names_are_found_outside_literals_and_axes() {
        assert_eq!(xpath_namespace_prefix("//x:a"), Some("x:a"));
        assert_eq!(xpath_namespace_prefix("h2:n"), Some("h2:n"));
        assert_eq!(xpath_namespace_prefix("//a/@xml:lang"), Some("xml:lang"));
        assert_eq!(xpath_namespace_prefix("//svg:*"), Some("svg:*"));
        assert_eq!(xpath_namespace_prefix("child::a/attribute::href"), None);
        assert_eq!(
            xpath_namespace_prefix("//a[@title='x:y' or name()=\"b:c\"]"),
            None
        );
        assert_eq!(
            xpath_namespace_prefix("//a[contains(@href, 'https:')]"),
            None
        );
        assert_eq!(xpath_namespace_prefix("descendant::p:q"), Some("p:q"));
    }
}
