//! Test support past the ownership check: suites that inspect a run's pages, logs and
//! charges as an operator would (whoever owns it), and the charges of runs that are gone.

use crate::{LedgerEntry, OwnedRun, Store, StoreError};

/// The run as its owner would get it from `find_run`, whoever that is; `None` when there is
/// no such run. Only for tests: production code reaches an [`OwnedRun`] through the owner.
pub async fn owned_run_unchecked(
    store: &Store,
    run_id: &str,
) -> Result<Option<OwnedRun>, StoreError> {
    Ok(store
        .find_run_any_user(run_id)
        .await?
        .map(OwnedRun::checked))
}

/// The ledger entries that name `run_id`, also after the run was deleted.
pub async fn ledger_entries_of_run_id(
    store: &Store,
    run_id: &str,
) -> Result<Vec<LedgerEntry>, StoreError> {
    store.ledger_entries_by_run_id(run_id).await
}
