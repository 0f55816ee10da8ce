//! The work budget of one page (`limits.max_extraction_steps`): a step counter that
//! selection and the text and inner-HTML walks draw from, and a linear estimate of the
//! parser's own work made before html5ever ever sees the page.
//!
//! html5ever's tree builder is quadratic on nested blocks: every `<div>` start tag scans
//! the whole stack of open elements for a `<p>` in button scope, so 100,000 nested divs
//! take tens of seconds and a 10 MB page hours. [`parse_cost`] walks the bytes once and
//! adds, for each start tag that does such a scan, the number of elements open at that
//! point (and for an end tag, how far down the stack its element is); a page whose
//! estimate exceeds the budget is refused unparsed.

use std::cell::Cell;

/// Steps left for one page's selections and walks.
#[derive(Debug)]
pub(crate) struct Steps {
    left: Cell<u64>,
    exhausted: Cell<bool>,
}

impl Steps {
    pub(crate) fn new(budget: u64) -> Self {
        Steps {
            left: Cell::new(budget),
            exhausted: Cell::new(false),
        }
    }

    /// Takes `steps` from the budget; false (and exhausted from then on) when there are
    /// not that many left.
    pub(crate) fn charge(&self, steps: u64) -> bool {
        if self.exhausted.get() {
            return false;
        }
        match self.left.get().checked_sub(steps) {
            Some(left) => {
                self.left.set(left);
                true
            }
            None => {
                self.left.set(0);
                self.exhausted.set(true);
                false
            }
        }
    }

    pub(crate) fn left(&self) -> u64 {
        self.left.get()
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }
}

/// The message of a page whose extraction ran out of steps.
pub(crate) fn over_budget(budget: u64) -> String {
    format!(
        "extracting the page needs more than limits.max_extraction_steps ({budget}) steps: \
         the items, matches and their contents are too many or too deeply nested"
    )
}

/// Estimated steps of parsing `text`, or `Err(message)` once the estimate exceeds `budget`
/// (the scan stops there, so it never does more than `budget` steps of its own).
/// `scripting`: `<noscript>` content is raw text, as the parser then reads it.
pub(crate) fn parse_cost(text: &str, scripting: bool, budget: u64) -> Result<u64, String> {
    let bytes = text.as_bytes();
    let mut scan = Scan {
        bytes,
        at: 0,
        open: Vec::new(),
        boundaries: Vec::new(),
        foreign: 0,
        cost: 0,
    };
    while let Some(lt) = find_byte(bytes, scan.at, b'<') {
        scan.at = lt + 1;
        match bytes.get(scan.at) {
            Some(b'!') => scan.skip_markup_declaration(),
            Some(b'?') => scan.skip_past(b">"),
            Some(b'/') if bytes.get(scan.at + 1).is_some_and(u8::is_ascii_alphabetic) => {
                scan.at += 1;
                let name = scan.name();
                scan.skip_attributes();
                scan.end_tag(name);
            }
            Some(byte) if byte.is_ascii_alphabetic() => {
                let name = scan.name();
                let self_closing = scan.skip_attributes();
                if scan.start_tag(name, self_closing, scripting) {
                    break;
                }
            }
            _ => {}
        }
        if scan.cost > budget {
            return Err(format!(
                "parsing the page would take more than limits.max_extraction_steps ({budget}) \
                 steps: block elements nested {} deep",
                scan.open.len()
            ));
        }
    }
    Ok(scan.cost)
}

struct Scan<'t> {
    bytes: &'t [u8],
    at: usize,
    /// Names of the open elements, as the parser's stack would hold them (approximately).
    open: Vec<&'t [u8]>,
    /// Positions in `open` of the elements that bound a scope (`<table>`, `<td>`,
    /// `<button>`, …): the parser's scans down the stack stop there.
    boundaries: Vec<usize>,
    /// Open `<svg>` and `<math>` elements: inside them there is no raw text and `/>`
    /// closes an element.
    foreign: usize,
    cost: u64,
}

impl<'t> Scan<'t> {
    fn name(&mut self) -> &'t [u8] {
        let start = self.at;
        while self.at < self.bytes.len()
            && !matches!(
                self.bytes[self.at],
                b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>'
            )
        {
            self.at += 1;
        }
        &self.bytes[start..self.at]
    }

    /// Skips a tag's attributes the way the tokenizer reads them (quoted values may hold
    /// `>`), up to and past its `>`. True when the tag ends with `/>`.
    fn skip_attributes(&mut self) -> bool {
        let bytes = self.bytes;
        let mut slash = false;
        while self.at < bytes.len() {
            match bytes[self.at] {
                b'>' => {
                    self.at += 1;
                    return slash;
                }
                b'/' => slash = true,
                b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' => {}
                _ => {
                    slash = false;
                    // An attribute name (its first character may be `=`), then maybe a value.
                    self.at += 1;
                    while self.at < bytes.len()
                        && !matches!(
                            bytes[self.at],
                            b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>' | b'='
                        )
                    {
                        self.at += 1;
                    }
                    self.skip_whitespace();
                    if bytes.get(self.at) == Some(&b'=') {
                        self.at += 1;
                        self.skip_whitespace();
                        match bytes.get(self.at) {
                            Some(&quote @ (b'"' | b'\'')) => {
                                self.at = find_byte(bytes, self.at + 1, quote)
                                    .map_or(bytes.len(), |end| end + 1);
                            }
                            _ => {
                                while self.at < bytes.len()
                                    && !matches!(
                                        bytes[self.at],
                                        b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'>'
                                    )
                                {
                                    self.at += 1;
                                }
                            }
                        }
                    }
                    continue;
                }
            }
            self.at += 1;
        }
        slash
    }

    fn skip_whitespace(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|byte| matches!(byte, b'\t' | b'\n' | b'\x0c' | b'\r' | b' '))
        {
            self.at += 1;
        }
    }

    /// `<!--…-->` (also ended by `--!>`; `<!-->` and `<!--->` are empty), or any other
    /// `<!…>` up to its `>`.
    fn skip_markup_declaration(&mut self) {
        let rest = &self.bytes[self.at..];
        if rest.starts_with(b"!--") {
            let body = self.at + 3;
            for empty in [&b">"[..], b"->"] {
                if self.bytes[body..].starts_with(empty) {
                    self.at = body + empty.len();
                    return;
                }
            }
            let mut from = body;
            while let Some(dash) = find_byte(self.bytes, from, b'-') {
                let after = &self.bytes[dash..];
                if after.starts_with(b"-->") {
                    self.at = dash + 3;
                    return;
                }
                if after.starts_with(b"--!>") {
                    self.at = dash + 4;
                    return;
                }
                from = dash + 1;
            }
            self.at = self.bytes.len();
        } else {
            self.skip_past(b">");
        }
    }

    fn skip_past(&mut self, needle: &[u8]) {
        self.at =
            find(self.bytes, self.at, needle).map_or(self.bytes.len(), |at| at + needle.len());
    }

    /// Accounts for a start tag; true when the rest of the document is text (`<plaintext>`).
    fn start_tag(&mut self, name: &'t [u8], self_closing: bool, scripting: bool) -> bool {
        self.cost += 1;
        let lower = |known: &[u8]| name.eq_ignore_ascii_case(known);
        if is_one_of(name, VOID) {
            return false;
        }
        if self.foreign > 0 {
            if is_one_of(name, BREAKOUT) {
                // The parser leaves foreign content: it pops back to an HTML element.
                while self.foreign > 0 {
                    match self.open.pop() {
                        Some(popped)
                            if popped.eq_ignore_ascii_case(b"svg")
                                || popped.eq_ignore_ascii_case(b"math") =>
                        {
                            self.foreign -= 1;
                        }
                        Some(_) => {}
                        None => self.foreign = 0,
                    }
                }
                let depth = self.open.len();
                while self.boundaries.last().is_some_and(|at| *at >= depth) {
                    self.boundaries.pop();
                }
            } else {
                if !self_closing {
                    // A foreign `<table>` is no HTML scope boundary.
                    self.open.push(name);
                }
                return false;
            }
        }
        if lower(b"svg") || lower(b"math") {
            if !self_closing {
                self.foreign += 1;
                self.push(name);
            }
            return false;
        }
        if is_one_of(name, SCANNING) {
            // The scan for a `<p>` in button scope: down to the nearest scope boundary.
            self.cost += self.scope_length() as u64;
        }
        if lower(b"plaintext") {
            return true;
        }
        let raw_text = is_one_of(name, RAW_TEXT) || (scripting && lower(b"noscript"));
        if raw_text {
            // Its content is text up to its end tag; the element itself closes there.
            let mut from = self.at;
            loop {
                match find(self.bytes, from, b"</") {
                    Some(end)
                        if self.bytes.len() >= end + 2 + name.len()
                            && self.bytes[end + 2..end + 2 + name.len()]
                                .eq_ignore_ascii_case(name) =>
                    {
                        self.at = end;
                        break;
                    }
                    Some(end) => from = end + 2,
                    None => {
                        self.at = self.bytes.len();
                        break;
                    }
                }
            }
            return false;
        }
        self.push(name);
        false
    }

    fn push(&mut self, name: &'t [u8]) {
        if is_one_of(name, SCOPE_BOUNDARIES) {
            self.boundaries.push(self.open.len());
        }
        self.open.push(name);
    }

    /// Open elements above the nearest scope boundary.
    fn scope_length(&self) -> usize {
        self.open.len() - self.boundaries.last().map_or(0, |at| at + 1)
    }

    /// An end tag pops its element; the parser looks for it down the stack (to the nearest
    /// scope boundary), which costs the distance. The scan walks no further than it
    /// charges, so it never does more than the budget's work.
    fn end_tag(&mut self, name: &[u8]) {
        self.cost += 1;
        let floor = self.boundaries.last().copied().unwrap_or(0);
        let mut distance = 0u64;
        let mut found = None;
        for index in (floor..self.open.len()).rev() {
            distance += 1;
            if self.open[index].eq_ignore_ascii_case(name) {
                found = Some(index);
                break;
            }
        }
        self.cost += distance;
        if let Some(index) = found {
            for popped in self.open.drain(index..) {
                if popped.eq_ignore_ascii_case(b"svg") || popped.eq_ignore_ascii_case(b"math") {
                    self.foreign = self.foreign.saturating_sub(1);
                }
            }
            while self.boundaries.last().is_some_and(|at| *at >= index) {
                self.boundaries.pop();
            }
        }
    }
}

/// Start tags whose tree-builder rule scans the stack of open elements (closing a `<p>`
/// in button scope, list items, headings).
#[rustfmt::skip]
const SCANNING: &[&[u8]] = &[
    b"address", b"article", b"aside", b"blockquote", b"center", b"details", b"dialog",
    b"dir", b"div", b"dl", b"fieldset", b"figcaption", b"figure", b"footer", b"header",
    b"hgroup", b"main", b"nav", b"ol", b"p", b"search", b"section", b"summary", b"ul",
    b"menu", b"h1", b"h2", b"h3", b"h4", b"h5", b"h6", b"pre", b"listing", b"form", b"li",
    b"table", b"dd", b"dt", b"hr", b"xmp", b"plaintext",
];

/// Elements at which html5ever's scope scans stop (button scope: the default scope and
/// `<button>`).
#[rustfmt::skip]
const SCOPE_BOUNDARIES: &[&[u8]] = &[
    b"applet", b"caption", b"html", b"table", b"td", b"th", b"marquee", b"object",
    b"template", b"button",
];

#[rustfmt::skip]
const VOID: &[&[u8]] = &[
    b"area", b"base", b"br", b"col", b"embed", b"hr", b"img", b"input", b"link", b"meta",
    b"param", b"source", b"track", b"wbr", b"keygen", b"basefont", b"bgsound", b"frame",
    b"image",
];

/// Elements whose content is text up to their end tag (outside foreign content).
#[rustfmt::skip]
const RAW_TEXT: &[&[u8]] = &[
    b"script", b"style", b"textarea", b"title", b"xmp", b"iframe", b"noembed", b"noframes",
];

/// HTML start tags that end foreign (SVG, MathML) content.
#[rustfmt::skip]
const BREAKOUT: &[&[u8]] = &[
    b"b", b"big", b"blockquote", b"body", b"br", b"center", b"code", b"dd", b"div", b"dl",
    b"dt", b"em", b"embed", b"h1", b"h2", b"h3", b"h4", b"h5", b"h6", b"head", b"hr", b"i",
    b"img", b"li", b"listing", b"menu", b"meta", b"nobr", b"ol", b"p", b"pre", b"ruby", b"s",
    b"small", b"span", b"strong", b"strike", b"sub", b"sup", b"table", b"tt", b"u", b"ul",
    b"var", b"font",
];

fn is_one_of(name: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|known| name.eq_ignore_ascii_case(known))
}

fn find_byte(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|candidate| *candidate == byte)
        .map(|at| from + at)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let mut at = from;
    while let Some(first) = find_byte(bytes, at, needle[0]) {
        if bytes[first..].starts_with(needle) {
            return Some(first);
        }
        at = first + 1;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn nest(open: &str, close: &str, depth: usize) -> String {
        format!(
            "<html><body>{}x{}</body></html>",
            open.repeat(depth),
            close.repeat(depth)
        )
    }

    #[test]
    fn nesting_the_parser_handles_in_linear_time_is_estimated_linear() {
        for page in [
            nest("<span>", "</span>", 100_000),
            nest("<a href=/a>", "</a>", 100_000),
            nest("<table><tr><td>", "</td></tr></table>", 100_000),
            nest("<b><i>", "</b></i>", 100_000),
            nest("<template><div>", "</div></template>", 100_000),
            format!("<body>{}", "<div>x</div>".repeat(100_000)),
        ] {
            let cost = parse_cost(&page, false, u64::MAX).unwrap();
            assert!(cost < 1_000_000, "{cost} for {}", &page[..40]);
        }
    }

    #[test]
    fn nested_blocks_are_estimated_quadratic_and_the_scan_stops_at_the_budget() {
        let cost = parse_cost(&nest("<div>", "</div>", 1_000), false, u64::MAX).unwrap();
        assert!((500_000..600_000).contains(&cost), "{cost}");
        let refused = parse_cost(&nest("<div>", "</div>", 100_000), false, 10_000_000);
        assert_eq!(
            refused,
            Err(
                "parsing the page would take more than limits.max_extraction_steps (10000000) \
                 steps: block elements nested 4473 deep"
                    .to_owned()
            )
        );
    }
}
