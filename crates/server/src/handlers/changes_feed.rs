//! `GET /api/v1/tasks/{id}/changes.atom?token=…`: an Atom 1.0 (RFC 4287) feed of a task's
//! runs with changes, for feed readers. Authenticated only by a feed token of that task
//! (no API key, session or cookie is looked at); an unknown, revoked or other task's token
//! gets the same 404 as a missing task, so the route reveals nothing.
//!
//! Every text that reaches the document (task name, keys, record values) goes through
//! [`xml_text`], the one escape function: markup characters become references and the
//! characters XML 1.0 forbids (most C0 controls, U+FFFE, U+FFFF) become U+FFFD.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use selextract_changes::{RunChanges, read_detail};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ApiQuery};
use crate::handlers::changes::FEED_TOKEN_PREFIX;
use crate::state::AppState;
use crate::time::rfc3339;

/// Entries in the feed: the newest runs with changes.
const FEED_ENTRIES: u32 = 50;
/// Detail entries shown in each feed entry's content.
const ENTRY_DETAIL: usize = 10;
/// The longest record text shown in an entry, so one huge record does not bloat the feed.
const MAX_RECORD_CHARS: usize = 500;

#[derive(Debug, Deserialize)]
pub(crate) struct FeedQuery {
    token: Option<String>,
}

/// `GET /api/v1/tasks/{id}/changes.atom`.
pub(crate) async fn task_changes_feed(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> Result<Response, ApiError> {
    let refused = || ApiError::NotFound("no feed for this task and token".to_owned());
    let token = query
        .token
        .as_deref()
        .filter(|token| is_feed_token(token))
        .ok_or_else(refused)?;
    let hash = selextract_accounts::tokens::hash_opaque_token(token);
    let now = chrono::Utc::now().timestamp_millis();
    let grant = state
        .store
        .use_feed_token(&task_id, &hash, now)
        .await?
        .ok_or_else(refused)?;
    let task = state
        .store
        .find_task(&grant.user_id, &task_id)
        .await?
        .ok_or_else(refused)?;
    let summaries = state
        .store
        .list_task_changes(&grant.user_id, &task_id, true, FEED_ENTRIES)
        .await?;
    let base = state.config.public_base_url();
    let mut feed = FeedWriter::new(
        &base,
        &task_id,
        &task.name,
        summaries.first(),
        task.updated_at_ms,
    );
    for summary in &summaries {
        let detail = read_detail(&state.results, summary, None, 0, ENTRY_DETAIL)
            .await
            .map_err(|error| ApiError::Internal(error.into()))?;
        feed.entry(summary, &detail.items);
    }
    let mut response = Response::new(Body::from(feed.finish()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/atom+xml; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(response)
}

fn is_feed_token(token: &str) -> bool {
    token
        .strip_prefix(FEED_TOKEN_PREFIX)
        .is_some_and(selextract_accounts::tokens::is_opaque_token)
}

/// Builds the document as text; every value is escaped where it is written.
struct FeedWriter {
    out: String,
    base: String,
}

impl FeedWriter {
    fn new(
        base: &str,
        task_id: &str,
        task_name: &str,
        newest: Option<&RunChanges>,
        task_updated_ms: i64,
    ) -> Self {
        let updated = newest.map_or(task_updated_ms, |summary| summary.created_at_ms);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
        out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
        push_element(
            &mut out,
            "id",
            &format!("urn:selextract:task:{task_id}:changes"),
        );
        push_element(&mut out, "title", &format!("{task_name}: changes"));
        push_element(&mut out, "updated", &rfc3339(updated));
        push_link(
            &mut out,
            "alternate",
            &format!("{base}/api/v1/tasks/{task_id}/changes"),
        );
        out.push_str("<author><name>Selextract</name></author>\n");
        push_element(&mut out, "generator", "Selextract");
        FeedWriter {
            out,
            base: base.to_owned(),
        }
    }

    fn entry(&mut self, summary: &RunChanges, detail: &[Value]) {
        let out = &mut self.out;
        out.push_str("<entry>\n");
        push_element(out, "id", &format!("urn:selextract:run:{}", summary.run_id));
        push_element(out, "title", &entry_title(summary));
        push_element(out, "updated", &rfc3339(summary.created_at_ms));
        push_link(
            out,
            "alternate",
            &format!("{}/api/v1/runs/{}/changes", self.base, summary.run_id),
        );
        push_element(out, "summary", &entry_summary(summary));
        out.push_str("<content type=\"text\">");
        out.push_str(&xml_text(&entry_content(summary, detail)));
        out.push_str("</content>\n</entry>\n");
    }

    fn finish(mut self) -> String {
        self.out.push_str("</feed>\n");
        self.out
    }
}

fn entry_title(summary: &RunChanges) -> String {
    format!(
        "{} added, {} removed, {} changed",
        summary.added, summary.removed, summary.changed
    )
}

fn entry_summary(summary: &RunChanges) -> String {
    let compared = summary.previous_run_id.as_deref().map_or_else(
        || "first run".to_owned(),
        |run| format!("compared with run {run}"),
    );
    format!(
        "{} added, {} removed, {} changed, {} unchanged of {} records ({compared})",
        summary.added, summary.removed, summary.changed, summary.unchanged, summary.records
    )
}

/// The first changed records as plain text, one block per record.
fn entry_content(summary: &RunChanges, detail: &[Value]) -> String {
    let mut text = entry_summary(summary);
    text.push('\n');
    for entry in detail {
        let kind = entry["kind"].as_str().unwrap_or("changed");
        let key = entry["key"].as_str().unwrap_or("");
        text.push_str(&format!("\n{kind} {key}\n"));
        match kind {
            "changed" => {
                for field in entry["fields"].as_array().into_iter().flatten() {
                    let name = field["field"].as_str().unwrap_or("");
                    let old = field.get("old").map_or("(absent)".to_owned(), short_json);
                    let new = field.get("new").map_or("(absent)".to_owned(), short_json);
                    text.push_str(&format!("  {name}: {old} -> {new}\n"));
                }
            }
            "removed" => text.push_str(&format!("  {}\n", short_json(&entry["previous"]))),
            _ => text.push_str(&format!("  {}\n", short_json(&entry["record"]))),
        }
    }
    let shown = detail.len() as u64;
    if summary.detail_items > shown {
        text.push_str(&format!("\n… and {} more\n", summary.detail_items - shown));
    }
    text
}

fn short_json(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_RECORD_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_RECORD_CHARS).collect();
    format!("{cut}…")
}

fn push_element(out: &mut String, name: &str, text: &str) {
    out.push_str(&format!("<{name}>{}</{name}>\n", xml_text(text)));
}

fn push_link(out: &mut String, rel: &str, href: &str) {
    out.push_str(&format!(
        "<link rel=\"{}\" href=\"{}\"/>\n",
        xml_text(rel),
        xml_text(href)
    ));
}

/// Text safe in XML 1.0 element content and attribute values: `&`, `<`, `>`, `"` and `'`
/// as references, and every character XML 1.0 does not allow (C0 controls other than tab,
/// newline and carriage return; U+FFFE; U+FFFF) replaced by U+FFFD.
pub(crate) fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(character),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_escapes_markup_and_replaces_characters_xml_forbids() {
        assert_eq!(
            xml_text("]]><script>alert('x')</script> & \"q\""),
            "]]&gt;&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            xml_text("a\u{0}b\u{8}c\u{1b}d\u{fffe}\u{ffff}"),
            "a\u{fffd}b\u{fffd}c\u{fffd}d\u{fffd}\u{fffd}"
        );
        assert_eq!(xml_text("tab\tnl\ncr\r é 😀"), "tab\tnl\ncr\r é 😀");
    }

    #[test]
    fn only_prefixed_opaque_tokens_are_feed_tokens() {
        let token = format!(
            "{FEED_TOKEN_PREFIX}{}",
            selextract_accounts::tokens::new_opaque_token()
        );
        assert!(is_feed_token(&token));
        assert!(!is_feed_token(token.trim_start_matches(FEED_TOKEN_PREFIX)));
        assert!(!is_feed_token(&format!("{token}x")));
        assert!(!is_feed_token("feed_<script>"));
    }
}
