//! Committing the pages of a run: what earlier attempts committed, and the crash-safe
//! order for a new page — records written first (an idempotent overwrite of the page's
//! object), then the page row, its charge and the run counters in one store transaction.

use std::collections::HashSet;

use anyhow::Context as _;
use selextract_engine::PageResult;
use selextract_store::{
    CommitOutcome, LedgerKind, PageCommit, PageOutcome, Progress, RunLease, StoreError,
};
use serde_json::json;

use crate::context::RunContext;
use crate::metrics::record_committed_page;
use crate::retry::retry_while_unavailable;

/// What earlier attempts of this run committed.
pub(crate) struct CommittedPages {
    pub(crate) keys: HashSet<String>,
    /// Compute units already charged to this run.
    pub(crate) charged: u64,
}

/// Reads the pages committed by earlier attempts (none on a first attempt) and starts the
/// progress counters from them, so a re-execution continues the counts instead of
/// repeating them.
pub(crate) async fn load_committed_pages(ctx: &RunContext) -> anyhow::Result<CommittedPages> {
    let store = &ctx.worker.deps.store;
    // The worker reads any user's run through the lease it holds, not through an owner.
    let lease = RunLease {
        run_id: &ctx.run.id,
        worker_id: ctx.worker_id(),
    };
    let pages = retry_while_unavailable(ctx, "reading the run's committed pages", || {
        store.run_pages_for_lease(lease)
    })
    .await
    .context("reading the run's committed pages")?;
    let ledger = retry_while_unavailable(ctx, "reading the run's charges", || {
        store.ledger_entries_for_lease(lease)
    })
    .await
    .context("reading the run's charges")?;
    let charged: u64 = ledger
        .iter()
        .filter(|entry| entry.kind == LedgerKind::Charge)
        .map(|entry| entry.amount)
        .sum();
    let keys: HashSet<String> = pages.iter().map(|page| page.page_key.clone()).collect();
    ctx.update_progress(|progress| {
        for page in &pages {
            count_page(progress, page.outcome);
            progress.records += page.records;
            progress.bytes += page.bytes;
        }
        progress.compute_units = charged;
    });
    if !keys.is_empty() {
        ctx.logs.info(
            format!(
                "resuming: {} pages were committed by an earlier attempt and will be skipped",
                keys.len()
            ),
            json!({"pages": keys.len()}),
        );
    }
    Ok(CommittedPages { keys, charged })
}

/// Counts a page the way the store counts it: `pages_done` are the pages that succeeded,
/// `pages_failed` the ones given up on.
fn count_page(progress: &mut Progress, outcome: PageOutcome) {
    match outcome {
        PageOutcome::Ok => progress.pages_done += 1,
        PageOutcome::Failed => progress.pages_failed += 1,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PageCommitted {
    Committed,
    /// An earlier attempt committed this page: nothing written, nothing charged.
    Skipped,
    LeaseLost,
}

/// Writes the page's records (an idempotent overwrite of the page's object), then commits
/// the page row, its charge and the run counters in one store transaction. A crash between
/// the two leaves an orphan object that the re-execution overwrites.
pub(crate) async fn commit_engine_page(
    ctx: &RunContext,
    committed: &HashSet<String>,
    page: PageResult,
) -> anyhow::Result<PageCommitted> {
    let page_key = page.key.to_string();
    if committed.contains(&page_key) {
        return Ok(PageCommitted::Skipped);
    }
    let deps = &ctx.worker.deps;
    let record_count = page.records.len() as u64;
    let object = if page.records.is_empty() {
        None
    } else {
        let object = deps
            .results
            .put_page(&ctx.run.id, &page_key, &page.records)
            .await
            .with_context(|| format!("writing the records of page {page_key}"))?;
        Some(object)
    };
    let bytes = object.as_ref().map_or(0, |object| object.bytes);
    let commit_outcome = if page.outcome.is_ok() {
        PageOutcome::Ok
    } else {
        PageOutcome::Failed
    };
    let commit = PageCommit {
        run_id: ctx.run.id.clone(),
        user_id: ctx.run.user_id.clone(),
        worker_id: ctx.worker_id().to_owned(),
        page_key: page_key.clone(),
        url: page.url.to_string(),
        status: page.status,
        outcome: commit_outcome,
        records: record_count,
        bytes,
        object_key: object.map(|object| object.key),
        charge: page.compute_units,
        mode: page.mode.as_str().to_owned(),
    };
    match commit_page_with_retries(ctx, commit).await? {
        CommitOutcome::Committed { .. } => {
            ctx.update_progress(|progress| {
                count_page(progress, commit_outcome);
                progress.records += record_count;
                progress.bytes += bytes;
                progress.compute_units += page.compute_units;
            });
            record_committed_page(page.mode, &page.outcome, record_count, page.compute_units);
            Ok(PageCommitted::Committed)
        }
        CommitOutcome::AlreadyCommitted => Ok(PageCommitted::Skipped),
        CommitOutcome::LeaseLost => {
            ctx.logs.warn(
                format!(
                    "lease lost while committing page {page_key}; another worker continues the run"
                ),
                json!({"page": page_key}),
            );
            Ok(PageCommitted::LeaseLost)
        }
    }
}

/// Commits the page, retrying through a database outage until the commit lands or the
/// store says the lease is lost; the commit is idempotent per page key, so a retry after an
/// unacknowledged commit answers `AlreadyCommitted` instead of committing twice.
async fn commit_page_with_retries(
    ctx: &RunContext,
    commit: PageCommit,
) -> anyhow::Result<CommitOutcome> {
    let store = &ctx.worker.deps.store;
    retry_while_unavailable(ctx, "committing a page", || {
        store.commit_page(commit.clone())
    })
    .await
    .map_err(|error| commit_error(error, &commit.page_key))
}

fn commit_error(error: StoreError, page_key: &str) -> anyhow::Error {
    anyhow::Error::new(error).context(format!("committing page {page_key}"))
}
