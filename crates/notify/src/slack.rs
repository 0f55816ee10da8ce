//! The Slack-compatible incoming-webhook body: `{"text": "…"}` with a readable summary of
//! the event. Text from users (the task name, errors) is made one line and escaped the way
//! Slack requires (`&`, `<`, `>`), so it cannot form links or mentions.

use serde_json::json;

use crate::document::EventDocument;

/// The body posted to a Slack incoming webhook for `event`.
pub fn slack_body(event: &EventDocument) -> serde_json::Value {
    let mut text = format!(
        "*{}* — task “{}”, run `{}`: {}",
        headline(&event.event_type),
        escape(&event.task.name),
        escape(&event.run.id),
        escape(&event.run.state),
    );
    text.push_str(&format!(
        "\n{} records, {} pages ({} failed)",
        event.run.records, event.run.pages_done, event.run.pages_failed
    ));
    if let Some(error) = &event.run.error {
        text.push_str(&format!("\nError: {}", escape(error)));
    }
    if let Some(changes) = &event.changes {
        text.push_str(&format!(
            "\nChanges: {} added, {} removed, {} changed, {} unchanged ({:.1}% changed)",
            changes.added,
            changes.removed,
            changes.changed,
            changes.unchanged,
            changes.changed_fraction * 100.0
        ));
        for entry in &changes.sample {
            text.push_str(&format!(
                "\n• {}",
                escape(&crate::email::sample_line(entry))
            ));
        }
    }
    if let Some(url) = &event.run.url {
        text.push_str(&format!("\n<{}|View the run>", escape(url)));
    }
    json!({ "text": text })
}

pub(crate) fn headline(event_type: &str) -> &'static str {
    match event_type {
        "run.completed" => "Run completed",
        "run.failed" => "Run failed",
        "run.partial" => "Run partly completed",
        "changes.detected" => "Changes detected",
        _ => "Run event",
    }
}

/// One line (control characters become spaces), with Slack's three escapes.
fn escape(text: &str) -> String {
    one_line(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
