//! Runs and their logs: `/tasks/{id}/runs`, `/runs/{id}`, `/runs/{id}/logs`,
//! `/tasks/{id}/logs`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use selextract_store::{OwnedRun, Page};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, ApiQuery};
use crate::handlers::tasks::find_task;
use crate::state::AppState;
use crate::views::{ListEnvelope, check, log_json, parse_page, run_json};

#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    page: Option<String>,
    page_size: Option<String>,
}

impl PageQuery {
    pub(crate) fn page(&self) -> Result<Page, ApiError> {
        let mut errors = Vec::new();
        let page = parse_page(self.page.as_deref(), self.page_size.as_deref(), &mut errors);
        check(errors)?;
        Ok(page)
    }
}

pub(crate) async fn list_task_runs(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ListEnvelope>, ApiError> {
    let page = query.page()?;
    find_task(&state, &caller, &task_id).await?;
    let runs = state
        .store
        .list_runs(&caller.user_id, &task_id, page)
        .await?;
    let items = runs.items.iter().map(run_json).collect();
    Ok(Json(ListEnvelope::new(items, runs.total_count, page)))
}

pub(crate) async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = find_run(&state, &caller, &run_id).await?;
    Ok(Json(run_json(&run)))
}

pub(crate) async fn run_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ListEnvelope>, ApiError> {
    let page = query.page()?;
    let run = find_run(&state, &caller, &run_id).await?;
    logs_page(&state, Some(&run), page).await
}

/// Deletes a finished run with its pages, logs and stored records; a queued or running
/// run is `run_active` (409) until it is cancelled and has stopped.
pub(crate) async fn delete_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::deletion::delete_run(&state, &caller.user_id, &run_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The logs of the task's latest run; an empty list when it never ran.
pub(crate) async fn task_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ListEnvelope>, ApiError> {
    let page = query.page()?;
    find_task(&state, &caller, &task_id).await?;
    let run = state.store.latest_run(&caller.user_id, &task_id).await?;
    logs_page(&state, run.as_ref(), page).await
}

async fn logs_page(
    state: &AppState,
    run: Option<&OwnedRun>,
    page: Page,
) -> Result<Json<ListEnvelope>, ApiError> {
    let Some(run) = run else {
        return Ok(Json(ListEnvelope::new(Vec::new(), 0, page)));
    };
    let lines = state.store.list_run_logs(run, page).await?;
    let items = lines.items.iter().map(log_json).collect();
    Ok(Json(ListEnvelope::new(items, lines.total_count, page)))
}

/// The caller's run, as the [`OwnedRun`] that reading its logs, pages and records needs.
pub(crate) async fn find_run(
    state: &AppState,
    caller: &Caller,
    run_id: &str,
) -> Result<OwnedRun, ApiError> {
    state
        .store
        .find_run(&caller.user_id, run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))
}
