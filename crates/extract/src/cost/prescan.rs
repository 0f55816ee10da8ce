//! The parse-cost estimate: one pass over the bytes that follows the tokenizer closely
//! enough (comments, raw-text contents and quoted attribute values skipped) and keeps the
//! stack of open elements the tree builder would keep, charging what its scans cost.
//!
//! - A start tag that closes a `<p>` in button scope (`<div>`, `<ul>`, `<h1>`, …) scans
//!   the open elements down to the nearest scope boundary (`<table>`, `<td>`, `<button>`,
//!   `<html>`, …): that many steps.
//! - An end tag looks for its element down the stack: a special element's (`</div>`) down
//!   to the nearest scope boundary, any other (`</span>`) until it meets a special element,
//!   where the parser ignores it; the distance walked is charged. A formatting element's
//!   (`</b>`) with a special element above it is taken out of the stack alone (the adoption
//!   agency keeps the blocks); otherwise the stack is popped to the element.
//!
//! The scan walks no further than it charges, so it stops within the budget.

/// `Err(message)` when parsing `text` would cost more than `budget` steps.
///
/// A page with too few tags to exceed the budget is not scanned at all: every tag starts
/// with `<`, and [`parse_cost`] charges each tag one step plus at most the number of
/// elements open (at most the tags before it), so `T` tags cost at most `T × (T + 1)`.
/// Counting `<` is memchr's vectorised byte count (about 0.25 instructions a byte; the plain
/// iterator count the compiler left scalar took 4.7), far cheaper than the scan; most real
/// pages (a few thousand tags against the default budget of ten million) stop here.
pub(crate) fn check_parse_cost(text: &str, scripting: bool, budget: u64) -> Result<(), String> {
    let tags = memchr::memchr_iter(b'<', text.as_bytes()).count() as u64;
    if tags.saturating_mul(tags.saturating_add(1)) <= budget {
        return Ok(());
    }
    parse_cost(text, scripting, budget).map(|_| ())
}

/// Estimated steps of parsing `text`, or `Err(message)` once the estimate exceeds `budget`
/// (the scan stops there, so it never does much more than `budget` steps of its own).
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

/// What the tree builder does with an element name (bit flags).
const VOID: u16 = 1;
/// Its start tag closes a `<p>` in button scope (or scans like it: `<li>`, `<dd>`).
const SCANS: u16 = 1 << 1;
/// Its content is text up to its end tag (outside foreign content).
const RAW_TEXT: u16 = 1 << 2;
/// The HTML "special" category: end tags of other elements stop at it.
const SPECIAL: u16 = 1 << 3;
/// Scans in button scope stop at it.
const BOUNDARY: u16 = 1 << 4;
/// A formatting element, closed by the adoption agency.
const FORMATTING: u16 = 1 << 5;
/// Its start tag ends foreign (SVG, MathML) content.
const BREAKOUT: u16 = 1 << 6;
/// `<svg>` and `<math>`.
const FOREIGN: u16 = 1 << 7;
/// The rest of the document is text.
const PLAINTEXT: u16 = 1 << 8;
/// `<noscript>`: raw text when scripting is enabled.
const NOSCRIPT: u16 = 1 << 9;

/// The flags of a tag name (ASCII case-insensitive).
fn flags(name: &[u8]) -> u16 {
    let mut lower = [0u8; 10];
    if name.len() > lower.len() {
        return 0;
    }
    for (to, from) in lower.iter_mut().zip(name) {
        *to = from.to_ascii_lowercase();
    }
    match &lower[..name.len()] {
        b"div" | b"p" | b"ul" | b"ol" | b"dl" | b"blockquote" | b"center" | b"h1" | b"h2"
        | b"h3" | b"h4" | b"h5" | b"h6" | b"pre" | b"listing" | b"li" | b"dd" | b"dt" | b"menu" => {
            SCANS | SPECIAL | BREAKOUT
        }
        b"nav" | b"main" | b"aside" | b"header" | b"footer" | b"section" | b"article"
        | b"address" | b"details" | b"dialog" | b"dir" | b"fieldset" | b"figcaption"
        | b"figure" | b"hgroup" | b"search" | b"summary" | b"form" => SCANS | SPECIAL,
        b"table" => SCANS | SPECIAL | BOUNDARY | BREAKOUT,
        b"hr" => VOID | SCANS | SPECIAL | BREAKOUT,
        b"xmp" => SCANS | SPECIAL | RAW_TEXT,
        b"plaintext" => SCANS | SPECIAL | PLAINTEXT,
        b"td" | b"th" | b"caption" | b"applet" | b"marquee" | b"object" | b"html" | b"template"
        | b"button" => SPECIAL | BOUNDARY,
        b"area" | b"base" | b"basefont" | b"bgsound" | b"col" | b"frame" | b"input" | b"keygen"
        | b"link" | b"param" | b"source" | b"track" | b"wbr" => VOID | SPECIAL,
        b"br" | b"embed" | b"img" | b"meta" => VOID | SPECIAL | BREAKOUT,
        b"image" => VOID,
        b"script" | b"style" | b"textarea" | b"title" | b"iframe" | b"noembed" | b"noframes" => {
            RAW_TEXT | SPECIAL
        }
        b"noscript" => NOSCRIPT | SPECIAL,
        b"body" | b"head" => SPECIAL | BREAKOUT,
        b"colgroup" | b"frameset" | b"select" | b"tbody" | b"tfoot" | b"thead" | b"tr" => SPECIAL,
        b"b" | b"big" | b"code" | b"em" | b"font" | b"i" | b"nobr" | b"s" | b"small"
        | b"strike" | b"strong" | b"tt" | b"u" => FORMATTING | BREAKOUT,
        b"a" => FORMATTING,
        b"ruby" | b"span" | b"sub" | b"sup" | b"var" => BREAKOUT,
        b"svg" | b"math" => FOREIGN,
        _ => 0,
    }
}

/// One open element: its name and flags.
struct Open<'t> {
    name: &'t [u8],
    flags: u16,
}

struct Scan<'t> {
    bytes: &'t [u8],
    at: usize,
    /// The open elements, as the parser's stack would hold them (approximately).
    open: Vec<Open<'t>>,
    /// Positions in `open` of the elements that bound a scope: scans stop there.
    boundaries: Vec<usize>,
    /// Open `<svg>` and `<math>` elements: inside them there is no raw text and `/>`
    /// closes an element.
    foreign: usize,
    cost: u64,
}

impl<'t> Scan<'t> {
    fn name(&mut self) -> &'t [u8] {
        let start = self.at;
        while self.at < self.bytes.len() && !is_tag_name_end(self.bytes[self.at]) {
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
                        && !is_tag_name_end(bytes[self.at])
                        && bytes[self.at] != b'='
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
        if !self.bytes[self.at..].starts_with(b"!--") {
            self.skip_past(b">");
            return;
        }
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
    }

    fn skip_past(&mut self, needle: &[u8]) {
        self.at =
            find(self.bytes, self.at, needle).map_or(self.bytes.len(), |at| at + needle.len());
    }

    /// Accounts for a start tag; true when the rest of the document is text (`<plaintext>`).
    fn start_tag(&mut self, name: &'t [u8], self_closing: bool, scripting: bool) -> bool {
        self.cost += 1;
        let flags = flags(name);
        if flags & VOID != 0 {
            return false;
        }
        if self.foreign > 0 {
            if flags & BREAKOUT == 0 {
                if !self_closing {
                    // A foreign `<table>` is neither special nor a scope boundary.
                    self.push(name, 0);
                }
                return false;
            }
            // The parser leaves foreign content: it pops back to an HTML element.
            while self.foreign > 0 {
                match self.open.pop() {
                    Some(popped) if popped.flags & FOREIGN != 0 => self.foreign -= 1,
                    Some(_) => {}
                    None => self.foreign = 0,
                }
            }
            self.forget_boundaries_from(self.open.len());
        }
        if flags & FOREIGN != 0 {
            if !self_closing {
                self.foreign += 1;
                self.push(name, flags);
            }
            return false;
        }
        if flags & SCANS != 0 {
            // The scan for a `<p>` in button scope: down to the nearest scope boundary.
            self.cost += self.scope_length() as u64;
        }
        if flags & PLAINTEXT != 0 {
            return true;
        }
        if flags & RAW_TEXT != 0 || (scripting && flags & NOSCRIPT != 0) {
            self.skip_raw_text(name);
            return false;
        }
        self.push(name, flags);
        false
    }

    /// Skips to the end tag of raw-text element `name`; the element closes there.
    fn skip_raw_text(&mut self, name: &[u8]) {
        let mut from = self.at;
        while let Some(end) = find(self.bytes, from, b"</") {
            let tag = end + 2;
            if self
                .bytes
                .get(tag..tag + name.len())
                .is_some_and(|candidate| candidate.eq_ignore_ascii_case(name))
            {
                self.at = end;
                return;
            }
            from = tag;
        }
        self.at = self.bytes.len();
    }

    fn push(&mut self, name: &'t [u8], flags: u16) {
        if flags & BOUNDARY != 0 {
            self.boundaries.push(self.open.len());
        }
        self.open.push(Open { name, flags });
    }

    /// Open elements above the nearest scope boundary.
    fn scope_length(&self) -> usize {
        self.open.len() - self.boundaries.last().map_or(0, |at| at + 1)
    }

    fn forget_boundaries_from(&mut self, index: usize) {
        while self.boundaries.last().is_some_and(|at| *at >= index) {
            self.boundaries.pop();
        }
    }

    /// An end tag: the parser looks for its element down the stack (see the module
    /// documentation); the distance walked is charged.
    fn end_tag(&mut self, name: &[u8]) {
        self.cost += 1;
        let flags = flags(name);
        let floor = self.boundaries.last().copied().unwrap_or(0);
        let mut special_above = false;
        let mut found = None;
        for index in (floor..self.open.len()).rev() {
            self.cost += 1;
            let open = &self.open[index];
            if open.name.eq_ignore_ascii_case(name) {
                found = Some(index);
                break;
            }
            if open.flags & SPECIAL != 0 {
                if flags & (SPECIAL | FORMATTING) == 0 {
                    // Any other end tag stops at a special element: ignored.
                    return;
                }
                special_above = true;
            }
        }
        let Some(index) = found else {
            return;
        };
        if flags & FORMATTING != 0 && special_above {
            // The adoption agency takes the formatting element out; the blocks stay open.
            self.open.remove(index);
            self.forget_boundaries_from(index);
            return;
        }
        for popped in self.open.drain(index..) {
            if popped.flags & FOREIGN != 0 {
                self.foreign = self.foreign.saturating_sub(1);
            }
        }
        self.forget_boundaries_from(index);
    }
}

fn is_tag_name_end(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>')
}

fn find_byte(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    memchr::memchr(byte, bytes.get(from..)?).map(|at| from + at)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes.get(from..)?, needle).map(|at| from + at)
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
    fn end_tags_the_parser_ignores_do_not_empty_the_estimated_stack() {
        // `</span>` meets a `<div>` (a special element) first: the parser ignores it, so the
        // divs stay open and nest ever deeper. Popping them here would estimate this 10 MB
        // page, hours of parsing, as cheap.
        let page = format!("<body>{}", "<span><div><div><div></span>".repeat(100_000));
        assert!(parse_cost(&page, false, 10_000_000).is_err());
        // `</b>` over blocks: the adoption agency keeps the blocks open too.
        let page = format!("<body>{}", "<b><div><div><div></b>".repeat(100_000));
        assert!(parse_cost(&page, false, 10_000_000).is_err());
        // Blocks that are closed stay cheap however many there are.
        let page = format!(
            "<body>{}",
            "<span><div><div><div></div></div></div></span>".repeat(100_000)
        );
        assert!(parse_cost(&page, false, 10_000_000).unwrap() < 3_000_000);
    }

    #[test]
    fn the_tag_count_shortcut_never_lets_through_what_the_scan_refuses() {
        // Pages that cost the most per tag, each with just few enough tags for the shortcut
        // (T × (T + 1) within the budget): the scan must find them within the budget too.
        let budget = 1_000_000;
        let worst_pages = [
            "<div>".repeat(999),
            "<span><div><div><div></span>".repeat(199),
            format!("{}{}", "<div>".repeat(500), "</span>".repeat(499)),
            format!("{}{}", "<div>".repeat(500), "</div>".repeat(499)),
        ];
        for page in worst_pages {
            let tags = page.matches('<').count() as u64;
            assert!(tags * (tags + 1) <= budget, "{tags} tags");
            let cost = parse_cost(&page, false, budget);
            assert!(cost.is_ok(), "{cost:?} for {}", &page[..30]);
            assert_eq!(check_parse_cost(&page, false, budget), Ok(()));
        }
        let deep = nest("<div>", "</div>", 100_000);
        assert!(check_parse_cost(&deep, false, 10_000_000).is_err());
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
