//! The worker's Prometheus metrics (SPEC §9), recorded through the `metrics` facade so that
//! whoever installs a recorder (the server's `/metrics`) exports them. Labels are bounded:
//! modes, outcomes and states, never ids.

use std::time::Duration;

use selextract_engine::{FetchMode, PageOutcome};
use selextract_store::RunState;

pub(crate) const RUNS_TOTAL: &str = "selextract_runs_total";
pub(crate) const RUN_DURATION_SECONDS: &str = "selextract_run_duration_seconds";
pub(crate) const PAGES_FETCHED_TOTAL: &str = "selextract_pages_fetched_total";
pub(crate) const RECORDS_EXTRACTED_TOTAL: &str = "selextract_records_extracted_total";
pub(crate) const COMPUTE_UNITS_CONSUMED_TOTAL: &str = "selextract_compute_units_consumed_total";

/// Registers help texts for the worker's metrics; call once after installing a recorder.
pub fn describe_worker_metrics() {
    metrics::describe_counter!(
        RUNS_TOTAL,
        "Runs finished by workers, by terminal state and task mode."
    );
    metrics::describe_histogram!(
        RUN_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Wall time of finished runs (this attempt), by task mode."
    );
    metrics::describe_counter!(
        PAGES_FETCHED_TOTAL,
        "Pages newly committed by workers, by fetch mode and outcome (ok, http_error, error)."
    );
    metrics::describe_counter!(RECORDS_EXTRACTED_TOTAL, "Records in newly committed pages.");
    metrics::describe_counter!(
        COMPUTE_UNITS_CONSUMED_TOTAL,
        "Compute units charged for newly committed pages, by fetch mode."
    );
}

/// Counts one newly committed page. Pages skipped because an earlier attempt committed them
/// are not counted, so the counters match the ledger.
pub(crate) fn record_committed_page(
    mode: FetchMode,
    outcome: &PageOutcome,
    records: u64,
    charge: u64,
) {
    let outcome = match outcome {
        PageOutcome::Ok => "ok",
        PageOutcome::HttpStatus { .. } => "http_error",
        PageOutcome::Error { .. } => "error",
    };
    metrics::counter!(PAGES_FETCHED_TOTAL, "mode" => mode.as_str(), "outcome" => outcome)
        .increment(1);
    metrics::counter!(RECORDS_EXTRACTED_TOTAL).increment(records);
    metrics::counter!(COMPUTE_UNITS_CONSUMED_TOTAL, "mode" => mode.as_str()).increment(charge);
}

/// Counts one run this worker finished (not runs it abandoned or released).
pub(crate) fn record_finished_run(state: RunState, mode: &'static str, elapsed: Duration) {
    metrics::counter!(RUNS_TOTAL, "status" => state.as_str(), "mode" => mode).increment(1);
    metrics::histogram!(RUN_DURATION_SECONDS, "mode" => mode).record(elapsed.as_secs_f64());
}
