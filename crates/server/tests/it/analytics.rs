//! `/api/v1/analytics`: usage per UTC day, week and month and the dashboard's numbers equal
//! hand-counted fixtures — runs inserted with chosen times and counts on both sides of
//! each bucket boundary (23:59:59.999 and 00:00:00.000 UTC) — and only the caller's own.

use axum::http::StatusCode;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, Utc};
use selextract_store::RunState;
use selextract_store::testing::{UsageRun, insert_usage_run};
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser, both_backends};

const DAY: i64 = 86_400_000;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn midnight(date: NaiveDate) -> i64 {
    date.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A run of `user`'s task queued at `at`, with pages done/failed, records and compute units.
async fn run(
    app: &TestApp,
    user: &TestUser,
    task_id: &str,
    state: RunState,
    at: i64,
    (done, failed, records, compute_units): (u64, u64, u64, u64),
) {
    insert_usage_run(
        &app.store,
        &UsageRun {
            user_id: &user.id,
            task_id,
            state,
            queued_at_ms: at,
            pages_done: done,
            pages_failed: failed,
            records,
            compute_units,
        },
    )
    .await
    .unwrap();
}

/// Runs `attempt` until the UTC date is the same before and after it (at most three times),
/// so a test that started just before midnight does not compare against the wrong day.
macro_rules! on_one_utc_day {
    ($attempt:expr) => {{
        let mut tries = 0;
        loop {
            let day = today();
            let outcome = ($attempt)(day).await;
            if today() == day {
                break outcome;
            }
            tries += 1;
            assert!(tries < 3, "the date kept changing");
        }
    }};
}

fn counts(bucket: &Value) -> Value {
    json!({
        "runs": bucket["runs"],
        "pages": bucket["pages"],
        "pages_failed": bucket["pages_failed"],
        "records": bucket["records"],
        "compute_units": bucket["compute_units"],
        "succeeded": bucket["succeeded"],
        "unsuccessful": bucket["unsuccessful"],
        "success_rate": bucket["success_rate"],
    })
}

fn zero() -> Value {
    json!({"runs": 0, "pages": 0, "pages_failed": 0, "records": 0, "compute_units": 0,
           "succeeded": 0, "unsuccessful": 0, "success_rate": null})
}

both_backends!(daily_usage_equals_hand_counted_runs_across_midnight);
async fn daily_usage_equals_hand_counted_runs_across_midnight() {
    let (usage, day) = on_one_utc_day!(|day: NaiveDate| async move {
        let app = TestApp::new().await;
        let user = app.user("a@example.com").await;
        let other = app.user("b@example.com").await;
        let task = app.task(&user.key, "mine").await;
        let others_task = app.task(&other.key, "theirs").await;
        let today = midnight(day);
        let first = today - 29 * DAY;
        use RunState::*;
        // Yesterday's last millisecond, and today's first ones.
        run(&app, &user, &task, Completed, today - 1, (3, 0, 30, 5)).await;
        run(&app, &user, &task, Failed, today, (1, 1, 4, 2)).await;
        run(&app, &user, &task, Cancelled, today + 1, (0, 0, 0, 0)).await;
        run(&app, &user, &task, Partial, today + 2, (2, 2, 7, 4)).await;
        // The window's first millisecond is in; the one before it is out.
        run(&app, &user, &task, Completed, first, (1, 0, 1, 1)).await;
        run(&app, &user, &task, Completed, first - 1, (100, 0, 100, 100)).await;
        // Another user's run, today: never counted.
        run(
            &app,
            &other,
            &others_task,
            Completed,
            today,
            (50, 0, 50, 50),
        )
        .await;
        let response = app
            .get("/api/v1/analytics/usage?period=daily", &user.key)
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        (response.json(), day)
    });
    let today = midnight(day);
    assert_eq!(usage["period"], "daily");
    assert_eq!(usage["from"], rfc3339(today - 29 * DAY));
    assert_eq!(usage["to"], rfc3339(today + DAY));
    let buckets = usage["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 30);
    for (index, bucket) in buckets.iter().enumerate() {
        let start = today - (29 - index as i64) * DAY;
        assert_eq!(bucket["start"], rfc3339(start), "bucket {index}");
        assert_eq!(bucket["end"], rfc3339(start + DAY), "bucket {index}");
        let expected = match index {
            0 => json!({"runs": 1, "pages": 1, "pages_failed": 0, "records": 1, "compute_units": 1,
                        "succeeded": 1, "unsuccessful": 0, "success_rate": 1.0}),
            28 => {
                json!({"runs": 1, "pages": 3, "pages_failed": 0, "records": 30, "compute_units": 5,
                         "succeeded": 1, "unsuccessful": 0, "success_rate": 1.0})
            }
            // failed + cancelled + partial: the cancelled run is in neither outcome.
            29 => {
                json!({"runs": 3, "pages": 6, "pages_failed": 3, "records": 11, "compute_units": 6,
                         "succeeded": 0, "unsuccessful": 2, "success_rate": 0.0})
            }
            _ => zero(),
        };
        assert_eq!(counts(bucket), expected, "bucket {index}");
    }
    assert_eq!(
        usage["totals"],
        json!({"runs": 5, "pages": 10, "pages_failed": 3, "records": 42, "compute_units": 12,
               "succeeded": 2, "unsuccessful": 2, "success_rate": 0.5})
    );
}

both_backends!(weekly_and_monthly_buckets_split_at_monday_and_the_first_of_the_month);
async fn weekly_and_monthly_buckets_split_at_monday_and_the_first_of_the_month() {
    let (weekly, monthly) = on_one_utc_day!(|day: NaiveDate| async move {
        let monday =
            midnight(day - Duration::days(i64::from(day.weekday().num_days_from_monday())));
        let first_week = monday - 11 * 7 * DAY;
        let month = day.with_day(1).unwrap();
        let this_month = midnight(month);
        let first_month = midnight(month.checked_sub_months(Months::new(11)).unwrap());
        let mut results = Vec::new();
        for (period, current, first) in [
            ("weekly", monday, first_week),
            ("monthly", this_month, first_month),
        ] {
            let app = TestApp::new().await;
            let user = app.user("a@example.com").await;
            let task = app.task(&user.key, "t").await;
            use RunState::Completed;
            run(&app, &user, &task, Completed, current, (1, 0, 1, 1)).await;
            run(&app, &user, &task, Completed, current - 1, (1, 0, 1, 10)).await;
            run(&app, &user, &task, Completed, first, (1, 0, 1, 100)).await;
            run(&app, &user, &task, Completed, first - 1, (1, 0, 1, 1000)).await;
            let response = app
                .get(
                    &format!("/api/v1/analytics/usage?period={period}"),
                    &user.key,
                )
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text());
            results.push((response.json(), current, first));
        }
        let monthly = results.pop().unwrap();
        let weekly = results.pop().unwrap();
        (weekly, monthly)
    });
    for (usage, current, first) in [weekly, monthly] {
        let buckets = usage["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 12, "{usage}");
        assert_eq!(usage["from"], rfc3339(first));
        assert_eq!(buckets[0]["start"], rfc3339(first));
        assert_eq!(buckets[11]["start"], rfc3339(current));
        assert_eq!(buckets[10]["end"], rfc3339(current));
        let units: Vec<i64> = buckets
            .iter()
            .map(|bucket| bucket["compute_units"].as_i64().unwrap())
            .collect();
        let mut expected = vec![0; 12];
        expected[0] = 100;
        expected[10] = 10;
        expected[11] = 1;
        assert_eq!(units, expected, "{}", usage["period"]);
        assert_eq!(usage["totals"]["compute_units"], 111);
        assert_eq!(usage["totals"]["runs"], 3);
    }
}

both_backends!(an_unknown_period_is_refused_naming_the_parameter);
async fn an_unknown_period_is_refused_naming_the_parameter() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    for bad in [
        "hourly",
        "Daily",
        "daily%27%20OR%201=1",
        "%00",
        &"d".repeat(10_000),
    ] {
        let response = app
            .get(&format!("/api/v1/analytics/usage?period={bad}"), &user.key)
            .await;
        let error = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["details"][0]["field"], "period", "{error}");
    }
    // No period: daily.
    let response = app.get("/api/v1/analytics/usage", &user.key).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["period"], "daily");
    assert_eq!(response.json()["buckets"].as_array().unwrap().len(), 30);
}

both_backends!(the_dashboard_counts_active_runs_today_and_lists_only_own_recent_runs);
async fn the_dashboard_counts_active_runs_today_and_lists_only_own_recent_runs() {
    let dashboard = on_one_utc_day!(|day: NaiveDate| async move {
        let app = TestApp::new().await;
        let user = app.user("a@example.com").await;
        let other = app.user("b@example.com").await;
        let task = app.task(&user.key, "Prices ☃").await;
        let others_task = app.task(&other.key, "theirs").await;
        let today = midnight(day);
        use RunState::*;
        run(&app, &user, &task, Completed, today - DAY, (9, 0, 90, 9)).await;
        run(&app, &user, &task, Completed, today, (2, 0, 5, 3)).await;
        run(&app, &user, &task, Failed, today + 1, (0, 1, 0, 1)).await;
        run(&app, &user, &task, Running, today + 2, (1, 0, 2, 1)).await;
        run(&app, &user, &task, Queued, today + 3, (0, 0, 0, 0)).await;
        run(&app, &other, &others_task, Running, today + 4, (7, 0, 7, 7)).await;
        let response = app.get("/api/v1/analytics/dashboard", &user.key).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        response.json()
    });
    assert_eq!(
        dashboard["active_runs"],
        json!({"queued": 1, "running": 1, "total": 2})
    );
    assert_eq!(
        dashboard["today"],
        json!({"runs": 4, "pages": 4, "pages_failed": 1, "records": 7, "compute_units": 5,
               "succeeded": 1, "unsuccessful": 1, "success_rate": 0.5})
    );
    assert_eq!(dashboard["last_30_days"]["runs"], 5);
    assert_eq!(dashboard["last_30_days"]["compute_units"], 14);
    assert_eq!(dashboard["last_30_days"]["success_rate"], json!(2.0 / 3.0));
    let daily = dashboard["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 30);
    assert_eq!(daily[28]["compute_units"], 9);
    assert_eq!(daily[29]["runs"], 4);
    let recent = dashboard["recent_runs"].as_array().unwrap();
    let states: Vec<&str> = recent
        .iter()
        .map(|run| run["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["queued", "running", "failed", "completed", "completed"],
        "newest first, only the caller's: {dashboard}"
    );
    assert!(recent.iter().all(|run| run["task_name"] == "Prices ☃"));
    assert_eq!(recent[3]["records"], 5);
    assert_eq!(recent[3]["pages"], 2);
    assert_eq!(recent[0]["finished_at"], Value::Null);
}

both_backends!(analytics_need_tasks_read_and_show_a_new_user_zeros);
async fn analytics_need_tasks_read_and_show_a_new_user_zeros() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let results_only = app.key_for(&user.id, &["results:read"], None).await;
    let reader = app.key_for(&user.id, &["tasks:read"], None).await;
    for path in ["/api/v1/analytics/usage", "/api/v1/analytics/dashboard"] {
        app.get(path, &results_only)
            .await
            .assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
        assert_eq!(
            app.get(path, &reader).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let dashboard = app.get("/api/v1/analytics/dashboard", &reader).await.json();
    assert_eq!(dashboard["active_runs"]["total"], 0);
    assert_eq!(dashboard["today"], zero());
    assert_eq!(dashboard["recent_runs"], json!([]));
    let monthly = app
        .get("/api/v1/analytics/usage?period=monthly", &reader)
        .await
        .json();
    assert!(
        monthly["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| counts(b) == zero())
    );
}
