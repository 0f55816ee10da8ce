//! The e-mails: an event's report (subject, plain text and HTML with the change summary)
//! and the notice that a target was disabled. Everything is read from the event document;
//! every text a user controls is escaped in the HTML and made one line in the subject.

use crate::document::EventDocument;
use crate::slack::{headline, one_line};

/// Subject, plain-text body and HTML body of one e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailBodies {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Subjects are cut here (characters).
const MAX_SUBJECT_CHARS: usize = 150;

/// The report of `event`.
pub fn event_email(event: &EventDocument) -> EmailBodies {
    let name = one_line(&event.task.name);
    let subject = subject(&format!(
        "[Selextract] {name}: {}",
        headline(&event.event_type)
    ));
    let mut rows: Vec<(String, String)> = vec![
        ("Task".into(), name.clone()),
        ("Run".into(), event.run.id.clone()),
        ("State".into(), event.run.state.clone()),
        ("Reason".into(), event.run.reason.clone()),
        ("Records".into(), event.run.records.to_string()),
        (
            "Pages".into(),
            format!(
                "{} ({} failed)",
                event.run.pages_done, event.run.pages_failed
            ),
        ),
        ("Finished".into(), event.run.finished_at.clone()),
    ];
    if let Some(error) = &event.run.error {
        rows.push(("Error".into(), error.clone()));
    }
    if let Some(changes) = &event.changes {
        rows.push((
            "Changes".into(),
            format!(
                "{} added, {} removed, {} changed, {} unchanged ({:.1}% of {} records changed)",
                changes.added,
                changes.removed,
                changes.changed,
                changes.unchanged,
                changes.changed_fraction * 100.0,
                changes.previous_records.max(changes.records)
            ),
        ));
        if let Some(previous) = &changes.previous_run_id {
            rows.push(("Compared with run".into(), previous.clone()));
        }
        for (i, entry) in changes.sample.iter().enumerate() {
            rows.push((format!("Change {}", i + 1), sample_line(entry)));
        }
    }
    let mut links = Vec::new();
    if let Some(url) = &event.run.url {
        links.push(("The run".to_owned(), url.clone()));
    }
    if let Some(url) = event.changes.as_ref().and_then(|c| c.url.clone()) {
        links.push(("The changes, record by record".to_owned(), url));
    }
    let intro = format!("{} for the task “{name}”.", headline(&event.event_type));
    render(
        subject,
        &intro,
        &rows,
        &links,
        &format!("Event {}.", event.id),
    )
}

/// The notice that a target was disabled after repeated failures.
pub fn target_disabled_email(
    task_name: &str,
    channel: &str,
    target: &str,
    reason: &str,
) -> EmailBodies {
    let name = one_line(task_name);
    let subject = subject(&format!("[Selextract] {name}: notifications disabled"));
    let intro = format!(
        "Selextract stopped sending {channel} notifications of the task “{name}” after \
         repeated failures. Pending notifications to this target were cancelled."
    );
    let rows = vec![
        ("Task".to_owned(), name.clone()),
        ("Channel".to_owned(), channel.to_owned()),
        ("Target".to_owned(), target.to_owned()),
        ("Why".to_owned(), reason.to_owned()),
    ];
    render(
        subject,
        &intro,
        &rows,
        &[],
        "Fix the receiver, then re-enable it: POST /api/v1/tasks/{id}/notify/targets/enable.",
    )
}

/// One detail entry as one line: its kind and key, then the rest as compact JSON, cut at
/// 300 characters.
pub(crate) fn sample_line(entry: &serde_json::Value) -> String {
    let text = |key: &str| match entry.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let mut rest = entry.clone();
    if let Some(map) = rest.as_object_mut() {
        map.remove("kind");
        map.remove("key");
    }
    let line = format!("{} {}: {}", text("kind"), text("key"), rest);
    let line = one_line(&line);
    if line.chars().count() > 300 {
        let cut: String = line.chars().take(299).collect();
        format!("{cut}…")
    } else {
        line
    }
}

fn subject(text: &str) -> String {
    one_line(text).chars().take(MAX_SUBJECT_CHARS).collect()
}

fn render(
    subject: String,
    intro: &str,
    rows: &[(String, String)],
    links: &[(String, String)],
    footer: &str,
) -> EmailBodies {
    let mut text = format!("{intro}\n\n");
    for (label, value) in rows {
        text.push_str(&format!("{label}: {}\n", one_line(value)));
    }
    for (label, url) in links {
        text.push_str(&format!("\n{label}:\n{}\n", one_line(url)));
    }
    text.push_str(&format!("\n{footer}\n"));

    let mut html = format!(
        "<!DOCTYPE html><html><body><p>{}</p><table>",
        escape_html(intro)
    );
    for (label, value) in rows {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape_html(label),
            escape_html(value)
        ));
    }
    html.push_str("</table>");
    for (label, url) in links {
        let href = if url.starts_with("https://") || url.starts_with("http://") {
            escape_html(url)
        } else {
            String::new()
        };
        html.push_str(&format!(
            "<p><a href=\"{href}\">{}</a></p>",
            escape_html(label)
        ));
    }
    html.push_str(&format!("<p>{}</p></body></html>", escape_html(footer)));
    EmailBodies {
        subject,
        text,
        html,
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
