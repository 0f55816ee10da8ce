//! A task's schedule through the API: the settings, the next 5 fire times and `next_run_at`
//! on task views; pause and resume (audited); the ticks the scheduler recorded, newest first
//! and paged; the row following the task's spec; and 404 for another user's task, a task
//! without schedule and hostile ids.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use selextract_scheduler::{SchedulerConfig, process_schedule};
use serde_json::{Value, json};

use crate::support::{TestApp, both_backends, catalogue_spec};

fn scheduled_spec(schedule: Value) -> Value {
    let mut spec = catalogue_spec("http://shop.invalid/catalog");
    spec["start"] = json!(false);
    spec["schedule"] = schedule;
    spec
}

async fn scheduled_task(app: &TestApp, key: &str, schedule: Value) -> String {
    let response = app
        .post("/api/v1/tasks", key, scheduled_spec(schedule))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    response.json()["id"].as_str().unwrap().to_owned()
}

fn instant(text: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

both_backends!(a_scheduled_task_shows_its_settings_the_next_five_fires_and_next_run_at);
async fn a_scheduled_task_shows_its_settings_the_next_five_fires_and_next_run_at() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let task = scheduled_task(
        &app,
        &user.key,
        json!({"cron": "0 0 12 * * *", "timezone": "UTC", "overlap": "queue"}),
    )
    .await;
    let schedule = app
        .get(&format!("/api/v1/tasks/{task}/schedule"), &user.key)
        .await;
    assert_eq!(schedule.status, StatusCode::OK, "{}", schedule.text());
    let schedule = schedule.json();
    assert_eq!(schedule["cron"], "0 0 12 * * *");
    assert_eq!(schedule["timezone"], "UTC");
    assert_eq!(schedule["enabled"], true);
    assert_eq!(schedule["paused"], false);
    assert_eq!(schedule["overlap"], "queue");
    assert_eq!(schedule["catch_up"], "latest");
    assert_eq!(schedule["ticks"], json!([]));
    let fires: Vec<DateTime<Utc>> = schedule["next_fire_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(instant)
        .collect();
    assert_eq!(fires.len(), 5);
    for pair in fires.windows(2) {
        assert_eq!(pair[1] - pair[0], TimeDelta::days(1), "{fires:?}");
    }
    assert!(
        fires
            .iter()
            .all(|at| at.format("%H:%M:%S").to_string() == "12:00:00")
    );

    let got = app
        .get(&format!("/api/v1/tasks/{task}"), &user.key)
        .await
        .json();
    assert_eq!(instant(&got["next_run_at"]), fires[0]);
    let list = app.get("/api/v1/tasks", &user.key).await.json();
    assert_eq!(instant(&list["items"][0]["next_run_at"]), fires[0]);

    let plain = app.task(&user.key, "unscheduled").await;
    let got = app
        .get(&format!("/api/v1/tasks/{plain}"), &user.key)
        .await
        .json();
    assert_eq!(got["next_run_at"], Value::Null);
}

both_backends!(pause_and_resume_stop_and_restart_the_fires_and_are_audited);
async fn pause_and_resume_stop_and_restart_the_fires_and_are_audited() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let task = scheduled_task(&app, &user.key, json!({"cron": "*/5 * * * *"})).await;
    let paused = app
        .post(
            &format!("/api/v1/tasks/{task}/schedule/pause"),
            &user.key,
            json!({}),
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text());
    let paused = paused.json();
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["next_fire_times"], json!([]));
    let got = app
        .get(&format!("/api/v1/tasks/{task}"), &user.key)
        .await
        .json();
    assert_eq!(got["next_run_at"], Value::Null);

    // Editing the task without touching the schedule keeps the pause.
    let replaced = app
        .call(
            Method::PUT,
            &format!("/api/v1/tasks/{task}"),
            Some(&user.key),
            Some(scheduled_spec(json!({"cron": "*/5 * * * *"}))),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    let schedule = app
        .get(&format!("/api/v1/tasks/{task}/schedule"), &user.key)
        .await
        .json();
    assert_eq!(schedule["paused"], true);

    let resumed = app
        .post(
            &format!("/api/v1/tasks/{task}/schedule/resume"),
            &user.key,
            json!({}),
        )
        .await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.text());
    let resumed = resumed.json();
    assert_eq!(resumed["paused"], false);
    assert_eq!(resumed["next_fire_times"].as_array().unwrap().len(), 5);
    let got = app
        .get(&format!("/api/v1/tasks/{task}"), &user.key)
        .await
        .json();
    assert!(got["next_run_at"].is_string(), "{got}");

    let audit = app.get("/api/v1/auth/audit", &user.key).await.json();
    let events: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"schedule_paused"), "{events:?}");
    assert!(events.contains(&"schedule_resumed"), "{events:?}");
}

both_backends!(ticks_are_listed_newest_first_and_paged_backwards);
async fn ticks_are_listed_newest_first_and_paged_backwards() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let task = scheduled_task(&app, &user.key, json!({"cron": "* * * * * *"})).await;
    let record = app
        .store
        .find_task_schedule(&user.id, &task)
        .await
        .unwrap()
        .unwrap();
    // 60 seconds of fires, processed at once (all within the 60 s grace).
    let start = DateTime::<Utc>::from_timestamp_millis(record.next_fire_at_ms.unwrap()).unwrap();
    process_schedule(
        &app.store,
        &SchedulerConfig::default(),
        &record,
        start + TimeDelta::seconds(59),
    )
    .await
    .unwrap();
    let first = app
        .get(&format!("/api/v1/tasks/{task}/schedule"), &user.key)
        .await
        .json();
    let ticks = first["ticks"].as_array().unwrap();
    assert_eq!(ticks.len(), 50);
    assert_eq!(ticks[0]["outcome"], "skipped_overlap");
    assert!(ticks[0]["scheduled_local"].as_str() > ticks[1]["scheduled_local"].as_str());
    let before = first["next_before"].as_i64().unwrap();
    let second = app
        .get(
            &format!("/api/v1/tasks/{task}/schedule?before={before}"),
            &user.key,
        )
        .await
        .json();
    let older = second["ticks"].as_array().unwrap();
    assert_eq!(older.len(), 10);
    let oldest = older.last().unwrap();
    assert_eq!(oldest["outcome"], "started");
    let run_id = oldest["run_id"].as_str().unwrap();
    let run = app.get(&format!("/api/v1/runs/{run_id}"), &user.key).await;
    assert_eq!(
        run.status,
        StatusCode::OK,
        "the started tick's run is the user's"
    );
    assert_eq!(second["next_before"], Value::Null);

    let bad = app
        .get(
            &format!("/api/v1/tasks/{task}/schedule?before=abc"),
            &user.key,
        )
        .await;
    bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

both_backends!(another_users_task_a_task_without_schedule_and_hostile_ids_are_not_found);
async fn another_users_task_a_task_without_schedule_and_hostile_ids_are_not_found() {
    let app = TestApp::new().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let task = scheduled_task(&app, &alice.key, json!({"cron": "*/5 * * * *"})).await;
    let plain = app.task(&alice.key, "plain").await;
    let long = "a".repeat(5000);
    let ids = [
        task.as_str(),
        "..%2F..%2Fetc",
        "%00",
        "'%20OR%201=1--",
        "%E2%98%83",
        long.as_str(),
    ];
    for id in ids {
        for (method, suffix) in [
            (Method::GET, ""),
            (Method::POST, "/pause"),
            (Method::POST, "/resume"),
        ] {
            let path = format!("/api/v1/tasks/{id}/schedule{suffix}");
            let response = app
                .call(
                    method.clone(),
                    &path,
                    Some(&bob.key),
                    Some(json!({})).filter(|_| method == Method::POST),
                )
                .await;
            assert_eq!(
                response.status,
                StatusCode::NOT_FOUND,
                "{path}: {}",
                response.text()
            );
        }
    }
    let response = app
        .get(&format!("/api/v1/tasks/{plain}/schedule"), &alice.key)
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    // Alice's schedule is untouched by Bob's attempts.
    let schedule = app
        .get(&format!("/api/v1/tasks/{task}/schedule"), &alice.key)
        .await
        .json();
    assert_eq!(schedule["paused"], false);

    // Replacing the task without a schedule removes it.
    let mut spec = catalogue_spec("http://shop.invalid/catalog");
    spec["start"] = json!(false);
    let replaced = app
        .call(
            Method::PUT,
            &format!("/api/v1/tasks/{task}"),
            Some(&alice.key),
            Some(spec),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    let response = app
        .get(&format!("/api/v1/tasks/{task}/schedule"), &alice.key)
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(
        app.store
            .find_schedule_any_user(&task)
            .await
            .unwrap()
            .is_none()
    );
}
