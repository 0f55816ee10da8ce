//! CSS selectors: parsed with scraper's grammar (the one validation uses), matched by one
//! walk over the scope that charges the work budget for each node it visits.
//!
//! scraper's `ElementRef::select` walks the scope too, but it cannot say how far it went, so
//! the budget had to be charged the scope's size with a second walk first. Walking here,
//! with the same matching (`selectors`, one cache per selection, `:scope` the scope
//! element), costs one counter, and a selection that stops at its first match is charged
//! only what it visited.

use std::ops::ControlFlow;

use scraper::error::SelectorErrorKind;
use scraper::selector::{Parser, Simple};
use scraper::{ElementRef, Node};
use selectors::context::{
    MatchingContext, MatchingForInvalidation, MatchingMode, NeedsSelectorFlags, QuirksMode,
    SelectorCaches,
};
use selectors::parser::ParseRelative;
use selectors::{Element, SelectorList};

use crate::cost::{STEP_BATCH, Steps};

/// One compiled CSS selector list.
#[derive(Debug)]
pub(crate) struct Css(SelectorList<Simple>);

impl Css {
    /// Parses `source` as `scraper::Selector::parse` does, with its errors.
    pub(crate) fn parse(source: &str) -> Result<Css, SelectorErrorKind> {
        let mut parser = cssparser::Parser::new(source);
        SelectorList::parse(&Parser, &mut parser, ParseRelative::No)
            .map(Css)
            .map_err(SelectorErrorKind::from)
    }

    /// Calls `found` with each element under `scope` (and `scope` itself when
    /// `scope_itself`, which is then matched with `:scope` meaning the root, as for the
    /// document) that matches, in document order, outside `<template>` contents, until it
    /// breaks. Every node visited is charged to `steps`, `scope` included, so a walk of the
    /// whole scope costs its number of nodes; the walk stops where the budget runs out.
    pub(crate) fn for_each_match<'h>(
        &self,
        scope: ElementRef<'h>,
        scope_itself: bool,
        steps: &Steps,
        mut found: impl FnMut(ElementRef<'h>) -> ControlFlow<()>,
    ) {
        let mut caches = SelectorCaches::default();
        let mut context = MatchingContext::new(
            MatchingMode::Normal,
            None,
            &mut caches,
            QuirksMode::NoQuirks,
            NeedsSelectorFlags::No,
            MatchingForInvalidation::No,
        );
        // Nodes visited and not yet charged: charging in batches keeps the walk tight.
        let mut visited = 1u64;
        if scope_itself
            && self.matches(&scope, &mut context)
            && !in_template_contents(scope)
            && found(scope).is_break()
        {
            steps.charge(visited);
            return;
        }
        context.scope_element = Some(scope.opaque());
        let mut nodes = scope.descendants();
        nodes.next(); // The scope itself, visited above.
        for node in nodes {
            visited += 1;
            if visited == STEP_BATCH {
                if !steps.charge(visited) {
                    return;
                }
                visited = 0;
            }
            if let Some(element) = ElementRef::wrap(node)
                && self.matches(&element, &mut context)
                && !in_template_contents(element)
                && found(element).is_break()
            {
                break;
            }
        }
        steps.charge(visited);
    }

    fn matches(&self, element: &ElementRef<'_>, context: &mut MatchingContext<'_, Simple>) -> bool {
        selectors::matching::matches_selector_list(&self.0, element, context)
    }
}

/// Whether an element sits in a `<template>`'s contents, which browsers never match.
fn in_template_contents(element: ElementRef<'_>) -> bool {
    element
        .ancestors()
        .any(|ancestor| matches!(ancestor.value(), Node::Fragment))
}
