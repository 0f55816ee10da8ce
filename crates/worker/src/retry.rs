//! Riding out a database outage inside a run: a store call that failed because the database
//! could not be reached (PostgreSQL restarting or failing over, the network cut, a SQLite
//! file locked for too long) is retried with capped exponential backoff until it lands, so
//! the run keeps its in-flight state and resumes by itself when the database returns.
//! Only the store saying the lease is gone (`Lost`, `LeaseLost`) ends a run's claim on its
//! work; a failed call never does.

use std::future::Future;
use std::time::Duration;

use selextract_store::StoreError;

use crate::context::RunContext;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Calls `call` until it succeeds or fails for a reason other than unavailability. Gives up
/// early (returning the last error) when the run is being released by shutdown or its
/// heartbeat learned from the store that the lease is lost: then the work is no longer
/// this worker's to finish.
pub(crate) async fn retry_while_unavailable<T, F, Fut>(
    ctx: &RunContext,
    what: &str,
    mut call: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut delay = FIRST_DELAY;
    loop {
        match call().await {
            Err(error)
                if error.is_unavailable()
                    && !ctx.control.is_released()
                    && !ctx.control.is_lease_lost() =>
            {
                tracing::warn!(run_id = %ctx.run.id, %error, retry_in = ?delay, "{what} failed: database unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
            result => return result,
        }
    }
}
