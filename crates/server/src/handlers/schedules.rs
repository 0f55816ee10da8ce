//! A task's schedule: `GET /api/v1/tasks/{id}/schedule` (settings, the next 5 fire times, the
//! latest ticks, paged backwards by tick id) and `POST …/schedule/pause` and `…/resume`.
//! Also the one place the schedule row follows the task's spec ([`sync_task_schedule`],
//! called where tasks are created and replaced) and the `next_run_at` of task views.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use chrono::{DateTime, Utc};
use selextract_schedule::CronSchedule;
use selextract_scheduler::fresh_cursor;
use selextract_spec::{Schedule, TaskSpec};
use selextract_store::{ScheduleRecord, ScheduleTick, ScheduleTiming};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audit::{self, ClientIp, Event};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiQuery, ErrorDetail};
use crate::handlers::tasks::find_task;
use crate::routes::{QueryParam, Route, Success, def};
use crate::state::AppState;
use crate::time::{rfc3339, rfc3339_opt};
use crate::views::check;

/// Ticks per page.
const TICKS_PER_PAGE: u32 = 50;
/// Upcoming fire times shown.
const UPCOMING: usize = 5;
/// Task ids are UUIDs (36 bytes); a longer id is refused before any query.
const MAX_TASK_ID_BYTES: usize = 64;

const TICK_PAGING: &[QueryParam] = &[(
    "before",
    "integer",
    "Only ticks older than this tick id: pass the previous page's next_before.",
)];

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::Json;
    vec![
        def(
            M::GET,
            "/api/v1/tasks/{id}/schedule",
            "getTaskSchedule",
            "A task's schedule: settings, the next 5 fire times and the latest ticks",
        )
        .scope(Scope::TasksRead)
        .to(get_schedule, TICK_PAGING, None, Json(200, "TaskSchedule")),
        def(
            M::POST,
            "/api/v1/tasks/{id}/schedule/pause",
            "pauseTaskSchedule",
            "Pause a task's schedule (no ticks are recorded while paused)",
        )
        .scope(Scope::TasksWrite)
        .to(pause_schedule, &[], None, Json(200, "TaskSchedule")),
        def(
            M::POST,
            "/api/v1/tasks/{id}/schedule/resume",
            "resumeTaskSchedule",
            "Resume a paused schedule from now",
        )
        .scope(Scope::TasksWrite)
        .to(resume_schedule, &[], None, Json(200, "TaskSchedule")),
    ]
}

pub(crate) fn schemas() -> Map<String, Value> {
    let schemas = json!({
        "ScheduleTick": {
            "type": "object",
            "required": ["id", "scheduled_local", "outcome", "missed_count", "recorded_at"],
            "properties": {
                "id": {"type": "integer"},
                "scheduled_local": {"type": "string", "description": "The wall-clock fire time in the schedule's zone (YYYY-MM-DDTHH:MM:SS)."},
                "scheduled_at": {"type": ["string", "null"], "format": "date-time", "description": "Null for a wall-clock time that did not exist (DST)."},
                "outcome": {"type": "string", "enum": ["started", "skipped_overlap", "missed", "insufficient_compute_units", "user_disabled", "skipped_nonexistent_time"]},
                "run_id": {"type": ["string", "null"]},
                "detail": {"type": ["string", "null"]},
                "missed_count": {"type": "integer", "description": "More than 1 when the row stands for several missed fires."},
                "recorded_at": {"type": "string", "format": "date-time"}
            }
        },
        "TaskSchedule": {
            "type": "object",
            "required": ["task_id", "cron", "timezone", "enabled", "paused", "overlap", "catch_up", "next_fire_times", "ticks"],
            "properties": {
                "task_id": {"type": "string"},
                "cron": {"type": "string"},
                "timezone": {"type": "string"},
                "enabled": {"type": "boolean"},
                "paused": {"type": "boolean"},
                "paused_at": {"type": ["string", "null"], "format": "date-time"},
                "overlap": {"type": "string", "enum": ["skip", "queue", "cancel_previous"]},
                "catch_up": {"type": "string", "enum": ["latest", "none"]},
                "next_fire_times": {"type": "array", "items": {"type": "string", "format": "date-time"}, "description": "The next 5 fires (UTC); empty when disabled or paused."},
                "ticks": {"type": "array", "items": {"$ref": "#/components/schemas/ScheduleTick"}, "description": "Newest first."},
                "next_before": {"type": ["integer", "null"], "description": "Pass as `before` for older ticks."}
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TicksQuery {
    before: Option<String>,
}

/// `GET /api/v1/tasks/{id}/schedule`.
pub(crate) async fn get_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(task_id): Path<String>,
    ApiQuery(query): ApiQuery<TicksQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = Vec::new();
    let before = match query.before.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<i64>() {
            Ok(id) if id >= 1 => Some(id),
            _ => {
                errors.push(ErrorDetail::new("before", "must be a positive integer"));
                None
            }
        },
    };
    check(errors)?;
    let (schedule, spec) = find_schedule(&state, &caller, &task_id).await?;
    let ticks = state
        .store
        .list_task_schedule_ticks(&caller.user_id, &task_id, before, TICKS_PER_PAGE)
        .await?;
    Ok(Json(schedule_json(&schedule, &spec, &ticks, Utc::now())))
}

/// `POST /api/v1/tasks/{id}/schedule/pause`.
pub(crate) async fn pause_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, spec) = find_schedule(&state, &caller, &task_id).await?;
    let now = Utc::now();
    let schedule = state
        .store
        .pause_task_schedule(&caller.user_id, &task_id, now.timestamp_millis())
        .await?
        .ok_or_else(|| ApiError::not_found("schedule"))?;
    let event = Event::by_user(
        &caller.user_id,
        "schedule_paused",
        json!({"task_id": task_id}),
    );
    audit::record(&state, &ip, event).await;
    Ok(Json(schedule_json(&schedule, &spec, &[], now)))
}

/// `POST /api/v1/tasks/{id}/schedule/resume`: from now; the fires while paused are not
/// recorded.
pub(crate) async fn resume_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ip: ClientIp,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (schedule, spec) = find_schedule(&state, &caller, &task_id).await?;
    let now = Utc::now();
    let cron =
        CronSchedule::parse(&schedule.cron, &schedule.timezone).map_err(ApiError::internal)?;
    let schedule = state
        .store
        .resume_task_schedule(
            &caller.user_id,
            &task_id,
            &fresh_cursor(&cron, now),
            now.timestamp_millis(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("schedule"))?;
    let event = Event::by_user(
        &caller.user_id,
        "schedule_resumed",
        json!({"task_id": task_id}),
    );
    audit::record(&state, &ip, event).await;
    Ok(Json(schedule_json(&schedule, &spec, &[], now)))
}

/// The caller's task's schedule row and the spec's schedule section; 404 for a task that
/// is missing, another user's, or without schedule.
async fn find_schedule(
    state: &AppState,
    caller: &Caller,
    task_id: &str,
) -> Result<(ScheduleRecord, Schedule), ApiError> {
    // Task ids are UUIDs: anything much longer, or with a NUL (which PostgreSQL refuses in
    // text, failing the query), names no task.
    if task_id.len() > MAX_TASK_ID_BYTES || task_id.contains('\0') {
        return Err(ApiError::not_found("task"));
    }
    let task = find_task(state, caller, task_id).await?;
    let spec: TaskSpec = serde_json::from_value(task.spec).map_err(ApiError::internal)?;
    let section = spec
        .schedule
        .ok_or_else(|| ApiError::not_found("schedule"))?;
    let record = state
        .store
        .find_task_schedule(&caller.user_id, task_id)
        .await?
        .ok_or_else(|| ApiError::not_found("schedule"))?;
    Ok((record, section))
}

fn schedule_json(
    record: &ScheduleRecord,
    spec: &Schedule,
    ticks: &[ScheduleTick],
    now: DateTime<Utc>,
) -> Value {
    let next_fire_times: Vec<String> = if record.is_active() {
        CronSchedule::parse(&record.cron, &record.timezone)
            .map(|cron| cron.upcoming(now, UPCOMING))
            .unwrap_or_default()
            .into_iter()
            .map(|at| rfc3339(at.timestamp_millis()))
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "task_id": record.task_id,
        "cron": record.cron,
        "timezone": record.timezone,
        "enabled": record.enabled,
        "paused": record.paused_at_ms.is_some(),
        "paused_at": rfc3339_opt(record.paused_at_ms),
        "overlap": spec.overlap,
        "catch_up": spec.catch_up,
        "next_fire_times": next_fire_times,
        "ticks": ticks.iter().map(tick_json).collect::<Vec<_>>(),
        "next_before": (ticks.len() == TICKS_PER_PAGE as usize).then(|| ticks.last().map(|t| t.id)).flatten(),
    })
}

fn tick_json(tick: &ScheduleTick) -> Value {
    json!({
        "id": tick.id,
        "scheduled_local": tick.scheduled_local,
        "scheduled_at": rfc3339_opt(tick.scheduled_at_ms),
        "outcome": tick.outcome.as_str(),
        "run_id": tick.run_id,
        "detail": tick.detail,
        "missed_count": tick.missed_count,
        "recorded_at": rfc3339(tick.recorded_at_ms),
    })
}

/// Makes the schedule row follow the task's spec after it was created or replaced: a
/// `schedule` section upserts it (a new or changed expression, zone or `enabled` starts
/// from now; otherwise cursor and pause are kept), no section removes it.
pub(crate) async fn sync_task_schedule(
    state: &AppState,
    user_id: &str,
    task_id: &str,
    spec: &TaskSpec,
) -> Result<(), ApiError> {
    let Some(schedule) = &spec.schedule else {
        state.store.delete_task_schedule(user_id, task_id).await?;
        return Ok(());
    };
    let cron = CronSchedule::parse(&schedule.cron, &schedule.timezone).map_err(|error| {
        ApiError::Validation(vec![ErrorDetail::new("schedule.cron", error.to_string())])
    })?;
    let timing = ScheduleTiming {
        cron: schedule.cron.clone(),
        timezone: schedule.timezone.clone(),
        enabled: schedule.enabled,
    };
    state
        .store
        .upsert_task_schedule(user_id, task_id, &timing, &fresh_cursor(&cron, Utc::now()))
        .await?;
    Ok(())
}

/// Adds `next_run_at` (RFC 3339, or null when unscheduled, disabled or paused) to task
/// views, by their `id`.
pub(crate) async fn add_next_run_at(
    state: &AppState,
    user_id: &str,
    tasks: &mut [Value],
) -> Result<(), ApiError> {
    let ids: Vec<String> = tasks
        .iter()
        .filter_map(|task| task.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let next = state.store.next_runs_of_tasks(user_id, &ids).await?;
    for task in tasks {
        let at = task
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| next.iter().find(|n| n.task_id == id))
            .and_then(|n| n.next_run_at_ms);
        if let Some(object) = task.as_object_mut() {
            object.insert("next_run_at".to_owned(), json!(rfc3339_opt(at)));
        }
    }
    Ok(())
}
