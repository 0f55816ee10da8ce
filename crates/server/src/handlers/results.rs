//! A run's records: paged reads (`/runs/{id}/records`) and streamed downloads in every
//! export format (`/runs/{id}/results`, `/tasks/{id}/results`, `/tasks/{id}/download`).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures::future::try_join_all;
use selextract_results::{ExportFormat, Record, export_stream};
use selextract_store::{OwnedRun, Run, RunPage};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiQuery, ErrorDetail};
use crate::handlers::runs::find_run;
use crate::handlers::tasks::find_task;
use crate::state::AppState;
use crate::views::check;

const DEFAULT_RECORD_LIMIT: u64 = 100;
const MAX_RECORD_LIMIT: u64 = 1000;

#[derive(Debug, Deserialize)]
pub(crate) struct RecordsQuery {
    offset: Option<String>,
    limit: Option<String>,
}

pub(crate) async fn run_records(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    ApiQuery(query): ApiQuery<RecordsQuery>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = record_range(&query)?;
    let run = find_run(&state, &caller, &run_id).await?;
    let pages = state
        .store
        .pages_for_record_range(&run, offset, limit)
        .await?;
    let items = read_record_range(&state, &pages, offset, limit).await?;
    Ok(Json(json!({
        "items": items,
        "offset": offset,
        "limit": limit,
        "total_count": run.progress.records,
    })))
}

fn record_range(query: &RecordsQuery) -> Result<(u64, u64), ApiError> {
    let mut errors = Vec::new();
    let offset = match query
        .offset
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => 0,
        Some(text) => text.parse::<u64>().unwrap_or_else(|_| {
            errors.push(ErrorDetail::new("offset", "must be a non-negative integer"));
            0
        }),
    };
    let limit = match query
        .limit
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => DEFAULT_RECORD_LIMIT,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if (1..=MAX_RECORD_LIMIT).contains(&n) => n,
            _ => {
                errors.push(ErrorDetail::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_RECORD_LIMIT}"),
                ));
                DEFAULT_RECORD_LIMIT
            }
        },
    };
    check(errors)?;
    Ok((offset, limit))
}

/// Reads the page objects overlapping `[offset, offset + limit)` (concurrently) and keeps
/// only the records inside the range, in order.
async fn read_record_range(
    state: &AppState,
    pages: &[RunPage],
    offset: u64,
    limit: u64,
) -> Result<Vec<Record>, ApiError> {
    let end = offset.saturating_add(limit);
    let reads = pages.iter().map(|page| async move {
        let Some(key) = page.object_key.as_deref() else {
            return Ok(Vec::new());
        };
        let records = state
            .results
            .read_page(key)
            .await
            .map_err(ApiError::internal)?;
        let skip = offset.saturating_sub(page.first_record);
        let take = end.saturating_sub(page.first_record.max(offset));
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let take = usize::try_from(take).unwrap_or(usize::MAX);
        Ok::<_, ApiError>(
            records
                .into_iter()
                .skip(skip)
                .take(take)
                .collect::<Vec<_>>(),
        )
    });
    Ok(try_join_all(reads).await?.into_iter().flatten().collect())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExportQuery {
    format: Option<String>,
}

pub(crate) async fn run_results(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let run = find_run(&state, &caller, &run_id).await?;
    export_run(&state, &run, query.format.as_deref()).await
}

/// The latest run's records; `/tasks/{id}/download` is the same.
pub(crate) async fn task_results(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    find_task(&state, &caller, &task_id).await?;
    let run = state
        .store
        .latest_run(&caller.user_id, &task_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("the task has not run yet".to_owned()))?;
    export_run(&state, &run, query.format.as_deref()).await
}

/// Streams the run's records in commit order, in constant memory.
async fn export_run(
    state: &AppState,
    run: &OwnedRun,
    format: Option<&str>,
) -> Result<Response, ApiError> {
    let format = export_format(run, format)?;
    let object_keys: Vec<String> = state
        .store
        .run_pages(run)
        .await?
        .into_iter()
        .filter_map(|page| page.object_key)
        .collect();
    let columns = field_names(&run.spec);
    let records = state.results.stream_records(object_keys);
    let body = Body::from_stream(export_stream(records, format, columns));
    let disposition = format!(
        "attachment; filename=\"run-{}.{}\"",
        run.id,
        format.file_extension()
    );
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// `?format=` when given, else the format the task asked for.
fn export_format(run: &Run, requested: Option<&str>) -> Result<ExportFormat, ApiError> {
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => name.parse().map_err(|_| {
            ApiError::Validation(vec![ErrorDetail::new(
                "format",
                "must be one of json, jsonl, csv, xlsx",
            )])
        }),
        None => Ok(run
            .spec
            .get("output_format")
            .and_then(Value::as_str)
            .and_then(|name| name.parse().ok())
            .unwrap_or(ExportFormat::Json)),
    }
}

/// The spec's field names in order: the CSV/XLSX columns.
fn field_names(spec: &Value) -> Vec<String> {
    spec.get("fields")
        .and_then(Value::as_array)
        .map(|fields| {
            fields
                .iter()
                .filter_map(|field| field.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
