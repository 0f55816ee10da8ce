//! Tenancy as a type. A run's logs, pages, records and ledger entries are read through an
//! [`OwnedRun`], which only the user-scoped lookups (`find_run(user_id, run_id)`,
//! `latest_run(user_id, task_id)`) produce: a handler that skipped the ownership check has
//! no value to pass and does not compile. Workers, which legitimately read any run they
//! hold, use the separate `…_for_lease` methods, checked against the run's lease instead.

use std::ops::Deref;

use crate::Run;

/// A run that the user named in the lookup owns. Its field is private, so it cannot be
/// built outside the store; it reads as the [`Run`] it wraps.
#[derive(Debug, Clone)]
pub struct OwnedRun(Run);

impl OwnedRun {
    /// Only the store's user-scoped lookups call this, right after their `user_id = $n`
    /// query matched.
    pub(crate) fn checked(run: Run) -> OwnedRun {
        OwnedRun(run)
    }

    pub fn run(&self) -> &Run {
        &self.0
    }

    pub fn into_run(self) -> Run {
        self.0
    }
}

impl Deref for OwnedRun {
    type Target = Run;

    fn deref(&self) -> &Run {
        &self.0
    }
}

/// A run as its worker holds it: the run id and the worker id that must hold the run's
/// lease for the `…_for_lease` reads to return anything.
#[derive(Debug, Clone, Copy)]
pub struct RunLease<'a> {
    pub run_id: &'a str,
    pub worker_id: &'a str,
}
