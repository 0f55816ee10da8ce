//! The audit log: an append-only record of security-relevant events (logins, failed logins,
//! key creation and revocation, admin changes, account deletion, billing events).
//!
//! There is deliberately no method that updates or deletes an entry, and entries have no
//! foreign key: they outlive the account they concern. The one exception is account
//! deletion (`deletion.rs`): deletion is for real, so its transaction anonymises the user's
//! entries like its ledger entries (its id → `deleted:<uuid>`, `ip` cleared, the top-level
//! `"email"` removed from details) and keeps them; nothing else changes an entry. Callers never put a password, token
//! or key into `details`; [`AuditEntry::details`] is checked for the obvious names anyway.

use serde_json::Value;

use crate::db::{RowExt, now_ms, with_pool};
use crate::{Store, StoreError};

/// Keys that must never appear in an entry's details (at any depth).
const FORBIDDEN_DETAIL_KEYS: &[&str] = &[
    "password",
    "new_password",
    "current_password",
    "token",
    "refresh_token",
    "access_token",
    "secret",
    "key",
    "api_key",
];

/// An event to record.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Whose account the event concerns (`None` for installation-wide events, or a failed
    /// login for an e-mail that has no account).
    pub user_id: Option<&'a str>,
    /// Who did it: a user id, or a word such as `cli` or `billing`.
    pub actor: Option<&'a str>,
    /// A stable snake_case name (`login`, `api_key_created`, …).
    pub event: &'a str,
    /// The client address, when the event came through the API.
    pub ip: Option<&'a str>,
    /// Event-specific facts (a key's id and name, the fields an admin changed, …).
    pub details: Value,
}

/// A recorded event, as the audit routes return it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub user_id: Option<String>,
    pub actor: Option<String>,
    pub event: String,
    pub ip: Option<String>,
    pub details: Value,
    pub created_at_ms: i64,
}

/// Which entries to list: newest first, at most `limit`, before the entry `before_id`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<String>,
    pub event: Option<String>,
    pub before_id: Option<i64>,
    pub limit: u32,
}

fn holds_forbidden_key(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, inner)| {
            if FORBIDDEN_DETAIL_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
                Some(key.clone())
            } else {
                holds_forbidden_key(inner)
            }
        }),
        Value::Array(items) => items.iter().find_map(holds_forbidden_key),
        _ => None,
    }
}

impl Store {
    /// Appends one entry. Details naming a secret (`password`, `token`, `key`, …) are a
    /// programming error and refused, so a careless caller cannot write one into the log.
    pub async fn record_audit(&self, entry: &AuditEntry<'_>) -> Result<i64, StoreError> {
        if let Some(key) = holds_forbidden_key(&entry.details) {
            return Err(StoreError::InvalidArgument(format!(
                "audit details must not carry secrets (found the key {key:?})"
            )));
        }
        let details = entry.details.to_string();
        let now = now_ms();
        with_pool!(&self.db, |pool| {
            let row = sqlx::query(
                "INSERT INTO audit_log (user_id, actor_id, event, ip, details, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(entry.user_id)
            .bind(entry.actor)
            .bind(entry.event)
            .bind(entry.ip)
            .bind(&details)
            .bind(now)
            .fetch_one(pool)
            .await?;
            row.int("id")
        })
    }

    /// Entries matching `filter`, newest first (keyset paging on the id).
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::from(filter.limit.clamp(1, 1000));
        with_pool!(&self.db, |pool| {
            let rows = sqlx::query(
                "SELECT id, user_id, actor_id, event, ip, details, created_at FROM audit_log \
                 WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR event = $2) \
                 AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
            )
            .bind(filter.user_id.as_deref())
            .bind(filter.event.as_deref())
            .bind(filter.before_id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(AuditRecord {
                        id: row.int("id")?,
                        user_id: row.opt_text("user_id")?,
                        actor: row.opt_text("actor_id")?,
                        event: row.text("event")?,
                        ip: row.opt_text("ip")?,
                        details: row.json("details")?,
                        created_at_ms: row.int("created_at")?,
                    })
                })
                .collect()
        })
    }
}
