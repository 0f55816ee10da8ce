//! selextract-changes: change detection of monitor runs (SPEC §5). A run's records are keyed
//! (by the task's `schedule.key_field`, else by a hash of the whole record), sorted by key
//! with an external merge sort into snapshot objects stored next to the run's pages, and
//! compared with the previous completed run's snapshot by a streaming merge-join into
//! counts (a [`RunChanges`] summary) and per-record detail objects.
//!
//! Architecture invariants:
//! - Constant memory: no step holds a whole run. Sorting keeps at most
//!   [`ChangeOptions::sort_buffer_records`] entries (and about
//!   [`ChangeOptions::sort_buffer_bytes`]) before spilling to a temporary file; the merge
//!   and the diff hold one snapshot chunk per side and one detail chunk per kind.
//! - Idempotent: every object has a deterministic name and a put replaces it whole, so a
//!   run executed again after a crash writes the same objects and the same summary.
//! - No SQL here: the store's queries (`previous_completed_run`, `run_changes_any_user`,
//!   `run_pages`) are called; the summary is written by the worker with the run's end.

mod detail;
mod detect;
mod diff;
mod error;
mod key;
mod snapshot;

pub use detail::{ChangeKind, DetailPage, read_detail};
pub use detect::detect_changes;
pub use diff::{DiffCounts, changed_fraction, diff_snapshots, field_changes};
pub use error::ChangesError;
pub use key::{canonical_json, record_key};
pub use snapshot::{Entry, EntrySource, Snapshot, SnapshotReader, build_snapshot, snapshot_name};

pub use selextract_store::RunChanges;

/// Bounds of the change detection's memory and object sizes.
#[derive(Debug, Clone)]
pub struct ChangeOptions {
    /// Entries sorted in memory before they are spilled to a temporary file.
    pub sort_buffer_records: usize,
    /// Bytes of keys and records sorted in memory before a spill (whichever bound comes
    /// first).
    pub sort_buffer_bytes: usize,
    /// Entries per snapshot object.
    pub snapshot_chunk_records: usize,
    /// Entries per detail object (one series of objects per kind).
    pub detail_chunk_size: u32,
}

impl Default for ChangeOptions {
    fn default() -> Self {
        ChangeOptions {
            sort_buffer_records: 50_000,
            sort_buffer_bytes: 64 * 1024 * 1024,
            snapshot_chunk_records: 10_000,
            detail_chunk_size: 1000,
        }
    }
}
