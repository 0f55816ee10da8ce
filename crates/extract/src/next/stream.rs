//! The streaming pass of `find_next`: one `lol_html` pass over the text instead of a tree,
//! for pagination selectors whose matches do not depend on tree construction.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use scraper::Html;
use url::Url;

use super::usable_next_url;
use crate::NextPage;
use crate::compile::Sel;

/// The streaming plan for `find_next`: used only when every pagination selector is a list
/// of compound CSS selectors (`a.next`, `a[rel=next], a.next`; not `.pager a`). Those
/// match the same elements whether or not the parser rebuilt the tree; combinators and
/// structural pseudo-classes depend on tree construction, which `lol_html` does not do.
#[derive(Debug)]
pub(crate) struct QuickNext {
    next: Option<lol_html::Selector>,
    stop: Option<lol_html::Selector>,
    template: lol_html::Selector,
    base: lol_html::Selector,
    noscript: lol_html::Selector,
}

impl QuickNext {
    pub(crate) fn plan(
        next: Option<(&Sel, &str)>,
        stop: Option<(&Sel, &str)>,
    ) -> Option<QuickNext> {
        fn streaming(selector: Option<(&Sel, &str)>) -> Option<Option<lol_html::Selector>> {
            match selector {
                None => Some(None),
                Some((Sel::Css(_), source))
                    if is_compound_list(source) && names_no_implied_element(source) =>
                {
                    source.parse().ok().map(Some)
                }
                Some(_) => None,
            }
        }
        let plan = QuickNext {
            next: streaming(next)?,
            stop: streaming(stop)?,
            template: "template".parse().ok()?,
            base: "base[href]".parse().ok()?,
            noscript: "noscript".parse().ok()?,
        };
        (plan.next.is_some() || plan.stop.is_some()).then_some(plan)
    }

    /// `None` when `lol_html` gave up (a parsing ambiguity) or cannot agree with the full
    /// parse: the caller then parses fully.
    ///
    /// `lol_html` reads `<noscript>` content as text, as a browser with scripting does. A
    /// page fetched over HTTP (`rendered` false) is parsed without scripting, where that
    /// content is markup; so its text is streamed again as markup, in its place in the
    /// document, when it is plain markup that ends where the text ended (see
    /// [`is_plain_markup`]); otherwise the full parse answers.
    pub(crate) fn run(&self, text: &str, page_url: &Url, rendered: bool) -> Option<NextPage> {
        let (events, mut stop) = self.stream(text, !rendered)?;
        let mut base_href: Option<String> = None;
        let mut candidates = Vec::new();
        for event in events {
            // Noscript content holds no `<noscript>` (is_plain_markup), so its events are
            // only candidates and bases: one level of expansion is all there is.
            let expanded = match event {
                Event::Noscript(content) => {
                    if !is_plain_markup(&content) {
                        return None;
                    }
                    let (inner, inner_stop) = self.stream(&content, false)?;
                    stop |= inner_stop;
                    inner
                }
                other => vec![other],
            };
            for event in expanded {
                match event {
                    Event::Candidate(href) => candidates.push(href),
                    Event::Base(href) => {
                        base_href.get_or_insert(href);
                    }
                    Event::Noscript(_) => return None,
                }
            }
        }
        let base = base_url(base_href.as_deref(), page_url);
        let url = candidates
            .iter()
            .find_map(|href| usable_next_url(&base, &decode_attribute(href)));
        Some(NextPage { url, stop })
    }

    /// One streaming pass: what it saw in source order, and whether the stop selector
    /// matched. With `noscript_is_markup`, each `<noscript>`'s text is handed back for a
    /// pass of its own.
    fn stream(&self, text: &str, noscript_is_markup: bool) -> Option<(Vec<Event>, bool)> {
        let found = Rc::new(Found::default());
        let mut settings = lol_html::Settings::new();
        settings = settings.append_element_content_handler(inert_tracker(&self.template, &found));
        if noscript_is_markup {
            settings =
                settings.append_element_content_handler(noscript_collector(&self.noscript, &found));
        }
        settings = settings.append_element_content_handler(base_finder(&self.base, &found));
        if let Some(next) = &self.next {
            let found = Rc::clone(&found);
            let handler = lol_html::ElementContentHandlers::default().element(
                move |element: &mut lol_html::html_content::Element<'_, '_>| {
                    if !is_inert(&found, element)
                        && let Some(href) = element.get_attribute("href")
                    {
                        found.events.borrow_mut().push(Event::Candidate(href));
                    }
                    Ok(())
                },
            );
            settings = settings.append_element_content_handler((Cow::Borrowed(next), handler));
        }
        if let Some(stop) = &self.stop {
            let found = Rc::clone(&found);
            let handler = lol_html::ElementContentHandlers::default().element(
                move |element: &mut lol_html::html_content::Element<'_, '_>| {
                    if !is_inert(&found, element) {
                        found.stop.set(true);
                    }
                    Ok(())
                },
            );
            settings = settings.append_element_content_handler((Cow::Borrowed(stop), handler));
        }
        let mut rewriter = lol_html::HtmlRewriter::new(settings, |_: &[u8]| {});
        rewriter.write(text.as_bytes()).ok()?;
        rewriter.end().ok()?;
        let events = found.events.take();
        Some((events, found.stop.get()))
    }
}

/// Whether `<noscript>` content that `lol_html` read as text is tokenized as markup the
/// same way and ends where the text ended: no comment, script, `<template>`, `<noscript>`,
/// `<plaintext>` or foreign content (`<svg>`, `<math>`), every raw-text element
/// (`<iframe>`, `<style>`, `<textarea>`, …) closed, and no tag left open (an attribute
/// value such as `alt="</noscript>"` would have ended the text early). Anything else is
/// left to the full parse.
fn is_plain_markup(content: &str) -> bool {
    const RAW_TEXT: [&str; 7] = [
        "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes",
    ];
    const REFUSED: [&str; 7] = [
        "script",
        "template",
        "noscript",
        "plaintext",
        "svg",
        "math",
        "base",
    ];
    let bytes = content.as_bytes();
    let mut index = 0;
    while let Some(offset) = bytes[index..].iter().position(|&byte| byte == b'<') {
        index += offset;
        let rest = &bytes[index + 1..];
        if rest.starts_with(b"!") || rest.starts_with(b"?") {
            // Comments (which may hold `</noscript>`) and bogus comments.
            return false;
        }
        let is_end = rest.starts_with(b"/");
        let name_start = usize::from(is_end);
        if !rest.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            index += 1;
            continue;
        }
        let name_length = rest[name_start..]
            .iter()
            .position(|byte| byte.is_ascii_whitespace() || matches!(byte, b'/' | b'>'))
            .unwrap_or(rest.len() - name_start);
        let name = content[index + 1 + name_start..index + 1 + name_start + name_length]
            .to_ascii_lowercase();
        let Some(tag_end) = end_of_tag(bytes, index + 1 + name_start + name_length) else {
            return false;
        };
        index = tag_end;
        if is_end {
            continue;
        }
        if REFUSED.contains(&name.as_str()) {
            return false;
        }
        if RAW_TEXT.contains(&name.as_str()) {
            let closing = format!("</{name}");
            let Some(close) = find_ignore_ascii_case(&content[index..], &closing) else {
                return false;
            };
            let Some(close_end) = end_of_tag(bytes, index + close + closing.len()) else {
                return false;
            };
            index = close_end;
        }
    }
    true
}

/// The index after the `>` that ends the tag whose attributes start at `from`; quoted
/// values may hold `>`. `None` when the tag is still open at the end.
fn end_of_tag(bytes: &[u8], from: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (offset, &byte) in bytes.get(from..)?.iter().enumerate() {
        match quote {
            Some(open) if byte == open => quote = None,
            Some(_) => {}
            None if byte == b'"' || byte == b'\'' => quote = Some(byte),
            None if byte == b'>' => return Some(from + offset + 1),
            None => {}
        }
    }
    None
}

fn find_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// An attribute value as the tree builder would store it: `lol_html` hands out the source
/// text, character references (`&amp;`) undecoded. Values with a reference go through
/// html5ever itself, so the decoding rules (legacy references without `;`, the attribute
/// exceptions) are exactly those of the full parse.
/// A NUL becomes U+FFFD, as the HTML tokenizer replaces it in attribute values (`lol_html`
/// keeps it).
fn decode_attribute(raw: &str) -> Cow<'_, str> {
    if raw.contains('\0') {
        return Cow::Owned(decode_attribute(&raw.replace('\0', "\u{FFFD}")).into_owned());
    }
    if !raw.contains('&') {
        return Cow::Borrowed(raw);
    }
    // The source value cannot contain the quote that delimited it, so one of the two
    // quotes is free; an unquoted value contains neither.
    let tag = if raw.contains('"') {
        format!("<a href='{raw}'>")
    } else {
        format!("<a href=\"{raw}\">")
    };
    let fragment = Html::parse_fragment(&tag);
    let decoded = fragment
        .tree
        .root()
        .descendants()
        .filter_map(scraper::ElementRef::wrap)
        .find_map(|element| element.attr("href").map(str::to_owned));
    decoded.map_or(Cow::Borrowed(raw), Cow::Owned)
}

/// What the streaming pass saw. Shared by handlers through `Rc` because `lol_html` end-tag
/// handlers must be `'static`.
#[derive(Default)]
struct Found {
    /// Depth inside `<template>` contents, which the tree never matches.
    inert_depth: Cell<usize>,
    /// Next-link `href`s, `<base href>`s and `<noscript>` contents, in source order: which
    /// candidate is usable depends on the base URL, which a later `<base>` (or one inside a
    /// `<noscript>`) can still set.
    events: RefCell<Vec<Event>>,
    stop: Cell<bool>,
}

enum Event {
    Candidate(String),
    Base(String),
    /// The text of a `<noscript>` outside template contents.
    Noscript(String),
}

/// The document's base URL from the first `<base href>`, as [`crate::values`] finds it
/// on the tree.
fn base_url(base_href: Option<&str>, page_url: &Url) -> Url {
    match base_href {
        Some(href) => page_url
            .join(decode_attribute(href).trim())
            .ok()
            .filter(|base| !base.cannot_be_a_base())
            .unwrap_or_else(|| page_url.clone()),
        None => page_url.clone(),
    }
}

type Handler<'s, 'h> = (
    Cow<'s, lol_html::Selector>,
    lol_html::ElementContentHandlers<'h>,
);

/// Whether `element` is inside template contents. A `<template>` itself is not (the tree
/// matches it), although the inert tracker, which runs first, has already counted it.
fn is_inert(found: &Found, element: &lol_html::html_content::Element<'_, '_>) -> bool {
    let own = usize::from(element.tag_name().eq_ignore_ascii_case("template"));
    found.inert_depth.get() > own
}

fn inert_tracker<'s, 'h>(template: &'s lol_html::Selector, found: &Rc<Found>) -> Handler<'s, 'h> {
    let found = Rc::clone(found);
    let handlers = lol_html::ElementContentHandlers::default().element(
        move |element: &mut lol_html::html_content::Element<'_, '_>| {
            found.inert_depth.set(found.inert_depth.get() + 1);
            let on_close = Rc::clone(&found);
            // A template without an end tag stays open to the end of the document in the
            // html5ever tree too, so an unmatched increment is the right answer.
            let _ = element.on_end_tag(Box::new(move |_| {
                on_close
                    .inert_depth
                    .set(on_close.inert_depth.get().saturating_sub(1));
                Ok(())
            }));
            Ok(())
        },
    );
    (Cow::Borrowed(template), handlers)
}

fn base_finder<'s, 'h>(base: &'s lol_html::Selector, found: &Rc<Found>) -> Handler<'s, 'h> {
    let found = Rc::clone(found);
    let handlers = lol_html::ElementContentHandlers::default().element(
        move |element: &mut lol_html::html_content::Element<'_, '_>| {
            if found.inert_depth.get() == 0
                && let Some(href) = element.get_attribute("href")
            {
                found.events.borrow_mut().push(Event::Base(href));
            }
            Ok(())
        },
    );
    (Cow::Borrowed(base), handlers)
}

/// Collects the text of each `<noscript>` as an event. One inside template contents gives
/// up: its content is inert either way, but where it ends is not known here.
fn noscript_collector<'s, 'h>(
    noscript: &'s lol_html::Selector,
    found: &Rc<Found>,
) -> Handler<'s, 'h> {
    let on_element = Rc::clone(found);
    let on_text = Rc::clone(found);
    let handlers = lol_html::ElementContentHandlers::default()
        .element(move |_: &mut lol_html::html_content::Element<'_, '_>| {
            if on_element.inert_depth.get() > 0 {
                return Err("a noscript in template contents".into());
            }
            on_element
                .events
                .borrow_mut()
                .push(Event::Noscript(String::new()));
            Ok(())
        })
        .text(move |chunk: &mut lol_html::html_content::TextChunk<'_>| {
            // Raw text: no element can open between the start tag and this text.
            if let Some(Event::Noscript(content)) = on_text.events.borrow_mut().last_mut() {
                content.push_str(chunk.as_str());
            }
            Ok(())
        });
    (Cow::Borrowed(noscript), handlers)
}

/// Whether a CSS selector list is made only of compound selectors: no combinators
/// (whitespace, `>`, `+`, `~`) and no pseudo-classes, outside brackets and quotes.
/// Elements the tree builder creates without a tag in the source (`<td>` directly in a
/// `<table>` gets a `<tbody>` and a `<tr>`; every document gets `<html>`, `<head>` and
/// `<body>`): a streaming pass sees no tag for them, so a selector that names one (or
/// matches any element, `*`) can only be answered by the full parse. They carry no
/// attributes, so class, id and attribute selectors without a type never match them.
const IMPLIED_ELEMENTS: [&str; 6] = ["html", "head", "body", "tbody", "tr", "colgroup"];

/// Whether no compound of a compound list (see [`is_compound_list`]) has `*` or an
/// implied element as its type selector.
fn names_no_implied_element(source: &str) -> bool {
    source.split(',').all(|part| {
        let part = part.trim_start();
        let type_name: String = part
            .chars()
            .take_while(|c| {
                c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '*' || *c == '|'
            })
            .collect();
        let type_name = type_name
            .rsplit('|')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        type_name != "*" && !IMPLIED_ELEMENTS.contains(&type_name.as_str())
    })
}

fn is_compound_list(source: &str) -> bool {
    let mut bracket = 0usize;
    let mut quote: Option<char> = None;
    let mut part_has_content = false;
    let mut space_after_content = false;
    for c in source.chars() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '[' => bracket += 1,
            ']' => bracket = bracket.saturating_sub(1),
            _ if bracket > 0 => {}
            ',' => {
                part_has_content = false;
                space_after_content = false;
                continue;
            }
            ':' | '>' | '+' | '~' | '\\' => return false,
            c if c.is_whitespace() => {
                space_after_content = part_has_content;
                continue;
            }
            _ => {}
        }
        if space_after_content {
            return false;
        }
        part_has_content = true;
    }
    quote.is_none() && bracket == 0
}

#[cfg(test)]
mod tests {
    //! The integration tests compare `find_next` with `extract`; these prove the streaming
    //! path really ran for them (instead of silently falling back to a full parse).
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::css::Css;

    #[test]
    fn selectors_naming_elements_the_parser_implies_are_not_streamed() {
        for source in [
            "tbody", "TBODY", "a, tbody", "body.x", "tr[id]", "*", "html", "head",
        ] {
            assert!(!names_no_implied_element(source), "{source}");
        }
        for source in [
            "a.next",
            "a[rel=next], .next",
            "[rel=next]",
            "tbody-link",
            "table",
        ] {
            assert!(names_no_implied_element(source), "{source}");
        }
    }

    fn plan(next: &str, stop: Option<&str>) -> Option<QuickNext> {
        let css = Sel::Css(Css::parse(next).unwrap());
        let stop_css = stop.map(|stop| Sel::Css(Css::parse(stop).unwrap()));
        QuickNext::plan(Some((&css, next)), stop_css.as_ref().zip(stop))
    }

    #[test]
    fn compound_selectors_stream_and_combinators_do_not() {
        assert!(plan("a.next", None).is_some());
        assert!(plan("a[rel=next], link[rel='next' i]", Some(".end")).is_some());
        assert!(plan("a[title='a b']", None).is_some());
        assert!(plan("nav a", None).is_none());
        assert!(plan("a.next", Some("ul > li")).is_none());
        assert!(plan("li:first-child a", None).is_none());
    }

    #[test]
    fn streaming_handles_references_templates_and_uppercase_without_falling_back() {
        let page_url = Url::parse("https://shop.example/").unwrap();
        let quick = plan("a.next", Some(".stop")).unwrap();
        let html = r#"<base href="/r&amp;d/"><template><a class="next" href="/inert"></a><b class="stop"></b></template>
            <noscript><a class="next" href="/noscript"></a></noscript><A CLASS="next" HREF="x?a=1&amp;b=2">n</A>"#;
        // A rendered page: `<noscript>` content is text, for lol_html as for the tree.

        let next = quick.run(html, &page_url, true).unwrap();

        assert_eq!(
            next.url.unwrap().as_str(),
            "https://shop.example/r&d/x?a=1&b=2"
        );
        assert!(!next.stop);
    }

    #[test]
    fn noscript_content_of_a_page_without_scripting_streams_as_markup_when_it_is_plain() {
        let page_url = Url::parse("https://shop.example/").unwrap();
        let quick = plan("a.next", None).unwrap();
        let next = |html: &str| {
            quick
                .run(html, &page_url, false)
                .map(|next| next.url.map(|url| url.path().to_owned()))
        };

        assert_eq!(
            next(r#"<noscript><iframe src="/gtm"></iframe></noscript><a class=next href=/2>n</a>"#),
            Some(Some("/2".to_owned()))
        );
        assert_eq!(
            next(r#"<noscript><a class=next href=/ns>n</a></noscript><a class=next href=/2>"#),
            Some(Some("/ns".to_owned()))
        );
        assert_eq!(
            next(r#"<noscript><img alt="</noscript><a class=next href=/2>">"#),
            None
        );
        assert_eq!(next("<noscript><!-- </noscript> --></noscript>"), None);
    }
}
