//! How a run ended, as the engine judges it: the run state and its stable reason (SPEC §3),
//! as types, so that callers match on them instead of parsing strings back.

use serde::Serialize;

use crate::{StopReason, Summary};

/// The run's end state with its reason. `Completed` and `Cancelled` carry their reasons
/// implicitly (`ok`, `cancelled_by_user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Verdict {
    /// Every page succeeded.
    Completed,
    /// Some pages succeeded, but the run did not do all it was asked.
    Partial(Reason),
    /// No page succeeded.
    Failed(Reason),
    /// The user cancelled the run.
    Cancelled,
}

/// Why a run ended the way it did. [`Reason::as_str`] gives the stable machine-readable
/// strings of SPEC §3, stored with the run and shown by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Ok,
    CancelledByUser,
    /// A compute-unit reservation was refused.
    InsufficientComputeUnits,
    /// Some pages failed (no response, a non-2xx status, or records too large).
    FetchErrors,
    /// The run lasted `limits.max_run_seconds` and stopped fetching.
    TimeLimit,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::CancelledByUser => "cancelled_by_user",
            Reason::InsufficientComputeUnits => "insufficient_compute_units",
            Reason::FetchErrors => "fetch_errors",
            Reason::TimeLimit => "time_limit",
        }
    }
}

impl Verdict {
    /// The run state's name: `completed`, `partial`, `failed` or `cancelled`.
    pub fn state_str(self) -> &'static str {
        match self {
            Verdict::Completed => "completed",
            Verdict::Partial(_) => "partial",
            Verdict::Failed(_) => "failed",
            Verdict::Cancelled => "cancelled",
        }
    }

    pub fn reason(self) -> Reason {
        match self {
            Verdict::Completed => Reason::Ok,
            Verdict::Partial(reason) | Verdict::Failed(reason) => reason,
            Verdict::Cancelled => Reason::CancelledByUser,
        }
    }
}

impl Summary {
    /// The run's verdict per SPEC §3: `completed` when every page succeeded; `partial` when
    /// some pages failed, the budget ran out or the time limit struck but some page
    /// succeeded; `failed` when none did; `cancelled` on cancellation.
    pub fn verdict(&self) -> Verdict {
        let p = &self.progress;
        let ok_pages = p.pages_done.saturating_sub(p.pages_failed);
        let partial_or_failed = |reason| {
            if ok_pages > 0 {
                Verdict::Partial(reason)
            } else {
                Verdict::Failed(reason)
            }
        };
        match self.stop {
            StopReason::Cancelled => Verdict::Cancelled,
            StopReason::BudgetExhausted => partial_or_failed(Reason::InsufficientComputeUnits),
            StopReason::TimeLimit => partial_or_failed(Reason::TimeLimit),
            StopReason::Finished if p.pages_failed == 0 => Verdict::Completed,
            StopReason::Finished => partial_or_failed(Reason::FetchErrors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Progress;

    fn summary(stop: StopReason, pages_done: u64, pages_failed: u64) -> Summary {
        Summary {
            progress: Progress {
                pages_done,
                pages_failed,
                ..Progress::default()
            },
            stop,
            elapsed_ms: 1,
        }
    }

    #[test]
    fn a_finished_run_is_completed_partial_or_failed_by_its_failed_pages() {
        assert_eq!(
            summary(StopReason::Finished, 3, 0).verdict(),
            Verdict::Completed
        );
        assert_eq!(
            summary(StopReason::Finished, 3, 1).verdict(),
            Verdict::Partial(Reason::FetchErrors)
        );
        assert_eq!(
            summary(StopReason::Finished, 2, 2).verdict(),
            Verdict::Failed(Reason::FetchErrors)
        );
    }

    #[test]
    fn a_time_limit_is_partial_when_some_page_succeeded_and_failed_otherwise() {
        assert_eq!(
            summary(StopReason::TimeLimit, 2, 1).verdict(),
            Verdict::Partial(Reason::TimeLimit)
        );
        assert_eq!(
            summary(StopReason::TimeLimit, 0, 0).verdict(),
            Verdict::Failed(Reason::TimeLimit)
        );
    }

    #[test]
    fn a_cancelled_run_is_cancelled_whatever_its_pages() {
        let verdict = summary(StopReason::Cancelled, 5, 5).verdict();
        assert_eq!(verdict, Verdict::Cancelled);
        assert_eq!(verdict.state_str(), "cancelled");
        assert_eq!(verdict.reason().as_str(), "cancelled_by_user");
    }

    #[test]
    fn every_reason_has_its_stable_string() {
        let strings: Vec<&str> = [
            Reason::Ok,
            Reason::CancelledByUser,
            Reason::InsufficientComputeUnits,
            Reason::FetchErrors,
            Reason::TimeLimit,
        ]
        .into_iter()
        .map(Reason::as_str)
        .collect();
        assert_eq!(
            strings,
            [
                "ok",
                "cancelled_by_user",
                "insufficient_compute_units",
                "fetch_errors",
                "time_limit"
            ]
        );
    }
}
