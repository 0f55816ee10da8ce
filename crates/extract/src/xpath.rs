//! XPath 1.0 on the html5ever tree: a mirror of the scraper tree in `sxd-document`, with
//! maps both ways, so XPath results are scraper elements like CSS results.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{self, AssertUnwindSafe};

use ego_tree::NodeId;
use ego_tree::iter::Edge;
use scraper::{ElementRef, Html, Node};
use sxd_document::dom;
use sxd_xpath::nodeset::Node as XNode;
use sxd_xpath::{Context, Factory, Value as XValue, XPath};

use crate::select::{Hit, Scope};

/// Chromium's parser depth limit (`kMaximumHTMLParserDOMTreeDepth`): deeper elements are
/// attached to the element at this depth. It also bounds the recursion `sxd-xpath` does
/// when it computes string values, so a hostile page cannot overflow the stack.
const MAX_DEPTH: usize = 512;

/// Keys here are node ids and node addresses, never attacker-chosen values, so a fast
/// multiplicative hash (FxHash's) is safe and spares SipHash on every mirrored node.
#[derive(Default, Clone, Copy)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type AddressMap<K, V> = HashMap<K, V, BuildHasherDefault<AddressHasher>>;

/// A page's tree as `sxd-document` nodes, with the compiled expressions of one extractor.
pub(crate) struct XpathPage<'h, 'd> {
    document: dom::Document<'d>,
    /// scraper element → mirror element, for evaluating in an item's context.
    to_mirror: AddressMap<NodeId, dom::Element<'d>>,
    /// mirror element → (scraper element, position in document order).
    from_mirror: AddressMap<dom::Element<'d>, (ElementRef<'h>, u32)>,
    /// mirror text node → position in document order.
    text_order: AddressMap<dom::Text<'d>, u32>,
    root_element: Option<ElementRef<'h>>,
    context: Context<'d>,
    compiled: Vec<Option<XPath>>,
}

impl<'h, 'd> XpathPage<'h, 'd> {
    /// Mirrors `html` into `document` (a fresh package's document) and compiles `sources`.
    pub(crate) fn build(html: &'h Html, document: dom::Document<'d>, sources: &[String]) -> Self {
        let factory = Factory::new();
        let compiled = sources
            .iter()
            .map(|source| factory.build(source).ok().flatten())
            .collect();
        let mut page = XpathPage {
            document,
            to_mirror: AddressMap::default(),
            from_mirror: AddressMap::default(),
            text_order: AddressMap::default(),
            root_element: html.tree.root().children().find_map(ElementRef::wrap),
            context: Context::new(),
            compiled,
        };
        page.mirror(html);
        page
    }

    fn mirror(&mut self, html: &'h Html) {
        // The open mirror elements, at most MAX_DEPTH deep.
        let mut open: Vec<dom::Element<'d>> = Vec::new();
        // For every open scraper element: whether it was pushed onto `open`.
        let mut pushed: Vec<bool> = Vec::new();
        let mut in_template = 0usize;
        let mut order = 0u32;
        for edge in html.tree.root().traverse() {
            match edge {
                Edge::Open(node) => match node.value() {
                    Node::Fragment => in_template += 1,
                    Node::Element(element) if in_template == 0 => {
                        let mirrored = self.document.create_element(element.name());
                        for (name, value) in element.attrs() {
                            mirrored.set_attribute_value(name, value);
                        }
                        match open.last() {
                            Some(parent) => parent.append_child(mirrored),
                            None => self.document.root().append_child(mirrored),
                        }
                        if let Some(element_ref) = ElementRef::wrap(node) {
                            self.to_mirror.insert(node.id(), mirrored);
                            self.from_mirror.insert(mirrored, (element_ref, order));
                        }
                        order += 1;
                        let push = open.len() < MAX_DEPTH;
                        if push {
                            open.push(mirrored);
                        }
                        pushed.push(push);
                    }
                    Node::Text(text) if in_template == 0 => {
                        if let Some(parent) = open.last() {
                            let mirrored = self.document.create_text(text);
                            parent.append_child(mirrored);
                            self.text_order.insert(mirrored, order);
                            order += 1;
                        }
                    }
                    _ => {}
                },
                Edge::Close(node) => match node.value() {
                    Node::Fragment => in_template = in_template.saturating_sub(1),
                    Node::Element(_) if in_template == 0 && pushed.pop() == Some(true) => {
                        open.pop();
                    }
                    _ => {}
                },
            }
        }
    }

    /// Evaluates expression `slot` in `scope`, appending results in document order (only
    /// the first when `first_only`). Err carries the evaluation error for diagnostics.
    pub(crate) fn evaluate(
        &self,
        slot: usize,
        scope: Scope<'h>,
        first_only: bool,
        out: &mut Vec<Hit<'h>>,
    ) -> Result<(), String> {
        let Some(Some(xpath)) = self.compiled.get(slot) else {
            return Ok(());
        };
        let context_node: XNode<'d> = match scope {
            Scope::Document => self.document.root().into(),
            Scope::Element(element) => match self.to_mirror.get(&element.id()) {
                Some(mirrored) => (*mirrored).into(),
                // Not mirrored (inside template contents): nothing can match there.
                None => return Ok(()),
            },
        };
        // sxd-xpath panics on some expressions (a namespace prefix it cannot resolve, which
        // validation refuses); whatever else may, it must not take the worker down: the
        // field is then missing and the diagnostics say why. The mirror is only read by an
        // evaluation, so nothing is left half-changed by an unwind.
        let evaluated = panic::catch_unwind(AssertUnwindSafe(|| {
            xpath.evaluate(&self.context, context_node)
        }));
        let value = match evaluated {
            Ok(value) => value.map_err(|error| error.to_string())?,
            Err(_) => return Err("the XPath engine failed on this expression".to_owned()),
        };
        match value {
            XValue::Nodeset(nodes) => {
                let mut ordered: Vec<(u32, u8, XNode<'d>)> = nodes
                    .iter()
                    .filter_map(|node| self.order_of(node).map(|(o, s)| (o, s, node)))
                    .collect();
                ordered.sort_by(|a, b| {
                    (a.0, a.1)
                        .cmp(&(b.0, b.1))
                        .then_with(|| attribute_name(&a.2).cmp(&attribute_name(&b.2)))
                });
                for (_, _, node) in ordered {
                    if let Some(hit) = self.hit_of(node) {
                        out.push(hit);
                        if first_only {
                            break;
                        }
                    }
                }
            }
            XValue::String(text) => out.push(Hit::Text(text)),
            XValue::Number(number) => out.push(Hit::Number(number)),
            XValue::Boolean(flag) => out.push(Hit::Bool(flag)),
        }
        Ok(())
    }

    /// Sort key in document order: (position, 0) for elements and text, (position of the
    /// owner, 1) for attributes. Nodes the mirror never made (namespaces) have none.
    fn order_of(&self, node: XNode<'d>) -> Option<(u32, u8)> {
        match node {
            XNode::Root(_) => Some((0, 0)),
            XNode::Element(element) => self.from_mirror.get(&element).map(|(_, order)| (*order, 0)),
            XNode::Attribute(attribute) => attribute
                .parent()
                .and_then(|owner| self.from_mirror.get(&owner))
                .map(|(_, order)| (*order, 1)),
            XNode::Text(text) => self.text_order.get(&text).map(|order| (*order, 0)),
            _ => None,
        }
    }

    fn hit_of(&self, node: XNode<'d>) -> Option<Hit<'h>> {
        match node {
            XNode::Root(_) => self.root_element.map(Hit::Element),
            XNode::Element(element) => self
                .from_mirror
                .get(&element)
                .map(|(element, _)| Hit::Element(*element)),
            XNode::Attribute(attribute) => Some(Hit::Text(attribute.value().to_owned())),
            XNode::Text(text) => Some(Hit::Text(text.text().to_owned())),
            _ => None,
        }
    }
}

fn attribute_name<'d>(node: &XNode<'d>) -> Option<&'d str> {
    match node {
        XNode::Attribute(attribute) => Some(attribute.name().local_part()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_sxd_xpath_is_an_evaluation_error_not_a_dead_worker() {
        // Compilation refuses namespace prefixes; evaluated anyway, sxd-xpath panics.
        let html = Html::parse_document("<p><a>x</a></p>");
        let package = sxd_document::Package::new();
        let page = XpathPage::build(&html, package.as_document(), &["//x:a".to_owned()]);
        let mut hits = Vec::new();

        let result = page.evaluate(0, Scope::Document, false, &mut hits);

        assert_eq!(
            result,
            Err("the XPath engine failed on this expression".to_owned())
        );
        assert!(hits.is_empty());
    }
}
