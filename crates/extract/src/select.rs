//! Running one compiled selector (CSS or XPath) in a scope of a parsed page.

use std::cell::Cell;

use ego_tree::NodeId;
use scraper::{ElementRef, Node};

use crate::compile::Sel;
use crate::cost::Steps;
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
    /// The work budget selections and walks on this tree draw from.
    pub(crate) steps: Steps,
    /// The last scope measured and its number of nodes: the fields of one item share it.
    pub(crate) scope_size: Cell<Option<(Option<NodeId>, u64)>>,
}

impl<'h, 'x, 'd> Tree<'h, 'x, 'd> {
    /// Appends what `sel` finds in `scope` to `out`, in document order; only the first hit
    /// when `first_only`. Err is an XPath evaluation error (the hits are then empty).
    pub(crate) fn select(
        &self,
        sel: &Sel,
        scope: Scope<'h>,
        first_only: bool,
        out: &mut Vec<Hit<'h>>,
    ) -> Result<(), String> {
        // A selection may visit every node of its scope (CSS candidates, an XPath `//`).
        if !matches!(sel, Sel::Never) && !self.charge_scope(scope) {
            return Ok(());
        }
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

    /// Charges a visit of every node in `scope`; false when the budget is exhausted.
    pub(crate) fn charge_scope(&self, scope: Scope<'h>) -> bool {
        self.steps.charge(self.size_of(scope).max(1))
    }

    /// Nodes in `scope` (counted at most up to the steps left, which is all the charge
    /// needs to know).
    fn size_of(&self, scope: Scope<'h>) -> u64 {
        let (key, start) = match scope {
            Scope::Document => (None, self.root),
            Scope::Element(element) => (Some(element.id()), Some(element)),
        };
        if let Some((cached, size)) = self.scope_size.get()
            && cached == key
        {
            return size;
        }
        let bound = usize::try_from(self.steps.left().saturating_add(1)).unwrap_or(usize::MAX);
        let size = start.map_or(0, |start| start.descendants().take(bound).count()) as u64;
        self.scope_size.set(Some((key, size)));
        size
    }

    /// A tree over `root` with a fresh budget of `budget` steps.
    pub(crate) fn new(
        root: Option<ElementRef<'h>>,
        xpath: Option<&'x XpathPage<'h, 'd>>,
        scripting: bool,
        budget: u64,
    ) -> Self {
        Tree {
            root,
            xpath,
            scripting,
            steps: Steps::new(budget),
            scope_size: Cell::new(None),
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
