//! Run logs: appended by workers in batches, read back in order a page at a time by the
//! run's owner (an [`OwnedRun`] from `find_run`).

use crate::db::{RowExt, WritePool, with_pool};
use crate::{LogLine, OwnedRun, Page, Paged, Store, StoreError};

/// The columns of `run_logs` this module reads: named instead of `*` so that a column added by a
/// later expand migration never changes a running process's cached statements (see
/// `runs::run_columns`).
macro_rules! run_logs_columns {
    () => {
        "ts, level, message, fields"
    };
}

impl Store {
    /// Appends lines to the run's log, all or none.
    pub async fn append_run_logs(&self, run_id: &str, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            for line in lines {
                sqlx::query(
                    "INSERT INTO run_logs (run_id, ts, level, message, fields) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(run_id)
                .bind(line.ts_ms)
                .bind(&line.level)
                .bind(&line.message)
                .bind(line.fields.to_string())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// One page of the run's log, oldest line first.
    pub async fn list_run_logs(
        &self,
        run: &OwnedRun,
        page: Page,
    ) -> Result<Paged<LogLine>, StoreError> {
        let run_id = run.id.as_str();
        with_pool!(&self.db, |pool| {
            let total_count = sqlx::query("SELECT COUNT(*) AS n FROM run_logs WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(pool)
                .await?
                .uint("n")?;
            let items = sqlx::query(concat!(
                "SELECT ",
                run_logs_columns!(),
                " FROM run_logs WHERE run_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
            ))
            .bind(run_id)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(pool)
            .await?
            .iter()
            .map(log_line_from_row)
            .collect::<Result<_, _>>()?;
            Ok(Paged { items, total_count })
        })
    }
}

fn log_line_from_row(row: &impl RowExt) -> Result<LogLine, StoreError> {
    Ok(LogLine {
        ts_ms: row.int("ts")?,
        level: row.text("level")?,
        message: row.text("message")?,
        fields: row.json("fields")?,
    })
}
