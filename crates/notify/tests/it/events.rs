//! Which events a finished run causes, per `notify.on`, and for which targets.

use selextract_notify::{NotifyConfig, RunEventInput, deliveries_for_run};
use selextract_spec::TaskSpec;
use selextract_store::{Progress, Run, RunChanges, RunState};
use serde_json::json;

fn run() -> Run {
    Run {
        id: "run-1".to_owned(),
        task_id: "task-1".to_owned(),
        user_id: "user-1".to_owned(),
        state: RunState::Running,
        reason: None,
        priority: 5,
        spec: json!({}),
        attempt: 1,
        max_attempts: 3,
        lease_owner: None,
        lease_until_ms: None,
        cancel_requested: false,
        queued_at_ms: 1_000,
        started_at_ms: Some(2_000),
        finished_at_ms: None,
        progress: Progress::default(),
        error: None,
    }
}

fn spec(notify: serde_json::Value) -> TaskSpec {
    serde_json::from_value(json!({
        "name": "books",
        "start_urls": ["https://shop.example/"],
        "fields": [{"name": "title", "selector": "h1"}],
        "notify": notify,
    }))
    .unwrap()
}

fn changes(passed_threshold: bool) -> RunChanges {
    RunChanges {
        run_id: "run-1".to_owned(),
        task_id: "task-1".to_owned(),
        user_id: "user-1".to_owned(),
        previous_run_id: None,
        key_field: None,
        previous_records: 10,
        records: 10,
        added: 1,
        removed: 0,
        changed: 0,
        unchanged: 9,
        changed_fraction: 0.1,
        passed_threshold,
        detail_items: 1,
        detail_chunk_size: 1000,
        snapshot_chunks: 1,
        created_at_ms: 3_000,
    }
}

/// (event, channel) of each delivery.
fn events(spec: &TaskSpec, state: RunState, changes: Option<&RunChanges>) -> Vec<(String, String)> {
    let run = run();
    let input = RunEventInput {
        run: &run,
        task_name: "books",
        spec,
        state,
        reason: "ok",
        error: None,
        progress: &Progress::default(),
        changes,
    };
    deliveries_for_run(&input, &NotifyConfig::default(), 5_000)
        .into_iter()
        .map(|d| (d.event, d.channel))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(e, c)| ((*e).to_owned(), (*c).to_owned()))
        .collect()
}

#[test]
fn each_state_notifies_only_when_on_names_it_and_cancelled_never() {
    let all = spec(
        json!({"webhook_url": "https://h.example/", "on": ["completed", "failed", "partial", "changed"]}),
    );
    assert_eq!(
        events(&all, RunState::Completed, None),
        pairs(&[("run.completed", "webhook")])
    );
    assert_eq!(
        events(&all, RunState::Failed, None),
        pairs(&[("run.failed", "webhook")])
    );
    assert_eq!(
        events(&all, RunState::Partial, None),
        pairs(&[("run.partial", "webhook")])
    );
    assert!(events(&all, RunState::Cancelled, Some(&changes(true))).is_empty());
    let failed_only = spec(json!({"webhook_url": "https://h.example/", "on": ["failed"]}));
    assert!(events(&failed_only, RunState::Completed, None).is_empty());
    assert!(events(&failed_only, RunState::Partial, None).is_empty());
    assert!(events(&spec(json!(null)), RunState::Failed, None).is_empty());
}

#[test]
fn changes_notify_only_past_the_threshold_and_when_asked() {
    let changed = spec(json!({"webhook_url": "https://h.example/", "on": ["changed"]}));
    assert_eq!(
        events(&changed, RunState::Completed, Some(&changes(true))),
        pairs(&[("changes.detected", "webhook")])
    );
    assert!(events(&changed, RunState::Completed, Some(&changes(false))).is_empty());
    assert!(events(&changed, RunState::Completed, None).is_empty());
    let completed = spec(json!({"webhook_url": "https://h.example/", "on": ["completed"]}));
    assert_eq!(
        events(&completed, RunState::Completed, Some(&changes(true))),
        pairs(&[("run.completed", "webhook")])
    );
}

#[test]
fn every_named_target_gets_each_event_with_its_own_id_and_one_document() {
    let spec = spec(json!({
        "webhook_url": "https://h.example/",
        "slack_webhook_url": "https://hooks.slack.example/x",
        "email": "ops@example.com",
        "on": ["completed", "changed"],
    }));
    let run = run();
    let changes = changes(true);
    let input = RunEventInput {
        run: &run,
        task_name: "books",
        spec: &spec,
        state: RunState::Completed,
        reason: "ok",
        error: None,
        progress: &Progress::default(),
        changes: Some(&changes),
    };
    let config = NotifyConfig::default();
    let deliveries = deliveries_for_run(&input, &config, 5_000);
    assert_eq!(deliveries.len(), 6);
    let mut ids: Vec<_> = deliveries.iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    for delivery in &deliveries {
        assert_eq!(delivery.give_up_at_ms, 5_000 + 24 * 3600 * 1000);
        assert_eq!(delivery.next_attempt_at_ms, 5_000);
        let same_event: Vec<_> = deliveries
            .iter()
            .filter(|d| d.event == delivery.event)
            .collect();
        assert!(
            same_event.iter().all(|d| d.payload == delivery.payload),
            "one document per event"
        );
        assert_eq!(delivery.payload["type"], delivery.event.as_str());
        assert_eq!(
            delivery.payload["run"]["url"],
            json!(null),
            "no public_url, no links"
        );
    }
    // Empty targets are no targets.
    let blank = spec_with_blank();
    let input = RunEventInput {
        spec: &blank,
        ..input
    };
    assert!(deliveries_for_run(&input, &config, 5_000).is_empty());
}

fn spec_with_blank() -> TaskSpec {
    spec(json!({"webhook_url": "  ", "email": "", "on": ["completed"]}))
}

#[test]
fn a_change_sample_goes_only_into_changes_detected_and_is_bounded() {
    let spec = spec(json!({"webhook_url": "https://h.example/", "on": ["completed", "changed"]}));
    let run = run();
    let changes = changes(true);
    let input = RunEventInput {
        run: &run,
        task_name: "books",
        spec: &spec,
        state: RunState::Completed,
        reason: "ok",
        error: None,
        progress: &Progress::default(),
        changes: Some(&changes),
    };
    let mut deliveries = deliveries_for_run(&input, &NotifyConfig::default(), 5_000);
    let sample: Vec<_> = (0..9)
        .map(|i| json!({"kind": "added", "key": format!("k{i}"), "record": {"n": i}}))
        .collect();
    selextract_notify::attach_change_sample(&mut deliveries, &sample);
    for delivery in &deliveries {
        let attached = &delivery.payload["changes"]["sample"];
        if delivery.event == "changes.detected" {
            let entries = attached.as_array().unwrap();
            assert_eq!(entries.len(), selextract_notify::MAX_SAMPLE_ENTRIES);
            assert_eq!(entries[0], sample[0]);
            let document: selextract_notify::EventDocument =
                serde_json::from_value(delivery.payload.clone()).unwrap();
            assert_eq!(document.changes.unwrap().sample.len(), 5);
        } else {
            assert!(attached.is_null(), "run.completed carries no sample");
        }
    }
}
