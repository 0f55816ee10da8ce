//! The work budget of one page (`limits.max_extraction_steps`): a step counter that
//! selection and the text and inner-HTML walks draw from, and a linear estimate of the
//! parser's own work made before html5ever ever sees the page.
//!
//! html5ever's tree builder is quadratic on nested blocks: every `<div>` start tag scans
//! the whole stack of open elements for a `<p>` in button scope, so 100,000 nested divs
//! take tens of seconds and a 10 MB page hours. [`parse_cost`] walks the bytes once and
//! adds, for each start tag that does such a scan, the number of open elements it would
//! scan (and for an end tag, how far down the stack the parser looks for its element); a
//! page whose estimate exceeds the budget is refused unparsed.

use std::cell::Cell;

mod prescan;

pub(crate) use prescan::check_parse_cost;

/// Nodes a walk visits between two charges of the budget.
pub(crate) const STEP_BATCH: u64 = 1024;

/// Steps left for one page's selections and walks.
#[derive(Debug)]
pub(crate) struct Steps {
    left: Cell<u64>,
    exhausted: Cell<bool>,
}

impl Steps {
    pub(crate) fn new(budget: u64) -> Self {
        Steps {
            left: Cell::new(budget),
            exhausted: Cell::new(false),
        }
    }

    /// Takes `steps` from the budget; false (and exhausted from then on) when there are
    /// not that many left.
    pub(crate) fn charge(&self, steps: u64) -> bool {
        if self.exhausted.get() {
            return false;
        }
        match self.left.get().checked_sub(steps) {
            Some(left) => {
                self.left.set(left);
                true
            }
            None => {
                self.left.set(0);
                self.exhausted.set(true);
                false
            }
        }
    }

    pub(crate) fn left(&self) -> u64 {
        self.left.get()
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }
}

/// The message of a page whose extraction ran out of steps.
pub(crate) fn over_budget(budget: u64) -> String {
    format!(
        "extracting the page needs more than limits.max_extraction_steps ({budget}) steps: \
         the items, matches and their contents are too many or too deeply nested"
    )
}
