//! `/api/v1/tasks`: create (any accepted shape), list, read, replace, delete, start, cancel
//! and retry.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use selextract_spec::{Mode, TaskSpec, parse_task_input};
use selextract_store::{NewTask, Page, Run, RunState, Task, TaskFilter, TaskSort};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorDetail, OptionalJson};
use crate::state::AppState;
use crate::time::parse_rfc3339;
use crate::views::{ListEnvelope, check, parse_page, run_json, task_json, task_summary_json};

/// Queue priority of a run when the request does not say (SPEC §4).
pub(crate) const DEFAULT_PRIORITY: u8 = 5;

type Created = (StatusCode, Json<Value>);

pub(crate) async fn create_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> Result<Created, ApiError> {
    let input = parse_task_input(&body, &state.config.limits)?;
    let start = input.start.unwrap_or(true);
    let priority = input.priority.unwrap_or(DEFAULT_PRIORITY);
    if start {
        ensure_balance_covers_one_page(&state, &caller, input.spec.spec()).await?;
    }
    let spec = serde_json::to_value(&input.spec).map_err(ApiError::internal)?;
    let new = NewTask {
        user_id: caller.user_id.clone(),
        name: input.spec.spec().name.clone(),
        spec,
        priority,
    };
    let task = state.store.create_task(new).await?;
    // Schedules (issue 12): the schedule row follows the spec.
    crate::handlers::schedules::sync_task_schedule(
        &state,
        &caller.user_id,
        &task.id,
        input.spec.spec(),
    )
    .await?;
    let run = if start {
        Some(enqueue_run(&state, &caller, &task.id, &task.spec, priority).await?)
    } else {
        None
    };
    let mut view = [task_json(&task, run.as_ref(), Some(input.shape))];
    // Schedules (issue 12): `next_run_at`.
    crate::handlers::schedules::add_next_run_at(&state, &caller.user_id, &mut view).await?;
    let [view] = view;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListTasksQuery {
    page: Option<String>,
    page_size: Option<String>,
    status: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    name_contains: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListTasksQuery>,
) -> Result<Json<ListEnvelope>, ApiError> {
    let (filter, page) = task_filter_from_query(&query)?;
    let found = state
        .store
        .list_tasks(&caller.user_id, &filter, page)
        .await?;
    let mut items: Vec<Value> = found.items.iter().map(task_summary_json).collect();
    // Schedules (issue 12): `next_run_at`.
    crate::handlers::schedules::add_next_run_at(&state, &caller.user_id, &mut items).await?;
    Ok(Json(ListEnvelope::new(items, found.total_count, page)))
}

/// Reads every filter, collecting one error per bad parameter.
fn task_filter_from_query(query: &ListTasksQuery) -> Result<(TaskFilter, Page), ApiError> {
    let mut errors = Vec::new();
    let page = parse_page(
        query.page.as_deref(),
        query.page_size.as_deref(),
        &mut errors,
    );
    let mut filter = TaskFilter::default();
    if let Some(status) = non_empty(&query.status) {
        match status.parse::<RunState>() {
            Ok(state) => filter.status = Some(state),
            Err(_) => errors.push(ErrorDetail::new(
                "status",
                "must be one of queued, running, completed, failed, cancelled, partial",
            )),
        }
    }
    for (name, value, slot) in [
        (
            "created_after",
            &query.created_after,
            &mut filter.created_after_ms,
        ),
        (
            "created_before",
            &query.created_before,
            &mut filter.created_before_ms,
        ),
    ] {
        if let Some(text) = non_empty(value) {
            match parse_rfc3339(text) {
                Some(ms) => *slot = Some(ms),
                None => errors.push(ErrorDetail::new(name, "must be an RFC 3339 timestamp")),
            }
        }
    }
    filter.name_contains = non_empty(&query.name_contains).map(str::to_owned);
    if let Some(sort) = non_empty(&query.sort) {
        match sort {
            "created_at" => filter.sort = TaskSort::CreatedAt,
            "updated_at" => filter.sort = TaskSort::UpdatedAt,
            "name" => filter.sort = TaskSort::Name,
            "status" => filter.sort = TaskSort::Status,
            _ => errors.push(ErrorDetail::new(
                "sort",
                "must be one of created_at, updated_at, name, status",
            )),
        }
    }
    match non_empty(&query.order) {
        None => {}
        Some("asc") => filter.descending = false,
        Some("desc") => filter.descending = true,
        Some(_) => errors.push(ErrorDetail::new("order", "must be asc or desc")),
    }
    check(errors)?;
    Ok((filter, page))
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

pub(crate) async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (task, run) = tokio::try_join!(
        state.store.find_task(&caller.user_id, &task_id),
        state.store.latest_run(&caller.user_id, &task_id),
    )?;
    let task = task.ok_or_else(|| ApiError::not_found("task"))?;
    let mut view = [task_json(&task, run.as_deref(), None)];
    // Schedules (issue 12): `next_run_at`.
    crate::handlers::schedules::add_next_run_at(&state, &caller.user_id, &mut view).await?;
    let [view] = view;
    Ok(Json(view))
}

pub(crate) async fn replace_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let existing = find_task(&state, &caller, &task_id).await?;
    let input = parse_task_input(&body, &state.config.limits)?;
    let priority = input.priority.unwrap_or(existing.priority);
    let spec = serde_json::to_value(&input.spec).map_err(ApiError::internal)?;
    let task = state
        .store
        .update_task(
            &caller.user_id,
            &task_id,
            &input.spec.spec().name,
            &spec,
            priority,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    // Schedules (issue 12): the schedule row follows the spec.
    crate::handlers::schedules::sync_task_schedule(
        &state,
        &caller.user_id,
        &task_id,
        input.spec.spec(),
    )
    .await?;
    let run = state.store.latest_run(&caller.user_id, &task_id).await?;
    let mut view = [task_json(&task, run.as_deref(), Some(input.shape))];
    crate::handlers::schedules::add_next_run_at(&state, &caller.user_id, &mut view).await?;
    let [view] = view;
    Ok(Json(view))
}

pub(crate) async fn delete_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::deletion::delete_task(&state, &caller.user_id, &task_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRunBody {
    priority: Option<i64>,
}

pub(crate) async fn start_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
    OptionalJson(body): OptionalJson<StartRunBody>,
) -> Result<Created, ApiError> {
    let task = find_task(&state, &caller, &task_id).await?;
    let priority = match body.unwrap_or_default().priority {
        None => task.priority,
        Some(p) => u8::try_from(p)
            .ok()
            .filter(|p| (1..=10).contains(p))
            .ok_or_else(|| {
                ApiError::Validation(vec![ErrorDetail::new(
                    "priority",
                    "must be an integer from 1 to 10",
                )])
            })?,
    };
    let spec = stored_spec(&task.spec)?;
    ensure_balance_covers_one_page(&state, &caller, &spec).await?;
    let run = enqueue_run(&state, &caller, &task.id, &task.spec, priority).await?;
    Ok((StatusCode::CREATED, Json(run_json(&run))))
}

/// Cancels the task's latest run that has not finished.
pub(crate) async fn cancel_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find_task(&state, &caller, &task_id).await?;
    let run = latest_run_where(&state, &caller, &task_id, |run| !run.state.is_terminal())
        .await?
        .ok_or_else(|| ApiError::Conflict("the task has no queued or running run".to_owned()))?;
    state.store.request_cancel(&caller.user_id, &run.id).await?;
    let run = state
        .store
        .find_run(&caller.user_id, &run.id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Json(run_json(&run)))
}

/// Starts a new run from the spec of the task's latest failed, partial or cancelled run.
pub(crate) async fn retry_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
) -> Result<Created, ApiError> {
    find_task(&state, &caller, &task_id).await?;
    let retryable = |run: &Run| {
        matches!(
            run.state,
            RunState::Failed | RunState::Partial | RunState::Cancelled
        )
    };
    let previous = latest_run_where(&state, &caller, &task_id, retryable)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
                "the task has no failed, partial or cancelled run to retry".to_owned(),
            )
        })?;
    let spec = stored_spec(&previous.spec)?;
    ensure_balance_covers_one_page(&state, &caller, &spec).await?;
    let run = enqueue_run(&state, &caller, &task_id, &previous.spec, previous.priority).await?;
    Ok((StatusCode::CREATED, Json(run_json(&run))))
}

pub(crate) async fn find_task(
    state: &AppState,
    caller: &Caller,
    task_id: &str,
) -> Result<Task, ApiError> {
    state
        .store
        .find_task(&caller.user_id, task_id)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))
}

/// The newest run of the task matching `wanted`, looking through its most recent runs.
async fn latest_run_where(
    state: &AppState,
    caller: &Caller,
    task_id: &str,
    wanted: impl Fn(&Run) -> bool,
) -> Result<Option<Run>, ApiError> {
    // Runs come newest first; a task's interesting run is almost always among the newest,
    // and a bounded scan keeps the request cheap for tasks with long histories.
    let runs = state
        .store
        .list_runs(&caller.user_id, task_id, Page::new(1, 100))
        .await?;
    Ok(runs.items.into_iter().find(|run| wanted(run)))
}

/// Queues a run and wakes an idle embedded worker.
async fn enqueue_run(
    state: &AppState,
    caller: &Caller,
    task_id: &str,
    spec: &Value,
    priority: u8,
) -> Result<Run, ApiError> {
    let run = state
        .store
        .enqueue_run(
            &caller.user_id,
            task_id,
            spec,
            priority,
            state.config.max_attempts,
        )
        .await?;
    state.waker.notify_one();
    Ok(run)
}

/// A spec read back from the store; it was canonical when written.
fn stored_spec(spec: &Value) -> Result<TaskSpec, ApiError> {
    serde_json::from_value(spec.clone()).map_err(ApiError::internal)
}

/// Compute units of the cheapest possible first page of `spec` (SPEC §6): `auto` starts over
/// HTTP, so only `browser` pays the browser rate.
pub(crate) fn cost_of_one_page(state: &AppState, spec: &TaskSpec) -> u64 {
    let rates = state.config.rates;
    let base = if spec.mode == Mode::Browser {
        rates.browser_page
    } else {
        rates.http_page
    };
    if spec.proxy.enabled {
        base + rates.proxy_page
    } else {
        base
    }
}

/// 402 when billing is on, the user's plan is limited and the balance plus the plan's
/// overage allowance cannot pay for one page.
pub(crate) async fn ensure_balance_covers_one_page(
    state: &AppState,
    caller: &Caller,
    spec: &TaskSpec,
) -> Result<(), ApiError> {
    let plans = &state.config.plans;
    if !plans.billing_enabled {
        return Ok(());
    }
    let (_, plan) = plans.plan_for(&caller.plan);
    if plan.monthly_compute_units.is_none() {
        return Ok(());
    }
    let needed = cost_of_one_page(state, spec);
    let balance = state.store.compute_unit_balance(&caller.user_id).await?;
    let available =
        balance.saturating_add(i64::try_from(plan.overage_compute_units).unwrap_or(i64::MAX));
    if available < i64::try_from(needed).unwrap_or(i64::MAX) {
        return Err(ApiError::InsufficientComputeUnits { needed, available });
    }
    Ok(())
}
