//! Running one compiled selector (CSS or XPath) in a scope of a parsed page.

use std::cell::Cell;
use std::ops::ControlFlow;

use ego_tree::NodeId;
use scraper::ElementRef;

use crate::compile::Sel;
use crate::cost::Steps;
use crate::css::Css;
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
    /// The last scope measured for an XPath selection and its number of nodes: the XPath
    /// fields of one item share it.
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
        match sel {
            Sel::Never => Ok(()),
            Sel::Xpath(slot) => {
                // sxd-xpath may visit every node of the scope (`//`), and it cannot say how
                // many it did: the scope's size is charged first.
                if !self.charge_scope(scope) {
                    return Ok(());
                }
                match self.xpath {
                    Some(xpath) => xpath.evaluate(*slot, scope, first_only, out),
                    None => Ok(()),
                }
            }
            Sel::Css(css) => {
                self.css(css, scope, |element| {
                    out.push(Hit::Element(element));
                    if first_only {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                Ok(())
            }
        }
    }

    /// Calls `found` with each element matching `css` in `scope`, in document order,
    /// outside template contents, until it breaks; each node visited is charged to the
    /// budget (see [`Css::for_each_match`]).
    pub(crate) fn css(
        &self,
        css: &Css,
        scope: Scope<'h>,
        found: impl FnMut(ElementRef<'h>) -> ControlFlow<()>,
    ) {
        // Document scope: the root element is a candidate too (`html[lang]`).
        match scope {
            Scope::Document => match self.root {
                Some(root) => css.for_each_match(root, true, &self.steps, found),
                None => {
                    self.steps.charge(1);
                }
            },
            Scope::Element(element) => css.for_each_match(element, false, &self.steps, found),
        }
    }

    /// Charges a visit of every node in `scope`; false when the budget is exhausted.
    fn charge_scope(&self, scope: Scope<'h>) -> bool {
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cost::STEP_BATCH;
    use crate::parse::parse_page;
    use crate::records::root_element;

    const PAGE: &str = "<html><head><title>T</title></head><body>\
        <div class=item><a href=/1>one</a><span>x</span></div>\
        <div class=item><a href=/2>two</a><span>y</span></div></body></html>";

    fn steps_used(page: &str, selector: &str, in_item: bool, first_only: bool) -> (u64, usize) {
        let html = parse_page(page, false);
        let root = root_element(&html);
        let budget = 1_000_000;
        let tree = Tree::new(root, None, false, budget);
        let scope = if in_item {
            let item = scraper::Selector::parse("div.item").unwrap();
            Scope::Element(html.select(&item).next().unwrap())
        } else {
            Scope::Document
        };
        let mut hits = Vec::new();
        tree.select(
            &Sel::Css(Css::parse(selector).unwrap()),
            scope,
            first_only,
            &mut hits,
        )
        .unwrap();
        (budget - tree.steps.left(), hits.len())
    }

    fn nodes_in(page: &str, in_item: bool) -> u64 {
        let html = parse_page(page, false);
        let start = if in_item {
            let item = scraper::Selector::parse("div.item").unwrap();
            *html.select(&item).next().unwrap()
        } else {
            *root_element(&html).unwrap()
        };
        start.descendants().count() as u64
    }

    #[test]
    fn a_whole_selection_is_charged_every_node_of_its_scope() {
        // What the budget charged before the walk counted itself: the scope's size.
        for (selector, in_item) in [
            ("a", false),
            ("span", true),
            ("nothing", false),
            ("*", true),
        ] {
            let (used, _) = steps_used(PAGE, selector, in_item, false);
            assert_eq!(used, nodes_in(PAGE, in_item), "{selector}");
        }
    }

    #[test]
    fn a_first_match_selection_is_charged_only_the_nodes_before_its_match() {
        // html, head, title, its text, body, div, a: the seventh node.
        assert_eq!(steps_used(PAGE, "a", false, true), (7, 1));
        // The item itself, then its link.
        assert_eq!(steps_used(PAGE, "a", true, true), (2, 1));
        // The root element itself matches first.
        assert_eq!(steps_used(PAGE, "html", false, true), (1, 1));
        // No match: the whole scope was visited.
        assert_eq!(
            steps_used(PAGE, "p", false, true),
            (nodes_in(PAGE, false), 0)
        );
    }

    #[test]
    fn a_walk_stops_where_the_budget_runs_out() {
        let page = format!("<body>{}</body>", "<p>x</p>".repeat(5_000));
        let html = parse_page(&page, false);
        let tree = Tree::new(root_element(&html), None, false, 3_000);
        let mut hits = Vec::new();
        let css = Sel::Css(Css::parse("p").unwrap());
        tree.select(&css, Scope::Document, false, &mut hits)
            .unwrap();
        assert!(tree.steps.exhausted());
        // Nodes are paid for in batches: the walk stops within a batch past the budget
        // (each match is two nodes, `<p>` and its text), far from the page's 5,000.
        let visited = 2 * hits.len() as u64;
        assert!(visited <= 3_000 + STEP_BATCH, "{} matches", hits.len());
    }
}
