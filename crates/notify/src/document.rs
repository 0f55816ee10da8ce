//! The event document (the webhook body, and what the Slack text and the e-mail are
//! rendered from) and the deliveries a finished run causes.
//!
//! The document is a stable, documented shape (docs/NOTIFICATIONS.md): fields are only
//! ever added. Everything the Slack text and the e-mail show is read from it, so each
//! delivery is self-contained: what is sent later is what was decided when the run ended.

use chrono::{DateTime, SecondsFormat, Utc};
use selextract_spec::{NotifyEvent, TaskSpec};
use selextract_store::{NewDelivery, Progress, Run, RunChanges, RunState};
use serde::{Deserialize, Serialize};

use crate::config::NotifyConfig;

/// What [`deliveries_for_run`] needs to know about a run that has just finished.
#[derive(Debug, Clone, Copy)]
pub struct RunEventInput<'a> {
    pub run: &'a Run,
    pub task_name: &'a str,
    pub spec: &'a TaskSpec,
    /// The state the run ends in (the run row may still say `running`).
    pub state: RunState,
    pub reason: &'a str,
    pub error: Option<&'a str>,
    pub progress: &'a Progress,
    /// The change summary, for a monitor's run.
    pub changes: Option<&'a RunChanges>,
}

/// One event: the JSON body of a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDocument {
    /// `evt_` + a UUID: the same for every target of this event.
    pub id: String,
    /// `run.completed`, `run.failed`, `run.partial` or `changes.detected`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub task: TaskDocument,
    pub run: RunDocument,
    /// The change summary (a monitor's run), else `null`.
    pub changes: Option<ChangesDocument>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDocument {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDocument {
    pub id: String,
    /// `completed`, `failed` or `partial`.
    pub state: String,
    /// Machine-readable reason (`ok`, `worker_lost_max_attempts`, …).
    pub reason: String,
    pub error: Option<String>,
    pub records: u64,
    pub pages_done: u64,
    pub pages_failed: u64,
    pub compute_units: u64,
    pub attempt: u32,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: String,
    /// `GET /api/v1/runs/{id}` on the installation's public URL (`null` when none is set).
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangesDocument {
    pub previous_run_id: Option<String>,
    pub key_field: Option<String>,
    pub previous_records: u64,
    pub records: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub changed_fraction: f64,
    pub passed_threshold: bool,
    /// `GET /api/v1/runs/{id}/changes`: the per-record detail.
    pub url: Option<String>,
    /// The first few entries of the per-record detail (as `GET /runs/{id}/changes` lists
    /// them), when the worker attached them ([`attach_change_sample`]); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<serde_json::Value>,
}

/// Entries of a change sample, at most.
pub const MAX_SAMPLE_ENTRIES: usize = 5;
/// An entry whose JSON is longer than this is replaced by its kind and key alone, so one
/// huge record cannot bloat every delivery.
pub const MAX_SAMPLE_ENTRY_BYTES: usize = 2048;

/// Adds the first few per-record changes (detail entries, e.g. the first page of
/// `selextract_changes::read_detail`) to the `changes.detected` deliveries of a run, so the
/// webhook, Slack text and e-mail carry them without reading anything later. At most
/// [`MAX_SAMPLE_ENTRIES`]; an entry over [`MAX_SAMPLE_ENTRY_BYTES`] keeps only its `kind`
/// and `key`.
pub fn attach_change_sample(deliveries: &mut [NewDelivery], sample: &[serde_json::Value]) {
    let sample: Vec<serde_json::Value> = sample
        .iter()
        .take(MAX_SAMPLE_ENTRIES)
        .map(|entry| {
            if entry.to_string().len() <= MAX_SAMPLE_ENTRY_BYTES {
                entry.clone()
            } else {
                serde_json::json!({"kind": entry.get("kind"), "key": entry.get("key"), "truncated": true})
            }
        })
        .collect();
    if sample.is_empty() {
        return;
    }
    for delivery in deliveries
        .iter_mut()
        .filter(|d| d.event == "changes.detected")
    {
        if let Some(changes) = delivery
            .payload
            .get_mut("changes")
            .and_then(|c| c.as_object_mut())
        {
            changes.insert(
                "sample".to_owned(),
                serde_json::Value::Array(sample.clone()),
            );
        }
    }
}

/// The outbox rows for a finished run: one per (event, target). Events follow
/// `notify.on`: `completed`/`failed`/`partial` for the run's own state, `changed` for
/// `changes.detected` when the change passed the threshold. A cancelled run sends
/// nothing. Targets: `notify.webhook_url` (`webhook`), `notify.slack_webhook_url`
/// (`slack`), `notify.email` (`email`).
pub fn deliveries_for_run(
    input: &RunEventInput<'_>,
    config: &NotifyConfig,
    now_ms: i64,
) -> Vec<NewDelivery> {
    let Some(notify) = &input.spec.notify else {
        return Vec::new();
    };
    let wants = |event: NotifyEvent| notify.on.contains(&event);
    let mut events = Vec::new();
    match input.state {
        RunState::Completed if wants(NotifyEvent::Completed) => events.push("run.completed"),
        RunState::Failed if wants(NotifyEvent::Failed) => events.push("run.failed"),
        RunState::Partial if wants(NotifyEvent::Partial) => events.push("run.partial"),
        _ => {}
    }
    let finished = matches!(
        input.state,
        RunState::Completed | RunState::Failed | RunState::Partial
    );
    if finished
        && wants(NotifyEvent::Changed)
        && input
            .changes
            .is_some_and(|changes| changes.passed_threshold)
    {
        events.push("changes.detected");
    }
    let targets: Vec<(&str, &str)> = [
        ("webhook", notify.webhook_url.as_deref()),
        ("slack", notify.slack_webhook_url.as_deref()),
        ("email", notify.email.as_deref()),
    ]
    .into_iter()
    .filter_map(|(channel, target)| {
        let target = target?.trim();
        (!target.is_empty()).then_some((channel, target))
    })
    .collect();
    let mut deliveries = Vec::new();
    for event in events {
        let document = event_document(input, config, event, now_ms);
        let payload = match serde_json::to_value(&document) {
            Ok(payload) => payload,
            // A document of strings and numbers always serialises; NaN fractions cannot
            // occur (the fraction is a ratio of counts with a non-zero divisor).
            Err(error) => {
                tracing::error!(%error, "serialising an event document");
                continue;
            }
        };
        for (channel, target) in &targets {
            deliveries.push(NewDelivery {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: input.run.user_id.clone(),
                task_id: Some(input.run.task_id.clone()),
                run_id: Some(input.run.id.clone()),
                event: event.to_owned(),
                channel: (*channel).to_owned(),
                target: (*target).to_owned(),
                payload: payload.clone(),
                next_attempt_at_ms: now_ms,
                give_up_at_ms: now_ms.saturating_add(duration_ms(config.retry_for)),
                created_at_ms: now_ms,
            });
        }
    }
    deliveries
}

fn event_document(
    input: &RunEventInput<'_>,
    config: &NotifyConfig,
    event: &str,
    now_ms: i64,
) -> EventDocument {
    let run = input.run;
    let base = config.base_url();
    let run_url = base.map(|base| format!("{base}/api/v1/runs/{}", run.id));
    EventDocument {
        id: format!("evt_{}", uuid::Uuid::new_v4()),
        event_type: event.to_owned(),
        created_at: rfc3339(now_ms),
        task: TaskDocument {
            id: run.task_id.clone(),
            name: input.task_name.to_owned(),
        },
        run: RunDocument {
            id: run.id.clone(),
            state: input.state.as_str().to_owned(),
            reason: input.reason.to_owned(),
            error: input.error.map(str::to_owned),
            records: input.progress.records,
            pages_done: input.progress.pages_done,
            pages_failed: input.progress.pages_failed,
            compute_units: input.progress.compute_units,
            attempt: run.attempt,
            queued_at: rfc3339(run.queued_at_ms),
            started_at: run.started_at_ms.map(rfc3339),
            finished_at: rfc3339(run.finished_at_ms.unwrap_or(now_ms)),
            url: run_url.clone(),
        },
        changes: input.changes.map(|changes| ChangesDocument {
            previous_run_id: changes.previous_run_id.clone(),
            key_field: changes.key_field.clone(),
            previous_records: changes.previous_records,
            records: changes.records,
            added: changes.added,
            removed: changes.removed,
            changed: changes.changed,
            unchanged: changes.unchanged,
            changed_fraction: changes.changed_fraction,
            passed_threshold: changes.passed_threshold,
            url: run_url.as_ref().map(|url| format!("{url}/changes")),
            sample: Vec::new(),
        }),
    }
}

pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn duration_ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
