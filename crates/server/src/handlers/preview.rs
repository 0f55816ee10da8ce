//! `POST /preview`: runs a task on its first start URL, one page, synchronously (≤ 15 s),
//! and returns the records with the extraction diagnostics, so a user can tune selectors
//! before saving a task.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use selextract_engine::{EngineEvent, EngineOptions, PageOutcome, PageResult};
use selextract_spec::{Limits, TaskSpec, ValidatedSpec, parse_task_input, validate};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ErrorDetail};
use crate::handlers::tasks::ensure_balance_covers_one_page;
use crate::state::AppState;

const PREVIEW_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let input = parse_task_input(&body, &state.config.limits)?;
    let spec = first_page_only(input.spec.into_spec(), &state.config.limits)?;
    ensure_balance_covers_one_page(&state, &caller, spec.spec()).await?;
    let first_url = spec.spec().start_urls.first().cloned().unwrap_or_default();
    let page = fetch_first_page(&state, spec).await?;
    if let Some(page) = &page {
        charge_preview(&state, &caller, page).await?;
    }
    Ok(Json(match page {
        Some(page) => preview_json(&page),
        None => json!({
            "records": [],
            "diagnostics": null,
            "page": {"url": first_url, "status": null, "outcome": "timeout"},
            "compute_units": 0,
        }),
    }))
}

/// A preview is metered like a run's page: the fetched page is charged once, with its own
/// idempotency key (no run owns it).
async fn charge_preview(
    state: &AppState,
    caller: &Caller,
    page: &PageResult,
) -> Result<(), ApiError> {
    if page.compute_units == 0 {
        return Ok(());
    }
    let key = format!("preview:{}", uuid::Uuid::new_v4());
    state
        .store
        .charge_compute_units(
            &caller.user_id,
            page.compute_units,
            &key,
            page.mode.as_str(),
        )
        .await?;
    Ok(())
}

/// The spec narrowed to its first start URL and one page, validated again so the engine
/// gets a `ValidatedSpec` as always.
fn first_page_only(mut spec: TaskSpec, limits: &Limits) -> Result<ValidatedSpec, ApiError> {
    spec.start_urls.truncate(1);
    if let Some(pagination) = spec.pagination.as_mut() {
        pagination.max_pages = 1;
    }
    Ok(validate(spec, limits)?)
}

/// Runs the engine until its first page, at most [`PREVIEW_TIMEOUT`]; `None` on timeout.
async fn fetch_first_page(
    state: &AppState,
    spec: ValidatedSpec,
) -> Result<Option<PageResult>, ApiError> {
    let mut options = EngineOptions::new(Arc::clone(&state.http));
    options.concurrency = 1;
    options.rates = state.config.rates;
    options.browser = state.browser.clone();
    let cancel = CancellationToken::new();
    let mut events = selextract_engine::start(Arc::new(spec), options, cancel.clone())
        .map_err(|error| ApiError::Validation(vec![ErrorDetail::new("mode", error.to_string())]))?;
    let outcome = tokio::time::timeout(PREVIEW_TIMEOUT, next_page(&mut events)).await;
    // Whatever happened, nothing more is wanted from this engine.
    cancel.cancel();
    match outcome {
        Ok(Some(page)) => Ok(Some(page)),
        Ok(None) => Err(ApiError::internal(
            "the engine finished without producing a page",
        )),
        Err(_elapsed) => Ok(None),
    }
}

async fn next_page(events: &mut mpsc::Receiver<EngineEvent>) -> Option<PageResult> {
    while let Some(event) = events.recv().await {
        match event {
            EngineEvent::Page(page) => return Some(*page),
            EngineEvent::Done(_) => return None,
            EngineEvent::Progress(_) | EngineEvent::Log(_) => {}
        }
    }
    None
}

fn preview_json(page: &PageResult) -> Value {
    let error = match &page.outcome {
        PageOutcome::Error { message, .. } => Some(message.clone()),
        _ => None,
    };
    json!({
        "records": page.records,
        "diagnostics": page.diagnostics,
        "page": {
            "url": page.url.as_str(),
            "final_url": page.final_url.as_ref().map(|url| url.as_str()),
            "status": page.status,
            "outcome": page.outcome.label(),
            "error": error,
            "mode": page.mode.as_str(),
            "elapsed_ms": page.elapsed_ms,
        },
        "compute_units": page.compute_units,
    })
}
