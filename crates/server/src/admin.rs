//! Admin routes (SPEC §7): the live workers and the queue, the same data as
//! `selextract status`. Only keys of admin users get them; everyone else gets
//! `403 forbidden` (the routes are in the public document, so hiding them behind a 404
//! would protect nothing).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::status::{self, WORKER_LIVENESS};
use crate::time::now_ms;

/// `GET /api/v1/admin/workers`: workers with a recent heartbeat.
pub(crate) async fn list_workers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let workers = status::live_workers(&state.store, now_ms()).await?;
    Ok(Json(json!({
        "items": workers,
        "live_within_seconds": WORKER_LIVENESS.as_secs(),
    })))
}

/// `GET /api/v1/admin/queue`: depth by state, the oldest wait, the last hour's outcomes and
/// today's compute units.
pub(crate) async fn queue(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let now = now_ms();
    let store = &state.store;
    let (queue, last_hour, compute_units_today) = tokio::try_join!(
        status::queue_status(store, now),
        status::run_activity(store, now),
        status::compute_units_today(store, now),
    )?;
    Ok(Json(json!({
        "depth": queue.depth,
        "oldest_queued_age_seconds": queue.oldest_queued_age_seconds,
        "last_hour": last_hour,
        "compute_units_today": compute_units_today,
    })))
}

pub(crate) fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this route is for administrators only".to_owned(),
        ))
    }
}
