//! HTML → records: CSS/XPath selection, item scoping, field types, transforms and
//! next-link discovery for one fetched page. Pure and synchronous; bad HTML is data, never
//! an error, and nothing here panics on any input.
//!
//! # How a page is read
//!
//! - **Decoding** ([`decode_html`]): byte-order mark, then the `Content-Type` charset, then a
//!   `<meta>` prescan of the first 4 KiB (the WHATWG algorithm), else UTF-8 when the bytes
//!   are valid UTF-8, else windows-1252.
//! - **Parsing**: html5ever through `scraper`'s tree sink, once per page, so the tree is the
//!   one a browser builds (unclosed tags, misnested formatting, foster-parented table
//!   content). A page fetched over HTTP ([`Page::rendered`] false) is parsed with scripting
//!   *disabled*, as a client without JavaScript sees it: `<noscript>` content is markup, so
//!   the lazy-loading `<img data-srcset=…><noscript><img src=…></noscript>` gives `img[src]`.
//!   A browser snapshot is parsed with scripting enabled, like the live DOM (`<noscript>`
//!   content is one text node). The contents of `<template>` are inert in a browser and are
//!   never matched here either.
//! - **Depth**: as in Chromium, the tree is at most 512 elements deep: an element that would
//!   be deeper is attached to the element at depth 512. Nothing in this crate recurses over
//!   the tree (text, inner HTML, the base URL and the XPath mirror are iterator walks), and
//!   the libraries that do (`sxd-xpath` string values, `selectors` ancestor matching) only
//!   ever see that bounded depth, so a page of 100,000 nested elements extracts on a 2 MiB
//!   stack (tokio's blocking threads) and ancestor walks stay short.
//! - **Items**: with `item_selector`, one record per matching element in document order and
//!   field selectors evaluated *inside* that element (descendants only, like
//!   `element.querySelectorAll`); without it, one record per page.
//! - **XPath** (1.0, `sxd-xpath`): evaluated on a mirror of the same html5ever tree, so CSS
//!   items and XPath fields (or the reverse) mix freely. The mirror is built only for specs
//!   that use XPath. Inside an item, an XPath that starts with `/` is made relative by
//!   prefixing `.`: `//span` means "any span inside this item", which is what users mean.
//!   Only the leading `/` is rewritten: in `//a | //b` the second branch stays absolute,
//!   and `(//a)[1]` is absolute (write `(.//a)[1]`). Element names are matched without
//!   namespaces (`//svg/path` works) and the mirror, like the tree, stops nesting at depth
//!   512.
//!
//! # Field values
//!
//! - `text`: text content with every run of whitespace (NBSP included) collapsed to one
//!   space and trimmed. Text inside `<script>`, `<style>` and `<template>` descendants is
//!   skipped (the selected element itself may be a `<script>`, to read JSON-LD), and inside
//!   `<noscript>` ones on rendered pages only (on HTTP pages it is visible text). Block boundaries (`<p>`, `<div>`, `<li>`, `<td>`, `<br>`, …) count as
//!   whitespace, so `<td>1</td><td>2</td>` reads `1 2` as on screen, not `12`.
//! - `html`: inner HTML, serialised as `innerHTML` is. `attribute`: the named attribute,
//!   unchanged.
//! - `link`: `href`; `image`: `src`, or `data-src` when `src` is absent, empty or a `data:`
//!   placeholder, or the first URL of `srcset`. Both are made absolute against
//!   `<base href>` when present, else the page URL; non-HTTP schemes (`mailto:`,
//!   `javascript:`, `data:`) are kept as written.
//! - An XPath may also select attribute nodes, text nodes, or compute a string, number or
//!   boolean; that value is used directly (numbers and booleans stay JSON numbers and
//!   booleans unless a transform turns them into text).
//! - A field that matches nothing, or whose value is empty, is *missing*. `multiple: true`
//!   collects every match into an array; no match is an empty array (missing for
//!   `required`). A record missing a required field is dropped and counted; a missing
//!   optional field gets its `default`, else `null` (`[]` for `multiple`).
//!
//! # Size limits
//!
//! The limits of [`Extractor::from_validated`]'s spec ([`Extractor::new`]: the defaults)
//! bound what one page can make: a value (`limits.max_value_bytes`, a `multiple` field's
//! list counting as one value), a record's JSON (`max_record_bytes`) and all records of the
//! page (`max_page_records_bytes`). Nothing oversized is built first: a transform step
//! computes its result's length before allocating it (`replace` counts its matches), and
//! text and inner HTML store nothing past the limit while they count. A page that breaks a
//! limit yields no records and [`Extraction::too_large`] says which field or record broke
//! which limit. Selectors pass `selextract_spec::scan_selector` and regexes are compiled by
//! `selextract_spec::build_regex`, so an unvalidated spec cannot reach a parser with a
//! selector or a pattern validation would refuse.
//!
//! # Pagination
//!
//! The next page is the first element matched by `next_selector` whose `href` names a
//! page: `#…`, `javascript:`, `mailto:` and other non-HTTP links are passed over, the URL is
//! made absolute like a link field and loses its fragment. `stop: true` when
//! `stop_selector` matches anywhere. [`Extractor::find_next`] gives the same answer as
//! [`Extraction::next`]; for compound CSS selectors (`a.next`, `a[rel=next], a.next`) it
//! streams the page through `lol_html` instead of building a tree (≈5× cheaper).
//! `lol_html` reads `<noscript>` content as text; on an HTTP page that content is markup, so
//! it is streamed again as markup in its place when it is plain (no comment, script,
//! template, unclosed raw-text element or open tag: the GTM `<noscript><iframe …></iframe>`
//! is), and the full parse answers otherwise.

mod compile;
mod cost;
mod css;
mod decode;
mod next;
mod parse;
mod records;
mod select;
mod transform;
mod values;
mod xpath;

use std::collections::BTreeMap;

use serde::Serialize;

pub use compile::{CompileError, Extractor};
pub use decode::decode_html;

/// One fetched page as the extractor sees it.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The final URL of the page (after redirects): relative links resolve against it.
    pub url: &'a url::Url,
    pub body: &'a [u8],
    /// The `Content-Type` response header, whose `charset` parameter wins over `<meta>`.
    pub content_type: Option<&'a str>,
    /// The body is a DOM snapshot from a browser that ran JavaScript: it is parsed with
    /// scripting enabled (`<noscript>` content is text, as in the live DOM). Otherwise the
    /// page is parsed as a client without JavaScript sees it (`<noscript>` is markup).
    pub rendered: bool,
}

/// Everything extracted from one page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extraction {
    /// One JSON object per kept record; keys in the order of the spec's fields.
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
    pub next: NextPage,
    pub diagnostics: Diagnostics,
    /// Set when a value, a record or the page's records exceed the size limits
    /// (`limits.max_value_bytes`, `max_record_bytes`, `max_page_records_bytes`): the page
    /// then yields no records, and this names the field or record and the limit. The
    /// engine fails such a page with the error class `records_too_large`.
    pub too_large: Option<String>,
    /// Set when the page needs more work than `limits.max_extraction_steps` allows: the
    /// parser's estimated work on deeply nested blocks (then the page is not parsed at
    /// all), or the elements the selections and the text and HTML of the matches visit.
    /// The page then yields no records, and the engine fails it with the error class
    /// `extraction_too_costly`. A page refused before parsing keeps the next page the
    /// streaming pass of [`Extractor::find_next`] finds (it is linear), none otherwise.
    pub too_costly: Option<String>,
}

/// Where pagination goes after this page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NextPage {
    /// The absolute `http(s)` URL of the next page, without fragment.
    pub url: Option<url::Url>,
    /// The stop selector matched somewhere on this page.
    pub stop: bool,
}

/// What happened while extracting one page, for the run's diagnostics and the preview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics {
    /// Name of the encoding the page was decoded with, e.g. `"windows-1251"`.
    pub encoding: &'static str,
    /// Elements matched by `item_selector` (1 per page without it).
    pub items_matched: usize,
    pub records_dropped_missing_required: usize,
    /// Field name → number of items in which the field was missing.
    pub fields_missing: BTreeMap<String, usize>,
    /// Field name → number of values a transform could not convert (they became `null`).
    pub transform_failures: BTreeMap<String, usize>,
    /// Human-readable notes, at most [`MAX_MESSAGES`].
    pub messages: Vec<String>,
}

/// Bound on [`Diagnostics::messages`], so a pathological page cannot flood a run's log.
pub const MAX_MESSAGES: usize = 20;
