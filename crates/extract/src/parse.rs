//! Decoded text → the tree every selector runs on: html5ever through scraper's tree sink,
//! with scripting enabled or disabled as the page was fetched, and the tree's depth capped
//! the way Chromium caps it.

use std::borrow::Cow;
use std::cell::RefCell;

use ego_tree::NodeId;
use html5ever::driver::{self, ParseOpts};
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeBuilderOpts, TreeSink};
use html5ever::{Attribute, QualName};
use scraper::{Html, HtmlTreeSink};

/// Chromium's parser depth limit (`kMaximumHTMLParserDOMTreeDepth`): an element that would
/// be deeper is attached to the element at this depth instead, so a page of 100,000
/// nested elements becomes a tree at most this deep. Everything that walks ancestors
/// (template checks, selector matching, XPath string values) is then bounded by it.
pub(crate) const MAX_TREE_DEPTH: usize = 512;

/// Parses a whole document. `scripting` is true for a DOM snapshot of a browser that ran
/// JavaScript (`<noscript>` content is text, as in the live DOM); false for a page fetched
/// over HTTP, parsed as a browser with JavaScript off would (`<noscript>` content is
/// markup, so the lazy-loading `<noscript><img src=…></noscript>` is found).
pub(crate) fn parse_page(text: &str, scripting: bool) -> Html {
    let options = ParseOpts {
        tree_builder: TreeBuilderOpts {
            scripting_enabled: scripting,
            ..TreeBuilderOpts::default()
        },
        ..ParseOpts::default()
    };
    driver::parse_document(DepthCappedSink::new(), options).one(text)
}

/// scraper's sink, except that an element is never attached deeper than
/// [`MAX_TREE_DEPTH`] (a text node may be one below it: it is a leaf).
struct DepthCappedSink {
    inner: HtmlTreeSink,
    /// A chain of elements from the document down: `chain[d]` is at depth `d` and the parent
    /// of `chain[d + 1]`; the last is the element last appended to or appended. Nearly every
    /// append goes to the last element or one a few places below it (end tags closed the
    /// rest), so a parent's depth is found by a short search from the top, with no
    /// per-node bookkeeping. A parent off the chain (template contents, foster parenting,
    /// the adoption agency) has its ancestors counted once and they become the chain.
    chain: RefCell<Vec<NodeId>>,
}

impl DepthCappedSink {
    fn new() -> Self {
        // Deeper than most pages' trees, so that the chain rarely grows; allocated before
        // the tree, which then grows in place where the allocator can.
        let mut chain = Vec::with_capacity(64);
        let inner = HtmlTreeSink::new(Html::new_document());
        chain.push(inner.get_document());
        DepthCappedSink {
            inner,
            chain: RefCell::new(chain),
        }
    }

    /// Where a child of `parent` goes: `parent`, or its ancestor at depth `limit - 1` when
    /// the child would be deeper than `limit`. The chain then ends at `parent` when it is
    /// in the document.
    fn capped_parent(&self, parent: NodeId, limit: usize) -> NodeId {
        let mut chain = self.chain.borrow_mut();
        let depth = match chain.iter().rposition(|id| *id == parent) {
            Some(at) => {
                chain.truncate(at + 1);
                at
            }
            None => {
                let html = self.inner.0.borrow();
                let ancestors: Vec<NodeId> = html.tree.get(parent).map_or_else(Vec::new, |node| {
                    node.ancestors().map(|ancestor| ancestor.id()).collect()
                });
                let document = chain[0];
                if ancestors.last() != Some(&document) {
                    // Not in the document yet (the adoption agency moves children into an
                    // element before attaching it): nothing is appended under it here.
                    chain.truncate(1);
                    return parent;
                }
                chain.clear();
                chain.extend(ancestors.into_iter().rev());
                chain.push(parent);
                chain.len() - 1
            }
        };
        if depth < limit {
            return parent;
        }
        chain.truncate(limit);
        chain[limit - 1]
    }

    /// `child` was appended to `parent`: an element extends the chain when it ends there.
    fn extend_chain(&self, parent: NodeId, child: &NodeOrText<NodeId>) {
        let mut chain = self.chain.borrow_mut();
        if let NodeOrText::AppendNode(child) = child
            && chain.last() == Some(&parent)
        {
            chain.push(*child);
        }
    }

    /// `node`'s place in the tree changes: the chain keeps only what is above it.
    fn cut_chain_at(&self, node: NodeId) {
        let mut chain = self.chain.borrow_mut();
        // The document (the chain's first element) never moves.
        if let Some(at) = chain.iter().rposition(|id| *id == node) {
            chain.truncate(at.max(1));
        }
    }
}

impl TreeSink for DepthCappedSink {
    type Handle = NodeId;
    type Output = Html;
    type ElemName<'a> = <HtmlTreeSink as TreeSink>::ElemName<'a>;

    fn finish(self) -> Html {
        self.inner.finish()
    }

    fn parse_error(&self, message: Cow<'static, str>) {
        self.inner.parse_error(message);
    }

    fn get_document(&self) -> NodeId {
        self.inner.get_document()
    }

    fn elem_name<'a>(&'a self, target: &'a NodeId) -> Self::ElemName<'a> {
        self.inner.elem_name(target)
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> NodeId {
        self.inner.create_element(name, attrs, flags)
    }

    fn create_comment(&self, text: StrTendril) -> NodeId {
        self.inner.create_comment(text)
    }

    fn create_pi(&self, target: StrTendril, data: StrTendril) -> NodeId {
        self.inner.create_pi(target, data)
    }

    fn append(&self, parent: &NodeId, child: NodeOrText<NodeId>) {
        let limit = match child {
            NodeOrText::AppendNode(_) => MAX_TREE_DEPTH,
            NodeOrText::AppendText(_) => MAX_TREE_DEPTH + 1,
        };
        let parent = self.capped_parent(*parent, limit);
        self.extend_chain(parent, &child);
        self.inner.append(&parent, child);
    }

    fn append_based_on_parent_node(
        &self,
        element: &NodeId,
        prev_element: &NodeId,
        child: NodeOrText<NodeId>,
    ) {
        // scraper's version calls its own `append`, which would bypass the cap.
        let has_parent = self
            .inner
            .0
            .borrow()
            .tree
            .get(*element)
            .is_some_and(|node| node.parent().is_some());
        if has_parent {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(
        &self,
        name: StrTendril,
        public_id: StrTendril,
        system_id: StrTendril,
    ) {
        self.inner
            .append_doctype_to_document(name, public_id, system_id);
    }

    fn mark_script_already_started(&self, node: &NodeId) {
        self.inner.mark_script_already_started(node);
    }

    fn pop(&self, node: &NodeId) {
        self.inner.pop(node);
    }

    fn get_template_contents(&self, target: &NodeId) -> NodeId {
        self.inner.get_template_contents(target)
    }

    fn same_node(&self, x: &NodeId, y: &NodeId) -> bool {
        self.inner.same_node(x, y)
    }

    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.inner.set_quirks_mode(mode);
    }

    fn append_before_sibling(&self, sibling: &NodeId, new_node: NodeOrText<NodeId>) {
        // A sibling is as deep as the node it stands beside, which is within the cap; the
        // new node is off the chain until something is appended to it.
        self.inner.append_before_sibling(sibling, new_node);
    }

    fn add_attrs_if_missing(&self, target: &NodeId, attrs: Vec<Attribute>) {
        self.inner.add_attrs_if_missing(target, attrs);
    }

    fn associate_with_form(
        &self,
        target: &NodeId,
        form: &NodeId,
        nodes: (&NodeId, Option<&NodeId>),
    ) {
        self.inner.associate_with_form(target, form, nodes);
    }

    fn remove_from_parent(&self, target: &NodeId) {
        self.cut_chain_at(*target);
        self.inner.remove_from_parent(target);
    }

    fn reparent_children(&self, node: &NodeId, new_parent: &NodeId) {
        // The moved children leave the chain; the chain then ends at `new_parent` or above.
        self.cut_chain_at(*node);
        let new_parent = self.capped_parent(*new_parent, MAX_TREE_DEPTH);
        self.inner.reparent_children(node, &new_parent);
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &NodeId) -> bool {
        self.inner
            .is_mathml_annotation_xml_integration_point(handle)
    }

    fn set_current_line(&self, line_number: u64) {
        self.inner.set_current_line(line_number);
    }

    fn allow_declarative_shadow_roots(&self, intended_parent: &NodeId) -> bool {
        self.inner.allow_declarative_shadow_roots(intended_parent)
    }

    fn attach_declarative_shadow(
        &self,
        location: &NodeId,
        template: &NodeId,
        attrs: &[Attribute],
    ) -> bool {
        self.inner
            .attach_declarative_shadow(location, template, attrs)
    }

    fn maybe_clone_an_option_into_selectedcontent(&self, option: &NodeId) {
        self.inner
            .maybe_clone_an_option_into_selectedcontent(option);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ego_tree::iter::Edge;

    use super::*;

    /// The depth of the deepest element and of the deepest node (the document is 0).
    fn deepest(html: &Html) -> (usize, usize) {
        let (mut depth, mut element, mut any) = (0usize, 0usize, 0usize);
        for edge in html.tree.root().traverse() {
            match edge {
                Edge::Open(node) => {
                    any = any.max(depth);
                    if node.value().is_element() {
                        element = element.max(depth);
                    }
                    depth += 1;
                }
                Edge::Close(_) => depth -= 1,
            }
        }
        (element, any)
    }

    fn nest(open: &str, close: &str, depth: usize) -> String {
        format!(
            "<html><body>{}deep{}</body></html>",
            open.repeat(depth),
            close.repeat(depth)
        )
    }

    /// Pages that nest past the cap in every way the tree builder nests: plain appends,
    /// tables (implied elements), the adoption agency (misnested and reopened formatting),
    /// template contents and foster parenting.
    fn deep_pages(depth: usize) -> Vec<(&'static str, String)> {
        vec![
            ("divs", nest("<div>", "</div>", depth)),
            ("spans", nest("<span>", "</span>", depth)),
            (
                "tables",
                nest("<table><tr><td>", "</td></tr></table>", depth / 3),
            ),
            ("misnested b and i", nest("<b><i>", "</b></i>", depth)),
            ("unclosed formatting", nest("<b><i><u>", "", depth)),
            ("formatting around blocks", nest("<b><div>", "</b>", depth)),
            (
                "templates",
                nest("<template><div>", "</div></template>", depth),
            ),
            (
                "fostered",
                format!("<body><table>{}deep</table>", "<span>".repeat(depth)),
            ),
        ]
    }

    #[test]
    fn no_element_is_attached_deeper_than_the_cap() {
        for (name, page) in deep_pages(2 * MAX_TREE_DEPTH) {
            for scripting in [false, true] {
                let (element, any) = deepest(&parse_page(&page, scripting));
                assert!(element <= MAX_TREE_DEPTH, "{name}: an element at {element}");
                assert!(any <= MAX_TREE_DEPTH + 1, "{name}: a node at {any}");
                assert!(element >= MAX_TREE_DEPTH - 2, "{name}: only {element} deep");
            }
        }
    }

    #[test]
    fn pages_within_the_cap_parse_to_the_tree_html5ever_builds() {
        // With scripting (scraper's own setting) the capped sink must change nothing on a
        // page that stays within the cap, however the tree builder got there.
        let mut pages: Vec<(String, String)> = deep_pages(MAX_TREE_DEPTH / 4)
            .into_iter()
            .map(|(name, page)| (name.to_owned(), page))
            .collect();
        let corpus = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/corpus/real-pages"
        );
        // The shared real-page corpus sits beside the repository in development checkouts;
        // a clone on its own (CI) has only the generated pages.
        if let Ok(entries) = std::fs::read_dir(corpus) {
            for entry in entries {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                pages.push((
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
        if pages.len() <= deep_pages(MAX_TREE_DEPTH / 4).len() {
            println!("the corpus at {corpus} is absent: generated pages only");
        }
        for (name, page) in pages {
            let (element, _) = deepest(&Html::parse_document(&page));
            if element >= MAX_TREE_DEPTH {
                continue;
            }
            assert_eq!(
                parse_page(&page, true).html(),
                Html::parse_document(&page).html(),
                "{name}"
            );
        }
    }
}
