//! Pagination: the next-page URL and the stop selector, on a parsed tree or — for
//! [`Extractor::find_next`] with simple CSS selectors — in one streaming pass with
//! `lol_html`, which costs a fraction of a full parse.

use std::ops::ControlFlow;

use url::Url;

mod stream;

use crate::compile::{Extractor, Sel};
use crate::cost::check_parse_cost;
use crate::parse::parse_page;
use crate::records::{BaseUrl, Notes, is_xpath, root_element};
use crate::select::{Hit, Scope, Tree};
use crate::values::scheme_of;
use crate::xpath::XpathPage;
use crate::{NextPage, Page, decode_html};

impl Extractor {
    /// Cheap pass that only finds the next-page URL and whether the stop selector matches,
    /// so the engine can request the next page while the full extraction still runs.
    /// Always agrees with [`Extraction::next`](crate::Extraction::next).
    pub fn find_next(&self, page: &Page<'_>) -> NextPage {
        if self.next.is_none() && self.stop.is_none() {
            return NextPage::default();
        }
        let (text, _) = decode_html(page.body, page.content_type);
        if let Some(next) = self.streamed_next(&text, page) {
            return next;
        }
        // A page too costly to parse has no next page in the full extraction either.
        if check_parse_cost(&text, !page.rendered, self.limits.max_extraction_steps).is_err() {
            return NextPage::default();
        }
        let html = parse_page(&text, page.rendered);
        let needs_xpath = is_xpath(self.next.as_ref()) || is_xpath(self.stop.as_ref());
        let package = needs_xpath.then(sxd_document::Package::new);
        let xpath = package
            .as_ref()
            .map(|package| XpathPage::build(&html, package.as_document(), &self.xpaths));
        let tree = Tree::new(
            root_element(&html),
            xpath.as_ref(),
            page.rendered,
            self.limits.max_extraction_steps,
        );
        let base = BaseUrl::new(&html, page.url);
        self.next_on_tree(&tree, &base, &mut Notes::default())
    }

    /// The next page from the streaming pass (linear in the page, so it needs no parse-cost
    /// check), when the selectors allow it and it does not fall back to the full parse.
    pub(crate) fn streamed_next(&self, text: &str, page: &Page<'_>) -> Option<NextPage> {
        if self.next.is_none() && self.stop.is_none() {
            return Some(NextPage::default());
        }
        self.quick_next
            .as_ref()
            .and_then(|quick| quick.run(text, page.url, page.rendered))
    }

    /// Next link and stop flag on an already parsed page.
    pub(crate) fn next_on_tree<'h>(
        &self,
        tree: &Tree<'h, '_, '_>,
        base: &BaseUrl<'h>,
        notes: &mut Notes,
    ) -> NextPage {
        let url = self.next.as_ref().and_then(|sel| match sel {
            Sel::Css(css) => {
                let mut next = None;
                tree.css(css, Scope::Document, |element| {
                    next = element
                        .attr("href")
                        .and_then(|href| usable_next_url(base.get(), href));
                    if next.is_some() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                next
            }
            other => {
                let mut hits = Vec::new();
                if let Err(error) = tree.select(other, Scope::Document, false, &mut hits) {
                    notes.add(format!(
                        "pagination.next_selector: XPath evaluation failed: {error}"
                    ));
                }
                hits.into_iter().find_map(|hit| match hit {
                    Hit::Element(element) => element
                        .attr("href")
                        .and_then(|href| usable_next_url(base.get(), href)),
                    Hit::Text(text) => usable_next_url(base.get(), &text),
                    Hit::Number(_) | Hit::Bool(_) => None,
                })
            }
        });
        let stop = self.stop.as_ref().is_some_and(|sel| {
            let mut hits = Vec::new();
            if let Err(error) = tree.select(sel, Scope::Document, true, &mut hits) {
                notes.add(format!(
                    "pagination.stop_selector: XPath evaluation failed: {error}"
                ));
            }
            hits.iter().any(|hit| match hit {
                Hit::Element(_) => true,
                Hit::Text(text) => !text.is_empty(),
                Hit::Number(number) => *number != 0.0 && !number.is_nan(),
                Hit::Bool(flag) => *flag,
            })
        });
        NextPage { url, stop }
    }
}

/// The page a next link points to: `#…` and non-HTTP links (`javascript:`, `mailto:`) are
/// not pages; the fragment is dropped because it names the same page.
pub(super) fn usable_next_url(base: &Url, href: &str) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() || href.starts_with('#') {
        return None;
    }
    if let Some(scheme) = scheme_of(href)
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        return None;
    }
    let mut url = base.join(href).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_fragment(None);
    Some(url)
}

pub(crate) use stream::QuickNext;
