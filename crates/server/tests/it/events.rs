//! Server-Sent Events of a task's latest run, driven step by step by a fake worker that
//! acts only after the stream has reported the previous step.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures::StreamExt;
use selextract_store::{LogLine, Progress, RunState};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{TestApp, both_backends, request};

pub struct EventReader {
    body: axum::body::BodyDataStream,
    buffer: String,
}

impl EventReader {
    pub fn new(response: axum::response::Response) -> EventReader {
        EventReader {
            body: response.into_body().into_data_stream(),
            buffer: String::new(),
        }
    }

    /// The next named event, skipping keep-alive comments; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim());
                    }
                }
                if let Some(name) = name {
                    return Some((
                        name,
                        serde_json::from_str(&data).expect("event data is JSON"),
                    ));
                }
                continue;
            }
            // A guard against a hung test, not a timing assertion.
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.body.next())
                .await
                .expect("an event in time")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk.expect("body chunk")).expect("utf-8"));
        }
    }

    pub async fn expect(&mut self, name: &str) -> Value {
        loop {
            let (event, data) = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before `{name}`"));
            if event == name {
                return data;
            }
        }
    }
}

both_backends!(events_report_state_progress_logs_and_done_then_the_stream_ends);
async fn events_report_state_progress_logs_and_done_then_the_stream_ends() {
    let app = TestApp::new().await;
    let user = app.user("a@example.com").await;
    let (task_id, run_id) = app.started_task(&user.key, "watched").await;

    let response = app
        .router
        .clone()
        .oneshot(request(
            Method::GET,
            &format!("/api/v1/tasks/{task_id}/events"),
            Some(&user.key),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = EventReader::new(response);

    let first = events.expect("state").await;
    assert_eq!(
        first,
        json!({"run_id": run_id, "state": "queued", "reason": null})
    );

    let now = chrono::Utc::now().timestamp_millis();
    app.store
        .claim_next_run("w1", Duration::from_secs(60), now)
        .await
        .unwrap()
        .expect("claim");
    let running = events.expect("state").await;
    assert_eq!(running["state"], "running");

    let progress = Progress {
        pages_done: 2,
        pages_known: 5,
        records: 20,
        compute_units: 2,
        ..Progress::default()
    };
    app.store
        .renew_lease(&run_id, "w1", Duration::from_secs(60), &progress, now)
        .await
        .unwrap();
    let reported = events.expect("progress").await;
    assert_eq!(reported["pages_done"], 2);
    assert_eq!(reported["pages_known"], 5);
    assert_eq!(reported["records"], 20);
    assert_eq!(reported["compute_units"], 2);

    let line = LogLine {
        ts_ms: now,
        level: "info".to_owned(),
        message: "fetched page 2".to_owned(),
        fields: json!({}),
    };
    app.store.append_run_logs(&run_id, &[line]).await.unwrap();
    let log = events.expect("log").await;
    assert_eq!(log["message"], "fetched page 2");

    app.store
        .finish_run(
            &run_id,
            "w1",
            RunState::Completed,
            "ok",
            None,
            &progress,
            now,
        )
        .await
        .unwrap();
    let state = events.expect("state").await;
    assert_eq!(state["state"], "completed");
    let done = events.expect("done").await;
    assert_eq!(done["id"], run_id.as_str());
    assert_eq!(done["state"], "completed");
    assert_eq!(done["reason"], "ok");
    assert!(events.next().await.is_none(), "the stream ends after done");
}
