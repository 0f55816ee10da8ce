//! For the deletion suites: how many rows of each table name a user, found through the
//! catalog (every table with a `user_id` column, plus `users` itself), so a table added
//! later is counted without anyone remembering to list it.

use std::collections::BTreeMap;

use crate::db::{Db, RowExt, with_pool};
use crate::{Store, StoreError};

/// Table → rows naming `user_id` (the `users` row by its `id`). Tables without rows for the
/// user are present with 0.
pub async fn rows_naming_user(
    store: &Store,
    user_id: &str,
) -> Result<BTreeMap<String, u64>, StoreError> {
    let tables_sql = match &store.db {
        Db::Sqlite(_) => {
            "SELECT m.name AS t FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.name = 'user_id' ORDER BY m.name"
        }
        Db::Postgres(_) => {
            "SELECT table_name::TEXT AS t FROM information_schema.columns \
             WHERE column_name = 'user_id' AND table_schema = current_schema() \
             ORDER BY table_name"
        }
    };
    with_pool!(&store.db, |pool| {
        let tables = sqlx::query(tables_sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| row.text("t"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut counts = BTreeMap::new();
        for table in tables {
            // The table name comes from the catalog, not from input.
            let sql = format!("SELECT COUNT(*) AS n FROM \"{table}\" WHERE user_id = $1");
            let n = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .fetch_one(pool)
                .await?
                .uint("n")?;
            counts.insert(table, n);
        }
        let users = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(pool)
            .await?
            .uint("n")?;
        counts.insert("users".to_owned(), users);
        Ok(counts)
    })
}

/// Rows in `result_object_deletions`: deleted runs whose objects are still to be removed.
pub async fn queued_object_deletions(store: &Store) -> Result<Vec<String>, StoreError> {
    with_pool!(&store.db, |pool| {
        sqlx::query("SELECT run_id FROM result_object_deletions ORDER BY run_id")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| row.text("run_id"))
            .collect()
    })
}

/// Rows of the run's pages and logs still in the database.
pub async fn page_and_log_rows(store: &Store, run_id: &str) -> Result<(u64, u64), StoreError> {
    with_pool!(&store.db, |pool| {
        let pages = sqlx::query("SELECT COUNT(*) AS n FROM run_pages WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(pool)
            .await?
            .uint("n")?;
        let logs = sqlx::query("SELECT COUNT(*) AS n FROM run_logs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(pool)
            .await?
            .uint("n")?;
        Ok((pages, logs))
    })
}
