//! The per-backend parts of migrating: the lock that serialises migrators and the
//! statements on `_sqlx_migrations` (the table sqlx's migrator creates, column for column).

use std::time::{Duration, Instant};

use sqlx::migrate::Migration;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{PgPool, Postgres, Row, Sqlite, SqlitePool, Transaction};

use super::SQLITE_MIGRATION_LOCK_WAIT;
use super::status::AppliedRow;
use crate::StoreError;

/// Begins the migration transaction, holding the lock that serialises migrators.
pub(super) trait MigrationLock {
    type Database: sqlx::Database;
    async fn begin_migration(&self) -> Result<Transaction<'static, Self::Database>, StoreError>;
}

impl MigrationLock for SqlitePool {
    type Database = Sqlite;

    /// `BEGIN IMMEDIATE` takes the write lock up front. Another migrator holds it for as
    /// long as its migrations take, which may outlast the connection's busy timeout: keep
    /// asking until [`SQLITE_MIGRATION_LOCK_WAIT`] has passed.
    async fn begin_migration(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        let started = Instant::now();
        loop {
            match self.begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => return Ok(tx),
                // Each attempt has waited the busy timeout already, so the loop is paced.
                Err(error)
                    if is_sqlite_busy(&error) && started.elapsed() < SQLITE_MIGRATION_LOCK_WAIT =>
                {
                    tracing::info!(%error, "waiting for another process's migration");
                }
                Err(error) => return Err(StoreError::Database(error)),
            }
        }
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6): another connection holds the lock; the low byte of
/// an extended result code is its primary code.
fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .and_then(|code| code.parse::<i64>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

impl MigrationLock for PgPool {
    type Database = Postgres;

    /// A transaction-scoped advisory lock on the key sqlx's migrator uses (derived from the
    /// database name), so that this runner and release 0.1.0's wait for each other too. It
    /// is released with the transaction, whatever happens to the process.
    async fn begin_migration(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.begin().await?;
        let database: String = sqlx::query("SELECT current_database()")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(sqlx_lock_id(&database))
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// sqlx's migration lock key for a database: CRC-32 (IEEE) of its name times 0x3d32ad9e.
pub(super) fn sqlx_lock_id(database: &str) -> i64 {
    0x3d32_ad9e * i64::from(crc32_ieee(database.as_bytes()))
}

pub(super) fn crc32_ieee(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The statements on `_sqlx_migrations` that differ between backends. The table is the one
/// sqlx's migrator creates, column for column.
struct HistoryStatements {
    table_exists: &'static str,
    create_table: &'static str,
    select_rows: &'static str,
}

const SQLITE_HISTORY: HistoryStatements = HistoryStatements {
    table_exists: "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    create_table: "\
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)",
    select_rows: "SELECT version, description, CAST(installed_on AS TEXT) AS installed_on, \
                  success, checksum FROM _sqlx_migrations ORDER BY version",
};

/// `to_regclass` resolves the name through `search_path`, as the statements that use the
/// table do.
const POSTGRES_HISTORY: HistoryStatements = HistoryStatements {
    table_exists: "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT to_regclass('_sqlx_migrations') AS t) x \
                   WHERE t IS NOT NULL",
    create_table: "\
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
)",
    select_rows: "SELECT version, description, \
                  to_char(installed_on AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS installed_on, \
                  success, checksum FROM _sqlx_migrations ORDER BY version",
};

/// The history operations on one connection, written once for both backends.
pub(super) trait MigrationHistory {
    /// The rows of `_sqlx_migrations`, or `None` when the table does not exist.
    async fn read_applied_migrations(&mut self) -> Result<Option<Vec<AppliedRow>>, StoreError>;
    async fn create_migrations_table(&mut self) -> Result<(), StoreError>;
    /// Runs the migration's SQL and records it as sqlx does (`success` true, sqlx's
    /// checksum, the execution time in nanoseconds). Returns how long it took.
    async fn apply_migration(&mut self, migration: &Migration) -> Result<Duration, sqlx::Error>;
}

macro_rules! impl_migration_history {
    ($($conn:ty => $sql:expr),*) => {$(
        impl MigrationHistory for $conn {
            async fn read_applied_migrations(
                &mut self,
            ) -> Result<Option<Vec<AppliedRow>>, StoreError> {
                let tables: i64 = sqlx::query($sql.table_exists)
                    .fetch_one(&mut *self)
                    .await?
                    .try_get(0)?;
                if tables == 0 {
                    return Ok(None);
                }
                let rows = sqlx::query($sql.select_rows).fetch_all(&mut *self).await?;
                let mut applied = Vec::with_capacity(rows.len());
                for row in &rows {
                    applied.push(AppliedRow {
                        version: row.try_get("version")?,
                        description: row.try_get("description")?,
                        installed_on: row.try_get("installed_on")?,
                        success: row.try_get("success")?,
                        checksum: row.try_get("checksum")?,
                    });
                }
                Ok(Some(applied))
            }

            async fn create_migrations_table(&mut self) -> Result<(), StoreError> {
                sqlx::query($sql.create_table).execute(&mut *self).await?;
                Ok(())
            }

            async fn apply_migration(
                &mut self,
                migration: &Migration,
            ) -> Result<Duration, sqlx::Error> {
                let started = Instant::now();
                sqlx::raw_sql(migration.sql.clone()).execute(&mut *self).await?;
                let took = started.elapsed();
                sqlx::query(
                    "INSERT INTO _sqlx_migrations \
                     (version, description, success, checksum, execution_time) \
                     VALUES ($1, $2, TRUE, $3, $4)",
                )
                .bind(migration.version)
                .bind(&*migration.description)
                .bind(&*migration.checksum)
                .bind(i64::try_from(took.as_nanos()).unwrap_or(i64::MAX))
                .execute(&mut *self)
                .await?;
                Ok(took)
            }
        }
    )*};
}

impl_migration_history!(SqliteConnection => SQLITE_HISTORY, PgConnection => POSTGRES_HISTORY);
