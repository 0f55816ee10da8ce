//! Why change detection failed.

use selextract_results::StorageError;
use selextract_store::StoreError;

/// Why detecting or reading a run's changes failed. The run itself is not affected: the
/// worker logs the error and finishes the run without a summary.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("the task has no schedule, so its runs are not compared")]
    NotAMonitor,
    #[error("reading or writing change objects: {0}")]
    Storage(#[from] StorageError),
    #[error("reading runs from the database: {0}")]
    Store(#[from] StoreError),
    #[error("sorting records in temporary files: {0}")]
    TempFile(#[from] std::io::Error),
    #[error("change object `{object}` is corrupt: {reason}")]
    Corrupt { object: String, reason: String },
    #[error("the sorting thread failed: {0}")]
    SortThread(String),
}
