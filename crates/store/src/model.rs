//! The values the store reads and writes: plain data, no SQL. Timestamps are unix
//! milliseconds (`*_ms`), ids are UUID strings.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// An account.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    /// Always lower-case: the store lower-cases on write and on lookup.
    pub email: String,
    /// Never serialized, so a `User` can be returned by an API without leaking it.
    #[serde(skip_serializing)]
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub plan: String,
    pub max_concurrent_runs: u32,
    pub created_at_ms: i64,
    pub disabled: bool,
}

/// What [`crate::Store::create_user`] needs.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub plan: String,
    pub max_concurrent_runs: u32,
}

/// An API key. The store keeps only the hash of the secret; hashing is the caller's job.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    /// The indexed, non-secret part of the key used to find it in O(1).
    pub public_id: String,
    #[serde(skip_serializing)]
    pub secret_hash: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

/// Whether a key may still be used and its task still exists, read in one query by
/// [`crate::Store::api_key_standing`] for long-lived requests (event streams) that must end
/// when the key that opened them stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyStanding {
    pub revoked_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    /// The key's owner is disabled.
    pub user_disabled: bool,
    /// The task asked about exists, belongs to the key's owner and is not deleted.
    pub task_exists: bool,
}

/// What [`crate::Store::insert_api_key`] needs.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub user_id: String,
    pub public_id: String,
    pub secret_hash: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at_ms: Option<i64>,
}

/// A saved task definition owned by one user.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub spec: serde_json::Value,
    pub priority: u8,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What [`crate::Store::create_task`] needs.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub user_id: String,
    pub name: String,
    pub spec: serde_json::Value,
    pub priority: u8,
}

/// A task in a list, with its latest run (if it ever ran).
#[derive(Debug, Clone, Serialize)]
pub struct TaskSummary {
    #[serde(flatten)]
    pub task: Task,
    pub latest_run_id: Option<String>,
    pub latest_run_state: Option<RunState>,
}

/// Filters and order for [`crate::Store::list_tasks`]. `Default` lists everything, newest
/// first.
#[derive(Debug, Clone)]
pub struct TaskFilter {
    /// Only tasks whose latest run is in this state.
    pub status: Option<RunState>,
    /// Only tasks created at or after this instant.
    pub created_after_ms: Option<i64>,
    /// Only tasks created strictly before this instant.
    pub created_before_ms: Option<i64>,
    /// Only tasks whose name contains this text, ignoring ASCII case.
    pub name_contains: Option<String>,
    pub sort: TaskSort,
    pub descending: bool,
}

impl Default for TaskFilter {
    fn default() -> Self {
        TaskFilter {
            status: None,
            created_after_ms: None,
            created_before_ms: None,
            name_contains: None,
            sort: TaskSort::CreatedAt,
            descending: true,
        }
    }
}

/// The only orders tasks can be listed in (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskSort {
    CreatedAt,
    UpdatedAt,
    Name,
    /// By the latest run's state; tasks that never ran sort as the empty string.
    Status,
}

/// The state of a run (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    /// Finished with some pages failed or the compute budget exhausted.
    Partial,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Queued,
        RunState::Running,
        RunState::Completed,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Partial,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Partial => "partial",
        }
    }

    /// True for the states a run never leaves.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the run states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run state `{0}`")]
pub struct UnknownRunState(pub String);

impl FromStr for RunState {
    type Err = UnknownRunState;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RunState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| UnknownRunState(text.to_owned()))
    }
}

/// Counters of a run. `commit_page` adds each committed page to them; `renew_lease` and
/// `finish_run` only ever raise them (never lower), so a worker reporting counts of
/// committed work cannot make them go backwards or double-count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub pages_done: u64,
    pub pages_failed: u64,
    pub pages_known: u64,
    pub records: u64,
    pub bytes: u64,
    pub compute_units: u64,
}

/// One execution of a task.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: String,
    pub task_id: String,
    pub user_id: String,
    pub state: RunState,
    /// Machine-readable reason of a terminal state (`ok`, `cancelled_by_user`, …).
    pub reason: Option<String>,
    pub priority: u8,
    /// The task spec as it was when the run was enqueued.
    pub spec: serde_json::Value,
    /// How many times a worker claimed this run (1 on the first claim).
    pub attempt: u32,
    pub max_attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub cancel_requested: bool,
    pub queued_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    #[serde(flatten)]
    pub progress: Progress,
    pub error: Option<String>,
}

/// Result of [`crate::Store::request_cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The run was queued and is now `cancelled`.
    Cancelled,
    /// The run is running; its worker will see `cancel_requested` at its next lease renewal.
    CancelRequested,
    AlreadyFinished,
    NotFound,
}

/// Result of [`crate::Store::renew_lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseStatus {
    Held {
        cancel_requested: bool,
    },
    /// The run was requeued, reclaimed by another worker or finished: stop working on it.
    Lost,
}

/// What [`crate::Store::requeue_expired_runs`] did, by run id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequeueReport {
    /// Back to `queued`, to be claimed again.
    pub requeued: Vec<String>,
    /// `failed` with reason `worker_lost_max_attempts`.
    pub failed: Vec<String>,
    /// `cancelled`: the user had asked to cancel before the worker was lost.
    pub cancelled: Vec<String>,
}

/// How fetching one page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageOutcome {
    /// Fetched and extracted; counts in `pages_done`.
    Ok,
    /// Gave up on the page; counts in `pages_failed`.
    Failed,
}

impl PageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PageOutcome::Ok => "ok",
            PageOutcome::Failed => "failed",
        }
    }
}

impl FromStr for PageOutcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ok" => Ok(PageOutcome::Ok),
            "failed" => Ok(PageOutcome::Failed),
            other => Err(format!("unknown page outcome `{other}`")),
        }
    }
}

/// One page to commit with [`crate::Store::commit_page`]: its row, its records' location and
/// its compute-unit charge, all or nothing.
#[derive(Debug, Clone)]
pub struct PageCommit {
    pub run_id: String,
    /// Must be the run's owner; a mismatch is refused as a conflict.
    pub user_id: String,
    pub worker_id: String,
    /// Stable identity of the page within the run (e.g. its canonical URL): a re-executed
    /// page has the same key and is never committed or charged twice.
    pub page_key: String,
    pub url: String,
    pub status: Option<u16>,
    pub outcome: PageOutcome,
    pub records: u64,
    pub bytes: u64,
    /// Where the page's records are stored (results crate), if it had any.
    pub object_key: Option<String>,
    /// Compute units to charge for the page; 0 writes no ledger entry.
    pub charge: u64,
    /// Fetch mode label stored on the ledger entry (`http`, `browser`, …).
    pub mode: String,
}

/// Result of [`crate::Store::commit_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitOutcome {
    Committed {
        seq: u64,
        first_record: u64,
    },
    /// The page was committed before; nothing changed.
    AlreadyCommitted,
    /// The worker no longer holds the run's lease; nothing changed.
    LeaseLost,
}

/// A committed page of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunPage {
    pub run_id: String,
    pub page_key: String,
    /// Commit order within the run, from 1.
    pub seq: u64,
    pub url: String,
    pub status: Option<u16>,
    pub outcome: PageOutcome,
    pub records: u64,
    pub bytes: u64,
    pub object_key: Option<String>,
    /// Offset of the page's first record among all records of the run.
    pub first_record: u64,
    pub created_at_ms: i64,
}

/// One log line of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    pub ts_ms: i64,
    pub level: String,
    pub message: String,
    /// Structured fields; `Null` when there are none.
    pub fields: serde_json::Value,
}

/// Kind of a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    Grant,
    Charge,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Grant => "grant",
            LedgerKind::Charge => "charge",
        }
    }
}

/// One entry of the append-only compute-unit ledger. `amount` is always positive; `kind`
/// says whether it adds to or takes from the balance.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerEntry {
    pub id: i64,
    pub user_id: String,
    pub run_id: Option<String>,
    pub idempotency_key: String,
    pub kind: LedgerKind,
    pub amount: u64,
    pub mode: Option<String>,
    pub created_at_ms: i64,
}

/// A worker process's liveness record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerHeartbeat {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    pub active_runs: u32,
    pub processed: u64,
}

/// A page of a list: 1-based `page`, `page_size` items per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Page {
    pub page: u32,
    pub page_size: u32,
}

impl Page {
    pub fn new(page: u32, page_size: u32) -> Page {
        Page { page, page_size }
    }

    /// Rows to skip; page 0 is treated as page 1.
    pub(crate) fn offset(self) -> i64 {
        i64::from(self.page.max(1) - 1) * i64::from(self.page_size)
    }

    pub(crate) fn limit(self) -> i64 {
        i64::from(self.page_size)
    }
}

/// One page of items and the number of items across all pages.
#[derive(Debug, Clone, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total_count: u64,
}
