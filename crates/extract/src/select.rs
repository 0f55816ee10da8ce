//! Running one compiled selector (CSS or XPath) in a scope of a parsed page.

use scraper::{ElementRef, Node};

use crate::compile::Sel;
use crate::xpath::XpathPage;

/// Where a selector is evaluated: the whole document, or inside one item.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'h> {
    Document,
    /// Descendants of this element (the element itself is not a candidate).
    Element(ElementRef<'h>),
}

/// One thing a selector found.
#[derive(Debug, Clone)]
pub(crate) enum Hit<'h> {
    Element(ElementRef<'h>),
    /// An attribute value, a text node or a string computed by XPath.
    Text(String),
    Number(f64),
    Bool(bool),
}

/// A parsed page as selectors see it: its root element and, for XPath specs, the mirror.
pub(crate) struct Tree<'h, 'x, 'd> {
    pub(crate) root: Option<ElementRef<'h>>,
    pub(crate) xpath: Option<&'x XpathPage<'h, 'd>>,
    /// The page was parsed with scripting (a browser snapshot): `<noscript>` content is text.
    pub(crate) scripting: bool,
}

impl<'h> Tree<'h, '_, '_> {
    /// Appends what `sel` finds in `scope` to `out`, in document order; only the first hit
    /// when `first_only`. Err is an XPath evaluation error (the hits are then empty).
    pub(crate) fn select(
        &self,
        sel: &Sel,
        scope: Scope<'h>,
        first_only: bool,
        out: &mut Vec<Hit<'h>>,
    ) -> Result<(), String> {
        match sel {
            Sel::Never => Ok(()),
            Sel::Xpath(slot) => match self.xpath {
                Some(xpath) => xpath.evaluate(*slot, scope, first_only, out),
                None => Ok(()),
            },
            Sel::Css(css) => {
                let hits = self.css(css, scope).map(Hit::Element);
                if first_only {
                    out.extend(hits.take(1));
                } else {
                    out.extend(hits);
                }
                Ok(())
            }
        }
    }

    /// Elements matching `css` in `scope`, in document order, outside template contents.
    pub(crate) fn css<'s>(
        &self,
        css: &'s scraper::Selector,
        scope: Scope<'h>,
    ) -> impl Iterator<Item = ElementRef<'h>> + use<'h, 's> {
        // Document scope: the root element is a candidate too (`html[lang]`), which
        // `ElementRef::select` alone would skip.
        let (root_itself, within) = match scope {
            Scope::Document => (self.root.filter(|root| css.matches(root)), self.root),
            Scope::Element(element) => (None, Some(element)),
        };
        root_itself
            .into_iter()
            .chain(
                within
                    .into_iter()
                    .flat_map(move |element| element.select(css)),
            )
            .filter(|element| !in_template_contents(*element))
    }
}

/// Whether an element sits in a `<template>`'s contents, which browsers never match.
fn in_template_contents(element: ElementRef<'_>) -> bool {
    element
        .ancestors()
        .any(|ancestor| matches!(ancestor.value(), Node::Fragment))
}
