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

use crate::xpath::AddressMap;

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
    /// Depth of every element attached so far (the document is 0), so that attaching
    /// costs one lookup rather than a walk up the tree. After `reparent_children` (the
    /// adoption agency) the moved subtrees may be a level or two deeper than recorded; the
    /// cap is then approximate, which is harmless: nothing here depends on an exact bound.
    depths: RefCell<AddressMap<NodeId, usize>>,
}

impl DepthCappedSink {
    fn new() -> Self {
        DepthCappedSink {
            inner: HtmlTreeSink::new(Html::new_document()),
            depths: RefCell::new(AddressMap::default()),
        }
    }

    /// The depth of `node`: recorded, or counted (at most up to the cap) and recorded.
    fn depth_of(&self, node: NodeId) -> usize {
        if let Some(depth) = self.depths.borrow().get(&node) {
            return *depth;
        }
        let html = self.inner.0.borrow();
        let depth = html
            .tree
            .get(node)
            .map_or(0, |node| node.ancestors().take(MAX_TREE_DEPTH + 1).count());
        self.depths.borrow_mut().insert(node, depth);
        depth
    }

    /// Where a child of `parent` goes: `parent`, or the ancestor at depth `limit - 1` when
    /// the child would be deeper than `limit`.
    fn capped_parent(&self, parent: NodeId, limit: usize) -> NodeId {
        let depth = self.depth_of(parent);
        if depth < limit {
            return parent;
        }
        let html = self.inner.0.borrow();
        html.tree
            .get(parent)
            .and_then(|node| node.ancestors().nth(depth - limit))
            .map_or(parent, |ancestor| ancestor.id())
    }

    fn record_child(&self, parent: NodeId, child: &NodeOrText<NodeId>) {
        if let NodeOrText::AppendNode(child) = child {
            let depth = self.depth_of(parent) + 1;
            self.depths.borrow_mut().insert(*child, depth);
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
        self.record_child(parent, &child);
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
        // A sibling is as deep as the node it stands beside, which is within the cap.
        let parent = self
            .inner
            .0
            .borrow()
            .tree
            .get(*sibling)
            .and_then(|node| node.parent())
            .map(|parent| parent.id());
        if let Some(parent) = parent {
            self.record_child(parent, &new_node);
        }
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
        self.inner.remove_from_parent(target);
    }

    fn reparent_children(&self, node: &NodeId, new_parent: &NodeId) {
        let new_parent = self.capped_parent(*new_parent, MAX_TREE_DEPTH);
        let moved: Vec<NodeId> = self
            .inner
            .0
            .borrow()
            .tree
            .get(*node)
            .map(|node| node.children().map(|child| child.id()).collect())
            .unwrap_or_default();
        let depth = self.depth_of(new_parent) + 1;
        let mut depths = self.depths.borrow_mut();
        for child in moved {
            depths.insert(child, depth);
        }
        drop(depths);
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
