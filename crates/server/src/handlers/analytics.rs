//! `/api/v1/analytics`: the caller's usage per UTC day, week or month, and the dashboard's
//! numbers (SPEC §8) — only the caller's own runs.
//!
//! A run counts in the bucket of the moment it was queued (UTC), with everything it did:
//! its pages, records and compute units, and its outcome. So a run queued at 23:59:59.999
//! belongs to that day even if it finished after midnight; the ledger
//! (`GET /billing/usage`) dates compute units by the moment they were charged instead.
//! The store sums runs per day in one grouped query over the `(user_id, queued_at)`
//! index; days are folded into weeks and months here. Buckets without runs are present
//! with zeros, so a chart needs no gap filling.
//!
//! Scope: `tasks:read`. These are statistics of the caller's runs, which `tasks:read`
//! already shows one by one (`GET /runs/{id}` has the same counts and compute units);
//! balances and invoices stay behind `billing:read`.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use selextract_store::{DAY_MS, DayUsage, RecentRun};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiQuery, ErrorDetail};
use crate::routes::{QueryParam, Route, Success, def};
use crate::state::AppState;
use crate::time::{now_ms, rfc3339, rfc3339_opt};

const DAILY_BUCKETS: u32 = 30;
const WEEKLY_BUCKETS: u32 = 12;
const MONTHLY_BUCKETS: u32 = 12;
const RECENT_RUNS: u32 = 10;

const PERIOD: &[QueryParam] = &[(
    "period",
    "string",
    "daily (the last 30 days), weekly (the last 12 weeks, from Monday) or monthly (the last \
     12 months); UTC; default daily.",
)];

pub(crate) fn routes() -> Vec<Route> {
    use Method as M;
    use Success::Json;
    vec![
        def(
            M::GET,
            "/api/v1/analytics/usage",
            "getUsage",
            "The caller's runs, pages, records, compute units and success rate per day, week or month",
        )
        .scope(Scope::TasksRead)
        .to(usage, PERIOD, None, Json(200, "Usage")),
        def(
            M::GET,
            "/api/v1/analytics/dashboard",
            "getDashboard",
            "The dashboard's numbers: active runs, today, the last 30 days per day, recent runs",
        )
        .scope(Scope::TasksRead)
        .to(dashboard, &[], None, Json(200, "Dashboard")),
    ]
}

pub(crate) fn schemas() -> Map<String, Value> {
    let counts = json!({
        "runs": {"type": "integer", "description": "Runs queued in the bucket."},
        "pages": {"type": "integer", "description": "Pages those runs fetched (including failed pages)."},
        "pages_failed": {"type": "integer"},
        "records": {"type": "integer"},
        "compute_units": {"type": "integer"},
        "succeeded": {"type": "integer", "description": "Runs that ended completed."},
        "unsuccessful": {"type": "integer", "description": "Runs that ended failed or partial (cancelled runs are neither)."},
        "success_rate": {"type": ["number", "null"], "description": "succeeded / (succeeded + unsuccessful); null without finished runs."}
    });
    let mut bucket_properties = counts.as_object().cloned().unwrap_or_default();
    bucket_properties.insert(
        "start".to_owned(),
        json!({"type": "string", "format": "date-time"}),
    );
    bucket_properties.insert(
        "end".to_owned(),
        json!({"type": "string", "format": "date-time", "description": "Exclusive."}),
    );
    let schemas = json!({
        "UsageBucket": {"type": "object", "properties": bucket_properties},
        "UsageTotals": {"type": "object", "properties": counts},
        "Usage": {
            "type": "object",
            "required": ["period", "from", "to", "buckets", "totals"],
            "properties": {
                "period": {"type": "string", "enum": ["daily", "weekly", "monthly"]},
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time", "description": "Exclusive: the end of the current bucket."},
                "buckets": {"type": "array", "items": {"$ref": "#/components/schemas/UsageBucket"}, "description": "Oldest first; the last is the current day, week or month."},
                "totals": {"$ref": "#/components/schemas/UsageTotals"}
            }
        },
        "Dashboard": {
            "type": "object",
            "required": ["active_runs", "today", "last_30_days", "daily", "recent_runs"],
            "properties": {
                "active_runs": {"type": "object", "properties": {
                    "queued": {"type": "integer"}, "running": {"type": "integer"}, "total": {"type": "integer"}
                }},
                "today": {"$ref": "#/components/schemas/UsageTotals"},
                "last_30_days": {"$ref": "#/components/schemas/UsageTotals"},
                "daily": {"type": "array", "items": {"$ref": "#/components/schemas/UsageBucket"}},
                "recent_runs": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "task_id": {"type": "string"}, "task_name": {"type": "string"},
                    "status": {"type": "string"}, "queued_at": {"type": "string", "format": "date-time"},
                    "finished_at": {"type": ["string", "null"], "format": "date-time"},
                    "pages": {"type": "integer"}, "records": {"type": "integer"}, "compute_units": {"type": "integer"}
                }}}
            }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// How usage is bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Daily,
    Weekly,
    Monthly,
}

impl Period {
    fn parse(text: Option<&str>) -> Result<Period, ApiError> {
        match text.map(str::trim) {
            None | Some("") | Some("daily") => Ok(Period::Daily),
            Some("weekly") => Ok(Period::Weekly),
            Some("monthly") => Ok(Period::Monthly),
            Some(_) => Err(ApiError::Validation(vec![ErrorDetail::new(
                "period",
                "must be daily, weekly or monthly",
            )])),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct UsageQuery {
    period: Option<String>,
}

/// `GET /api/v1/analytics/usage?period=daily|weekly|monthly`.
pub(crate) async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<Value>, ApiError> {
    let period = Period::parse(query.period.as_deref())?;
    let bounds = bucket_bounds(period, now_ms());
    let buckets = usage_buckets(&state, &caller.user_id, &bounds).await?;
    let totals = sum(&buckets);
    Ok(Json(json!({
        "period": period.as_str(),
        "from": rfc3339(bounds.first().copied().unwrap_or_default()),
        "to": rfc3339(bounds.last().copied().unwrap_or_default()),
        "buckets": buckets_json(&bounds, &buckets),
        "totals": counts_json(&totals),
    })))
}

/// `GET /api/v1/analytics/dashboard`.
pub(crate) async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let bounds = bucket_bounds(Period::Daily, now_ms());
    let (buckets, active, recent) = tokio::try_join!(
        usage_buckets(&state, &caller.user_id, &bounds),
        async { Ok(state.store.active_runs(&caller.user_id).await?) },
        async {
            Ok::<_, ApiError>(
                state
                    .store
                    .recent_runs(&caller.user_id, RECENT_RUNS)
                    .await?,
            )
        },
    )?;
    let today = buckets.last().copied().unwrap_or_default();
    Ok(Json(json!({
        "active_runs": {
            "queued": active.queued,
            "running": active.running,
            "total": active.queued + active.running,
        },
        "today": counts_json(&today),
        "last_30_days": counts_json(&sum(&buckets)),
        "daily": buckets_json(&bounds, &buckets),
        "recent_runs": recent.iter().map(recent_run_json).collect::<Vec<_>>(),
    })))
}

/// The buckets' boundaries in unix ms, oldest first: n + 1 instants for n buckets, each a
/// UTC midnight; the last bucket holds `now`.
fn bucket_bounds(period: Period, now: i64) -> Vec<i64> {
    let today = DateTime::<Utc>::from_timestamp_millis(now)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .date_naive();
    let starts: Vec<NaiveDate> = match period {
        Period::Daily => (0..=DAILY_BUCKETS)
            .map(|i| today - Duration::days(i64::from(DAILY_BUCKETS) - 1 - i64::from(i)))
            .collect(),
        Period::Weekly => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            (0..=WEEKLY_BUCKETS)
                .map(|i| monday - Duration::weeks(i64::from(WEEKLY_BUCKETS) - 1 - i64::from(i)))
                .collect()
        }
        Period::Monthly => {
            let first = today.with_day(1).unwrap_or(today);
            (0..=MONTHLY_BUCKETS)
                .filter_map(|i| {
                    let back = MONTHLY_BUCKETS - 1;
                    if i <= back {
                        first.checked_sub_months(Months::new(back - i))
                    } else {
                        first.checked_add_months(Months::new(i - back))
                    }
                })
                .collect()
        }
    };
    starts
        .into_iter()
        .map(|date| {
            Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
                .timestamp_millis()
        })
        .collect()
}

/// The caller's usage summed into the buckets between `bounds` (one per window).
async fn usage_buckets(
    state: &AppState,
    user_id: &str,
    bounds: &[i64],
) -> Result<Vec<DayUsage>, ApiError> {
    let (Some(&from), Some(&to)) = (bounds.first(), bounds.last()) else {
        return Ok(Vec::new());
    };
    let days = state.store.daily_usage(user_id, from, to).await?;
    let mut buckets = vec![DayUsage::default(); bounds.len().saturating_sub(1)];
    for day in days {
        let at = from.saturating_add(i64::from(day.day).saturating_mul(DAY_MS));
        // The bucket whose start is the last boundary at or before the day.
        let index = bounds
            .partition_point(|&start| start <= at)
            .saturating_sub(1);
        if let Some(bucket) = buckets.get_mut(index) {
            add(bucket, &day);
        }
    }
    Ok(buckets)
}

fn add(total: &mut DayUsage, day: &DayUsage) {
    total.runs += day.runs;
    total.pages += day.pages;
    total.pages_failed += day.pages_failed;
    total.records += day.records;
    total.compute_units += day.compute_units;
    total.succeeded += day.succeeded;
    total.unsuccessful += day.unsuccessful;
}

fn sum(buckets: &[DayUsage]) -> DayUsage {
    let mut total = DayUsage::default();
    for bucket in buckets {
        add(&mut total, bucket);
    }
    total
}

fn buckets_json(bounds: &[i64], buckets: &[DayUsage]) -> Vec<Value> {
    bounds
        .windows(2)
        .zip(buckets)
        .map(|(window, bucket)| {
            let mut json = counts_json(bucket);
            if let Some(object) = json.as_object_mut() {
                object.insert("start".to_owned(), Value::String(rfc3339(window[0])));
                object.insert("end".to_owned(), Value::String(rfc3339(window[1])));
            }
            json
        })
        .collect()
}

fn counts_json(usage: &DayUsage) -> Value {
    let finished = usage.succeeded + usage.unsuccessful;
    let success_rate = (finished > 0).then(|| usage.succeeded as f64 / finished as f64);
    json!({
        "runs": usage.runs,
        "pages": usage.pages,
        "pages_failed": usage.pages_failed,
        "records": usage.records,
        "compute_units": usage.compute_units,
        "succeeded": usage.succeeded,
        "unsuccessful": usage.unsuccessful,
        "success_rate": success_rate,
    })
}

fn recent_run_json(run: &RecentRun) -> Value {
    json!({
        "id": run.id,
        "task_id": run.task_id,
        "task_name": run.task_name,
        "status": run.state,
        "queued_at": rfc3339(run.queued_at_ms),
        "finished_at": rfc3339_opt(run.finished_at_ms),
        "pages": run.pages,
        "records": run.records,
        "compute_units": run.compute_units,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn daily_buckets_are_thirty_utc_days_ending_with_today() {
        let bounds = bucket_bounds(Period::Daily, ms("2026-03-01T23:59:59.999Z"));
        assert_eq!(bounds.len(), 31);
        assert_eq!(bounds[0], ms("2026-01-31T00:00:00Z"));
        assert_eq!(bounds[29], ms("2026-03-01T00:00:00Z"));
        assert_eq!(bounds[30], ms("2026-03-02T00:00:00Z"));
    }

    #[test]
    fn weekly_buckets_start_on_monday() {
        // 2026-12-07 is a Monday; a Sunday belongs to the week before.
        let bounds = bucket_bounds(Period::Weekly, ms("2026-12-13T12:00:00Z"));
        assert_eq!(bounds.len(), 13);
        assert_eq!(bounds[11], ms("2026-12-07T00:00:00Z"));
        assert_eq!(bounds[12], ms("2026-12-14T00:00:00Z"));
        assert_eq!(bounds[0], ms("2026-09-21T00:00:00Z"));
        let monday = bucket_bounds(Period::Weekly, ms("2026-12-07T00:00:00Z"));
        assert_eq!(monday[11], ms("2026-12-07T00:00:00Z"));
    }

    #[test]
    fn monthly_buckets_are_calendar_months_across_the_year() {
        let bounds = bucket_bounds(Period::Monthly, ms("2026-02-28T10:00:00Z"));
        assert_eq!(bounds.len(), 13);
        assert_eq!(bounds[0], ms("2025-03-01T00:00:00Z"));
        assert_eq!(bounds[11], ms("2026-02-01T00:00:00Z"));
        assert_eq!(bounds[12], ms("2026-03-01T00:00:00Z"));
    }

    #[test]
    fn an_unknown_period_names_the_parameter() {
        for bad in ["hourly", "DAILY", "daily ;drop", "\u{0}"] {
            match Period::parse(Some(bad)) {
                Err(ApiError::Validation(details)) => assert_eq!(details[0].field, "period"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert_eq!(Period::parse(None).unwrap(), Period::Daily);
    }
}
