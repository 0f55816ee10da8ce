//! The run loop: claim runs from the queue, execute each with the engine under a renewed
//! lease, commit every page crash-safely, and settle the run in a terminal state.
//!
//! Architecture invariants:
//! - The worker owns no SQL and no object naming: the queue, page commits and the ledger
//!   are `selextract-store`, record objects are `selextract-results`. This crate decides the
//!   order of those calls, which is what makes a run crash-safe: records are written
//!   (idempotently, one object per page key) *before* the page is committed, and a page
//!   whose key is already committed is neither written nor charged again.
//! - Progress reported to the store is counted from committed pages only, so a run
//!   re-executed after a crash never counts a page twice.
//! - A worker only finishes a run while it holds the run's lease; a worker that lost the
//!   lease abandons the run silently, because another worker owns it now.
//! - Shutdown is a parameter ([`run_worker`] takes a [`CancellationToken`]); nothing here
//!   installs signal handlers or reads configuration files.
//!
//! [`CancellationToken`]: tokio_util::sync::CancellationToken

mod budget;
mod config;
mod context;
mod execute;
mod lease;
mod metrics;
mod outcome;
mod pages;
mod retry;
mod run_log;
mod time;
mod worker_loop;

pub use config::{WorkerConfig, WorkerDeps, default_worker_id, hostname};
pub use metrics::describe_worker_metrics;
pub use worker_loop::{MAINTENANCE_FLAG, run_worker};
