//! Usage analytics: one user's runs per UTC day (runs, pages, records, compute units,
//! outcomes) for the usage and dashboard routes, and the installation-wide count of active
//! users for `selextract_active_users`.

use crate::db::{RowExt, with_pool};
use crate::{Store, StoreError};

impl Store {
    /// Enabled users active at or after `since_ms`: an API key used, a live session (not
    /// revoked, not expired at `now_ms`) seen, or a refresh token issued (a login or a
    /// rotation) and still valid. One row per user, whatever the number of credentials.
    pub async fn count_active_users(&self, since_ms: i64, now_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "\
SELECT COUNT(*) AS n FROM users u WHERE u.disabled = 0 AND ( \
    EXISTS (SELECT 1 FROM api_keys k WHERE k.user_id = u.id AND k.last_used_at >= $1) \
    OR EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL \
               AND s.expires_at > $2 AND s.last_seen_at >= $1) \
    OR EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.user_id = u.id AND r.revoked_at IS NULL \
               AND r.expires_at > $2 AND r.created_at >= $1))";
        with_pool!(&self.db, |pool| {
            sqlx::query(SQL)
                .bind(since_ms)
                .bind(now_ms)
                .fetch_one(pool)
                .await?
                .uint("n")
        })
    }
}

/// Milliseconds in a UTC day: buckets are whole days counted from a UTC midnight.
pub const DAY_MS: i64 = 86_400_000;

/// One UTC day of a user's runs, counted by the day each run was queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayUsage {
    /// Days since the start of the queried window (0 is the first day).
    pub day: u32,
    pub runs: u64,
    /// Pages fetched: committed pages, successful or failed.
    pub pages: u64,
    pub pages_failed: u64,
    pub records: u64,
    pub compute_units: u64,
    /// Runs that ended `completed`.
    pub succeeded: u64,
    /// Runs that ended `failed` or `partial` (a cancelled run is the user's choice, not a
    /// failure, and counts in neither).
    pub unsuccessful: u64,
}

/// A user's queued and running runs now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveRuns {
    pub queued: u64,
    pub running: u64,
}

/// A recent run with its task's name, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRun {
    pub id: String,
    pub task_id: String,
    pub task_name: String,
    pub state: String,
    pub queued_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub pages: u64,
    pub records: u64,
    pub compute_units: u64,
}

impl Store {
    /// The user's runs queued in `[from_ms, to_ms)`, summed per UTC day counted from
    /// `from_ms` (which should be a UTC midnight); days without runs are absent. One grouped
    /// query over the `(user_id, queued_at)` index; at most one row per day of the window.
    pub async fn daily_usage(
        &self,
        user_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DayUsage>, StoreError> {
        // Integer division of a non-negative BIGINT truncates the same way on both backends;
        // CASTs keep PostgreSQL's SUM(bigint) (numeric) a 64-bit integer.
        const SQL: &str = "\
SELECT (queued_at - $2) / 86400000 AS day, COUNT(*) AS runs, \
       CAST(COALESCE(SUM(pages_done + pages_failed), 0) AS BIGINT) AS pages, \
       CAST(COALESCE(SUM(pages_failed), 0) AS BIGINT) AS pages_failed, \
       CAST(COALESCE(SUM(records), 0) AS BIGINT) AS records, \
       CAST(COALESCE(SUM(compute_units), 0) AS BIGINT) AS compute_units, \
       CAST(COALESCE(SUM(CASE WHEN state = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS succeeded, \
       CAST(COALESCE(SUM(CASE WHEN state IN ('failed', 'partial') THEN 1 ELSE 0 END), 0) AS BIGINT) \
           AS unsuccessful \
FROM runs WHERE user_id = $1 AND queued_at >= $2 AND queued_at < $3 \
GROUP BY 1 ORDER BY 1";
        with_pool!(&self.db, |pool| {
            let rows = sqlx::query(SQL)
                .bind(user_id)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(DayUsage {
                        day: row.uint("day")?,
                        runs: row.uint("runs")?,
                        pages: row.uint("pages")?,
                        pages_failed: row.uint("pages_failed")?,
                        records: row.uint("records")?,
                        compute_units: row.uint("compute_units")?,
                        succeeded: row.uint("succeeded")?,
                        unsuccessful: row.uint("unsuccessful")?,
                    })
                })
                .collect()
        })
    }

    /// The user's queued and running runs, from the queue's per-user counters (kept exact
    /// by triggers), so the dashboard does not count runs.
    pub async fn active_runs(&self, user_id: &str) -> Result<ActiveRuns, StoreError> {
        with_pool!(&self.db, |pool| {
            let row =
                sqlx::query("SELECT queued, running FROM user_queue_state WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await?;
            match row {
                None => Ok(ActiveRuns::default()),
                Some(row) => Ok(ActiveRuns {
                    queued: row.uint("queued")?,
                    running: row.uint("running")?,
                }),
            }
        })
    }

    /// The user's `limit` most recently queued runs, newest first, with their tasks' names.
    pub async fn recent_runs(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<RecentRun>, StoreError> {
        with_pool!(&self.db, |pool| {
            let rows = sqlx::query(
                "SELECT r.id, r.task_id, t.name AS task_name, r.state, r.queued_at, r.finished_at, \
                 r.pages_done + r.pages_failed AS pages, r.records, r.compute_units \
                 FROM runs r JOIN tasks t ON t.id = r.task_id \
                 WHERE r.user_id = $1 AND t.deleted_at IS NULL \
                 ORDER BY r.queued_at DESC, r.id DESC LIMIT $2",
            )
            .bind(user_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(RecentRun {
                        id: row.text("id")?,
                        task_id: row.text("task_id")?,
                        task_name: row.text("task_name")?,
                        state: row.text("state")?,
                        queued_at_ms: row.int("queued_at")?,
                        finished_at_ms: row.opt_int("finished_at")?,
                        pages: row.uint("pages")?,
                        records: row.uint("records")?,
                        compute_units: row.uint("compute_units")?,
                    })
                })
                .collect()
        })
    }
}
