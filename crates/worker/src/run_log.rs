//! A run's log lines, buffered in memory and written to the store in batches (at every
//! lease heartbeat and when the run ends), so a chatty page does not cost one write per line.

use std::sync::{Mutex, PoisonError};

use selextract_store::{LogLine, Store};
use serde_json::Value;

use crate::time::now_ms;

/// Lines beyond this many waiting for a write are dropped (and counted), so a database
/// outage cannot grow a worker's memory without bound.
const MAX_PENDING_LINES: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    lines: Vec<LogLine>,
    dropped: u64,
}

impl LogBuffer {
    pub(crate) fn push(&self, level: &str, message: impl Into<String>, fields: Value) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.lines.len() >= MAX_PENDING_LINES {
            pending.dropped += 1;
            return;
        }
        pending.lines.push(LogLine {
            ts_ms: now_ms(),
            level: level.to_owned(),
            message: message.into(),
            fields,
        });
    }

    pub(crate) fn info(&self, message: impl Into<String>, fields: Value) {
        self.push("info", message, fields);
    }

    pub(crate) fn warn(&self, message: impl Into<String>, fields: Value) {
        self.push("warn", message, fields);
    }

    pub(crate) fn error(&self, message: impl Into<String>, fields: Value) {
        self.push("error", message, fields);
    }

    fn take(&self) -> Vec<LogLine> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lines = std::mem::take(&mut pending.lines);
        if pending.dropped > 0 {
            lines.push(LogLine {
                ts_ms: now_ms(),
                level: "warn".to_owned(),
                message: format!(
                    "{} log lines were dropped while the database was unreachable",
                    pending.dropped
                ),
                fields: Value::Null,
            });
            pending.dropped = 0;
        }
        lines
    }

    /// Writes what is pending. On failure the lines go back to the front of the buffer, to
    /// be written at the next flush.
    pub(crate) async fn flush(&self, store: &Store, run_id: &str) {
        let lines = self.take();
        if lines.is_empty() {
            return;
        }
        if let Err(error) = store.append_run_logs(run_id, &lines).await {
            tracing::warn!(run_id, %error, "writing run logs failed; retrying at the next flush");
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let newer = std::mem::replace(&mut pending.lines, lines);
            pending.lines.extend(newer);
            if pending.lines.len() > MAX_PENDING_LINES {
                let excess = pending.lines.len() - MAX_PENDING_LINES;
                pending.lines.truncate(MAX_PENDING_LINES);
                pending.dropped += excess as u64;
            }
        }
    }
}
