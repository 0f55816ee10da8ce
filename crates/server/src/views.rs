//! JSON shapes of the API's resources, and the paging envelope of every list (SPEC §7).

use selextract_spec::InputShape;
use selextract_store::{ApiKey, LogLine, Page, Run, Task, TaskSummary};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorDetail};
use crate::time::{rfc3339, rfc3339_opt};

pub(crate) const DEFAULT_PAGE_SIZE: u32 = 20;
pub(crate) const MAX_PAGE_SIZE: u32 = 100;

/// A run as clients see it.
pub(crate) fn run_json(run: &Run) -> Value {
    json!({
        "id": run.id,
        "task_id": run.task_id,
        "state": run.state.as_str(),
        "reason": run.reason,
        "priority": run.priority,
        "attempt": run.attempt,
        "max_attempts": run.max_attempts,
        "cancel_requested": run.cancel_requested,
        "queued_at": rfc3339(run.queued_at_ms),
        "started_at": rfc3339_opt(run.started_at_ms),
        "finished_at": rfc3339_opt(run.finished_at_ms),
        "progress": progress_json(run),
        "error": run.error,
    })
}

pub(crate) fn progress_json(run: &Run) -> Value {
    let p = &run.progress;
    json!({
        "pages_done": p.pages_done,
        "pages_failed": p.pages_failed,
        "pages_known": p.pages_known,
        "records": p.records,
        "bytes": p.bytes,
        "compute_units": p.compute_units,
    })
}

/// A task with its canonical spec and latest run; `input_shape` only on the responses to
/// the request that sent the spec (afterwards the stored spec is always canonical).
pub(crate) fn task_json(
    task: &Task,
    latest_run: Option<&Run>,
    input_shape: Option<InputShape>,
) -> Value {
    let mut value = json!({
        "id": task.id,
        "name": task.name,
        "priority": task.priority,
        "spec": task.spec,
        "created_at": rfc3339(task.created_at_ms),
        "updated_at": rfc3339(task.updated_at_ms),
        "latest_run": latest_run.map(run_json),
    });
    if let (Some(shape), Some(object)) = (input_shape, value.as_object_mut()) {
        object.insert("input_shape".to_owned(), json!(shape));
    }
    value
}

/// A task in a list: no spec (it can hold 10,000 URLs), the latest run's id and state.
pub(crate) fn task_summary_json(summary: &TaskSummary) -> Value {
    let task = &summary.task;
    json!({
        "id": task.id,
        "name": task.name,
        "priority": task.priority,
        "status": summary.latest_run_state.map(|state| state.as_str()),
        "latest_run_id": summary.latest_run_id,
        "created_at": rfc3339(task.created_at_ms),
        "updated_at": rfc3339(task.updated_at_ms),
    })
}

pub(crate) fn api_key_json(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "prefix": format!("sk_{}", key.public_id),
        "scopes": key.scopes,
        "expires_at": rfc3339_opt(key.expires_at_ms),
        "last_used_at": rfc3339_opt(key.last_used_at_ms),
        "revoked_at": rfc3339_opt(key.revoked_at_ms),
        "created_at": rfc3339(key.created_at_ms),
    })
}

pub(crate) fn log_json(line: &LogLine) -> Value {
    json!({
        "time": rfc3339(line.ts_ms),
        "level": line.level,
        "message": line.message,
        "fields": line.fields,
    })
}

/// `{"items", "total_count", "page", "page_size", "total_pages", "has_next", "has_prev"}`.
#[derive(Debug, Serialize)]
pub(crate) struct ListEnvelope {
    pub items: Vec<Value>,
    pub total_count: u64,
    pub page: u32,
    pub page_size: u32,
    pub total_pages: u64,
    pub has_next: bool,
    pub has_prev: bool,
}

impl ListEnvelope {
    pub(crate) fn new(items: Vec<Value>, total_count: u64, page: Page) -> Self {
        let size = u64::from(page.page_size.max(1));
        let total_pages = total_count.div_ceil(size);
        ListEnvelope {
            items,
            total_count,
            page: page.page,
            page_size: page.page_size,
            total_pages,
            has_next: u64::from(page.page) < total_pages,
            has_prev: page.page > 1,
        }
    }
}

/// `page` (from 1) and `page_size` (1..=100, default 20) from their query strings, with an
/// error per bad value.
pub(crate) fn parse_page(
    page: Option<&str>,
    page_size: Option<&str>,
    errors: &mut Vec<ErrorDetail>,
) -> Page {
    let number = match page.map(str::trim).filter(|s| !s.is_empty()) {
        None => 1,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                errors.push(ErrorDetail::new("page", "must be an integer of at least 1"));
                1
            }
        },
    };
    let size = match page_size.map(str::trim).filter(|s| !s.is_empty()) {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                errors.push(ErrorDetail::new(
                    "page_size",
                    format!("must be an integer from 1 to {MAX_PAGE_SIZE}"),
                ));
                DEFAULT_PAGE_SIZE
            }
        },
    };
    Page::new(number, size)
}

/// Turns collected query errors into a 422.
pub(crate) fn check(errors: Vec<ErrorDetail>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}
