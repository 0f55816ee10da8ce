//! Reading values out of elements: normalised text, `href`/`src` made absolute, the
//! document's base URL.

use ego_tree::iter::Edge;
use html5ever::serialize::{SerializeOpts, TraversalScope};
use scraper::{ElementRef, Html, Node};
use url::Url;

use crate::cost::{STEP_BATCH, Steps};

/// Text content of `element` with whitespace collapsed and trimmed; text inside
/// `<script>`, `<style>`, `<template>` descendants skipped, and inside `<noscript>` ones when
/// the page was parsed with scripting (there its content is raw markup, not elements);
/// block boundaries read as whitespace (see the crate documentation). `Err` carries the
/// length the text would have had when it is longer than `max_bytes`: nothing beyond
/// `max_bytes` is stored, so a page-sized text costs no more than the limit.
pub(crate) fn element_text(
    element: ElementRef<'_>,
    scripting: bool,
    max_bytes: usize,
    steps: &Steps,
) -> Result<String, usize> {
    let mut collector = Collapser::new(max_bytes);
    // Depth inside a skipped subtree; 0 means "collecting".
    let mut skipped = 0usize;
    // Nodes walked and not yet charged: charging in batches keeps the walk tight.
    let mut walked = 0u64;
    for edge in element.traverse() {
        walked += 1;
        if walked == STEP_BATCH {
            if !steps.charge(walked) {
                return Ok(String::new());
            }
            walked = 0;
        }
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Text(text) if skipped == 0 => collector.push(text),
                Node::Element(child) if node != *element => {
                    if skipped > 0 || is_skipped_content(child.name(), scripting) {
                        skipped += 1;
                    } else if is_block(child.name()) {
                        collector.boundary();
                    }
                }
                // Template contents hang under a fragment node: inert, as in a browser.
                Node::Fragment => skipped += 1,
                _ => {}
            },
            Edge::Close(node) => match node.value() {
                Node::Element(child) if node != *element => {
                    if skipped > 0 {
                        skipped -= 1;
                    } else if is_block(child.name()) {
                        collector.boundary();
                    }
                }
                Node::Fragment => skipped = skipped.saturating_sub(1),
                _ => {}
            },
        }
    }
    if !steps.charge(walked) {
        return Ok(String::new());
    }
    collector.finish()
}

/// Collapses whitespace (any Unicode white space, NBSP included) to single spaces and
/// trims, for text that does not come from an element (XPath strings and text nodes).
pub(crate) fn collapse_whitespace(text: &str) -> String {
    let mut collector = Collapser::new(usize::MAX);
    collector.push(text);
    collector.text
}

/// The inner HTML of `element`, serialised as a browser's `innerHTML` would be (`<noscript>`
/// content raw when the page was parsed with scripting). `Err` carries the length when it
/// is longer than `max_bytes`; nothing beyond `max_bytes` is stored.
pub(crate) fn inner_html(
    element: ElementRef<'_>,
    scripting: bool,
    max_bytes: usize,
    steps: &Steps,
) -> Result<String, usize> {
    // The serialiser visits every node once: charge them first (the count stops at the
    // budget, so a too costly element costs no more than what is left).
    let bound = usize::try_from(steps.left().saturating_add(1)).unwrap_or(usize::MAX);
    if !steps.charge(element.descendants().take(bound).count() as u64) {
        return Ok(String::new());
    }
    let mut out = BoundedBuffer {
        bytes: Vec::new(),
        limit: max_bytes,
        length: 0,
    };
    let options = SerializeOpts {
        scripting_enabled: scripting,
        traversal_scope: TraversalScope::ChildrenOnly(None),
        create_missing_parent: false,
    };
    // scraper's serialisation walks the tree with an iterator, so depth costs no stack,
    // and writing to a BoundedBuffer cannot fail.
    if html5ever::serialize::serialize(&mut out, &element, options).is_err() {
        return Ok(String::new());
    }
    if out.length > max_bytes {
        return Err(out.length);
    }
    Ok(String::from_utf8(out.bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()))
}

/// Keeps the first `limit` bytes written and counts the rest.
struct BoundedBuffer {
    bytes: Vec<u8>,
    limit: usize,
    length: usize,
}

impl std::io::Write for BoundedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.length = self.length.saturating_add(buf.len());
        if self.length <= self.limit {
            self.bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collapses whitespace while collecting text, storing at most `limit` bytes and counting
/// the rest.
struct Collapser {
    text: String,
    pending_space: bool,
    limit: usize,
    /// Bytes of the collapsed text so far, stored or not.
    length: usize,
}

impl Collapser {
    fn new(limit: usize) -> Self {
        Collapser {
            text: String::new(),
            pending_space: false,
            limit,
            length: 0,
        }
    }

    fn push(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_whitespace() {
                self.pending_space = true;
            } else {
                let space = self.pending_space && self.length > 0;
                self.pending_space = false;
                self.length += c.len_utf8() + usize::from(space);
                if self.length <= self.limit {
                    if space {
                        self.text.push(' ');
                    }
                    self.text.push(c);
                }
            }
        }
    }

    fn boundary(&mut self) {
        self.pending_space = true;
    }

    fn finish(self) -> Result<String, usize> {
        if self.length > self.limit {
            Err(self.length)
        } else {
            Ok(self.text)
        }
    }
}

/// Elements whose text is not on screen. `<noscript>` content is markup, visible to a
/// client without JavaScript, unless the page was parsed with scripting.
fn is_skipped_content(name: &str, scripting: bool) -> bool {
    matches!(name, "script" | "style" | "template") || (scripting && name == "noscript")
}

/// Elements whose edges separate words on screen (block and table boxes, line breaks).
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "br"
            | "caption"
            | "dd"
            | "details"
            | "dialog"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hgroup"
            | "hr"
            | "li"
            | "main"
            | "nav"
            | "ol"
            | "option"
            | "p"
            | "pre"
            | "section"
            | "summary"
            | "table"
            | "tbody"
            | "td"
            | "tfoot"
            | "th"
            | "thead"
            | "tr"
            | "ul"
    )
}

/// The URL an `<img>` shows: `src`, or `data-src` when `src` is absent, empty or a
/// `data:` placeholder (lazy loading), or the first candidate of `srcset`; a `data:` `src`
/// is the last resort.
pub(crate) fn image_source(element: ElementRef<'_>) -> Option<&str> {
    let non_empty = |name: &str| {
        element
            .attr(name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let src = non_empty("src");
    if let Some(src) = src
        && !starts_with_ignore_case(src, "data:")
    {
        return Some(src);
    }
    non_empty("data-src")
        .or_else(|| non_empty("srcset").and_then(first_srcset_url))
        .or(src)
}

/// The URL of the first candidate in a `srcset` (`a.jpg 1x, b.jpg 2x` → `a.jpg`). URLs may
/// contain commas (`w_100,h_50`), so a candidate ends at whitespace, not at a comma.
fn first_srcset_url(srcset: &str) -> Option<&str> {
    let rest = srcset.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
    let end = rest
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let url = rest[..end].trim_end_matches(',');
    (!url.is_empty()).then_some(url)
}

/// `raw` made absolute against `base`. Only relative references and `http(s)` URLs are
/// resolved; other schemes (`mailto:`, `javascript:`, `data:`, `tel:`) and references the
/// URL parser rejects are kept as written (trimmed), since they are data too.
pub(crate) fn absolute_url(base: &Url, raw: &str) -> String {
    let raw = raw.trim();
    if raw.is_empty() {
        return String::new();
    }
    if let Some(scheme) = scheme_of(raw)
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        return raw.to_owned();
    }
    base.join(raw)
        .map(String::from)
        .unwrap_or_else(|_| raw.to_owned())
}

/// The scheme of an absolute URL (`mailto` in `mailto:a@b`), `None` for a relative one.
pub(crate) fn scheme_of(raw: &str) -> Option<&str> {
    let colon = raw.find(':')?;
    let scheme = &raw[..colon];
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// The document's base URL: the first `<base href>` (outside `<template>`) resolved
/// against the page URL, else the page URL. An unusable base (unparseable, or one such as
/// `data:` that cannot be a base) falls back to the page URL, as browsers do.
pub(crate) fn document_base_url(html: &Html, page_url: &Url) -> Url {
    let mut in_template = 0usize;
    for edge in html.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Fragment => in_template += 1,
                Node::Element(element) if in_template == 0 && element.name() == "base" => {
                    if let Some(href) = element.attr("href") {
                        return page_url
                            .join(href.trim())
                            .ok()
                            .filter(|base| !base.cannot_be_a_base())
                            .unwrap_or_else(|| page_url.clone());
                    }
                }
                _ => {}
            },
            Edge::Close(node) if node.value().is_fragment() => {
                in_template = in_template.saturating_sub(1)
            }
            Edge::Close(_) => {}
        }
    }
    page_url.clone()
}

pub(crate) fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.is_char_boundary(prefix.len())
        && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}
