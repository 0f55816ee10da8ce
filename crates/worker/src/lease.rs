//! The heartbeat of one run: renew its lease with the committed progress, write its pending
//! log lines, and react to the cancel flag or a lost lease.

use std::sync::Arc;

use selextract_store::LeaseStatus;
use serde_json::json;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::context::RunContext;
use crate::time::now_ms;

/// Runs until `stop` is cancelled or the lease is lost. `stop` is only observed between
/// heartbeats, never in the middle of a write, so stopping never loses drained log lines.
pub(crate) async fn keep_lease(ctx: Arc<RunContext>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(ctx.worker.config.heartbeat_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick of an interval is immediate; the claim itself just set the lease.
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        ctx.logs.flush(&ctx.worker.deps.store, &ctx.run.id).await;
        if renew_lease_once(&ctx).await == Renewal::Lost {
            return;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Renewal {
    Held,
    Lost,
}

/// One renewal. A failed renewal (database unreachable) is retried at the next heartbeat:
/// the lease is many heartbeats long, and if it does run out, the store refuses this
/// worker's next commit and the run is abandoned then.
async fn renew_lease_once(ctx: &RunContext) -> Renewal {
    let worker = &ctx.worker;
    let renewed = worker
        .deps
        .store
        .renew_lease(
            &ctx.run.id,
            ctx.worker_id(),
            worker.config.lease,
            &ctx.progress(),
            now_ms(),
        )
        .await;
    match renewed {
        Ok(LeaseStatus::Held { cancel_requested }) => {
            if cancel_requested && !ctx.control.is_user_cancelled() {
                ctx.logs.info("cancellation requested; stopping", json!({}));
                ctx.control.cancel_by_user();
            }
            Renewal::Held
        }
        Ok(LeaseStatus::Lost) => {
            tracing::warn!(run_id = %ctx.run.id, "lease lost; abandoning the run to its new owner");
            ctx.control.lose_lease();
            Renewal::Lost
        }
        Err(error) => {
            tracing::warn!(run_id = %ctx.run.id, %error, "renewing the lease failed; retrying at the next heartbeat");
            Renewal::Held
        }
    }
}
