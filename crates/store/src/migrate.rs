//! The database schema's version and how it gets there: the embedded migrations, what the
//! database has applied (`_sqlx_migrations`), the verdict a starting process acts on, and
//! the runner that applies every pending migration in one transaction under a lock.
//!
//! Release 0.1.0 applied migrations with sqlx's `Migrator`. This runner keeps its
//! bookkeeping exactly (the same `_sqlx_migrations` table and rows, checksums computed by
//! sqlx's `Migration::new`, the same PostgreSQL advisory-lock key), so a database created by
//! 0.1.0 continues without a step. It differs in what matters for an upgrade: all pending
//! migrations commit together or not at all, concurrent migrators wait for each other and
//! re-read the state once they hold the lock, and a database newer than this binary is
//! judged by the expand/contract rule (a migration named `contract_…` removes what older
//! binaries use) instead of being refused outright.

use std::time::{Duration, Instant};

use sqlx::migrate::{Migration, MigrationType};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{PgPool, Postgres, Row, SqlSafeStr, Sqlite, SqlitePool, Transaction};

use crate::db::{Db, with_pool};
use crate::{Store, StoreError};

/// Embedded SQLite migrations, in order. `include_str!` embeds them without sqlx's `macros`
/// feature (which would compile a second, host-side copy of SQLite); checksums are the same
/// as the sqlx CLI computes. A test checks this list against the directory.
pub(crate) const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "user_queue_state",
        include_str!("../migrations/sqlite/0002_user_queue_state.sql"),
    ),
    (
        3,
        "partial_run_indexes",
        include_str!("../migrations/sqlite/0003_partial_run_indexes.sql"),
    ),
];

/// Embedded PostgreSQL migrations: the same file names (versions and descriptions) as the
/// SQLite ones, so both backends are at the same schema version after `migrate`.
pub(crate) const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "user_queue_state",
        include_str!("../migrations/postgres/0002_user_queue_state.sql"),
    ),
    (
        3,
        "partial_run_indexes",
        include_str!("../migrations/postgres/0003_partial_run_indexes.sql"),
    ),
];

/// The schema version this build needs and knows: its last embedded migration.
pub const SCHEMA_VERSION: i64 = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.len() - 1].0;

/// A migration whose description starts with this removes or changes what older binaries
/// use (the contract step of expand/contract); every other migration is additive.
pub const CONTRACT_PREFIX: &str = "contract_";

/// How long a SQLite migrator waits, in total, for another process's write transaction
/// (another migrator's, typically) before giving up. Longer than the connection's busy
/// timeout: a migration that rebuilds counters over a large table may take minutes.
const SQLITE_MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(600);

/// Where one migration stands between this build and the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    /// Applied, and its SQL is the embedded one.
    Applied,
    /// Embedded but not applied yet.
    Pending,
    /// Applied, but with SQL that differs from the embedded one (another build migrated).
    ChecksumMismatch,
    /// Recorded as failed (`success = false`): a migration that stopped half-way.
    Failed,
    /// Applied by a newer build: unknown to this one, with a higher version.
    UnknownNewer,
    /// Applied, unknown to this build, yet not newer than its schema: not from this
    /// project's history.
    UnknownOlder,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Applied => "applied",
            MigrationState::Pending => "pending",
            MigrationState::ChecksumMismatch => "checksum mismatch",
            MigrationState::Failed => "failed",
            MigrationState::UnknownNewer => "unknown (newer)",
            MigrationState::UnknownOlder => "unknown",
        }
    }
}

/// One migration: embedded, applied, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    /// When it was applied (UTC, `YYYY-MM-DD HH:MM:SS`); `None` when pending.
    pub installed_on: Option<String>,
    pub state: MigrationState,
}

impl MigrationStatus {
    /// A contract migration removes or changes what older binaries use.
    pub fn is_contract(&self) -> bool {
        self.description.starts_with(CONTRACT_PREFIX)
    }
}

/// What a process may do with the database, given what it has applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaVerdict {
    /// No migration applied yet: initialise it.
    Fresh,
    /// Exactly this build's schema.
    Current,
    /// Older than this build: pending migrations need applying first.
    Behind,
    /// Newer than this build, by expand migrations only: this build still works.
    AheadCompatible,
    /// Newer than this build, by a contract migration: this build must not run.
    AheadIncompatible,
    /// The history does not match this build's (checksum mismatch, failed or foreign rows,
    /// or a pending migration below a newer applied one).
    Mismatch,
}

impl SchemaVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaVerdict::Fresh => "fresh",
            SchemaVerdict::Current => "current",
            SchemaVerdict::Behind => "behind",
            SchemaVerdict::AheadCompatible => "ahead (compatible)",
            SchemaVerdict::AheadIncompatible => "ahead (incompatible)",
            SchemaVerdict::Mismatch => "mismatch",
        }
    }
}

/// The database's schema as this build sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The schema this build needs ([`SCHEMA_VERSION`]).
    pub known_version: i64,
    /// The highest migration the database has applied successfully; `None` when fresh.
    pub database_version: Option<i64>,
    /// Every embedded or applied migration, by version.
    pub migrations: Vec<MigrationStatus>,
    pub verdict: SchemaVerdict,
}

impl SchemaStatus {
    pub fn with_state(&self, state: MigrationState) -> impl Iterator<Item = &MigrationStatus> {
        self.migrations.iter().filter(move |m| m.state == state)
    }

    /// The error a process that needs this build's schema reports, with what to do; `None`
    /// when it can run (current, or ahead by expand migrations only). A fresh database is
    /// reported as behind: it needs `migrate` like any other.
    pub fn problem(&self) -> Option<StoreError> {
        let database = self.database_version.unwrap_or(0);
        let needed = self.known_version;
        match self.verdict {
            SchemaVerdict::Current | SchemaVerdict::AheadCompatible => None,
            SchemaVerdict::Fresh | SchemaVerdict::Behind => {
                Some(StoreError::SchemaBehind { database, needed })
            }
            SchemaVerdict::AheadIncompatible => {
                let contract = self
                    .with_state(MigrationState::UnknownNewer)
                    .find(|m| m.is_contract());
                Some(StoreError::SchemaTooNew {
                    database,
                    known: needed,
                    contract_version: contract.map_or(database, |m| m.version),
                    contract_description: contract
                        .map_or_else(String::new, |m| m.description.clone()),
                })
            }
            SchemaVerdict::Mismatch => Some(StoreError::SchemaMismatch {
                known: needed,
                details: self.mismatch_details(),
            }),
        }
    }

    fn mismatch_details(&self) -> String {
        let list = |state: MigrationState| -> Option<String> {
            let versions: Vec<String> = self
                .with_state(state)
                .map(|m| format!("{} ({})", m.version, m.description))
                .collect();
            (!versions.is_empty()).then(|| versions.join(", "))
        };
        let mut parts = Vec::new();
        if let Some(versions) = list(MigrationState::ChecksumMismatch) {
            parts.push(format!(
                "applied migration {versions} differs from this build's SQL (checksum mismatch)"
            ));
        }
        if let Some(versions) = list(MigrationState::Failed) {
            parts.push(format!("migration {versions} is recorded as failed"));
        }
        if let Some(versions) = list(MigrationState::UnknownOlder) {
            parts.push(format!("applied migration {versions} is not in this build"));
        }
        let newer = self.with_state(MigrationState::UnknownNewer).next();
        if let (Some(newer), Some(pending)) = (newer, list(MigrationState::Pending)) {
            parts.push(format!(
                "migration {pending} was never applied, yet newer migration {} ({}) was",
                newer.version, newer.description
            ));
        }
        parts.join("; ")
    }
}

/// What [`Store::migrate`] or [`Store::migrate_dry_run`] did (or would have done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema as found once the lock was held, before applying anything.
    pub before: SchemaStatus,
    /// The migrations applied (rolled back again by a dry run), in order, with the time
    /// each took.
    pub applied: Vec<(i64, String, Duration)>,
    /// The schema version afterwards (the version a dry run would have reached).
    pub version: Option<i64>,
    /// True for a dry run: nothing was committed.
    pub dry_run: bool,
}

impl Store {
    /// Reads the database's migration history and judges it against this build's schema.
    /// Changes nothing.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let embedded = embedded_migrations(&self.db);
        let applied = with_pool!(&self.db, |pool| {
            let mut conn = pool.acquire().await?;
            conn.read_applied_migrations().await?
        });
        Ok(judge(applied, &embedded))
    }

    /// What a starting process (`serve`, `worker`, operator commands) does with the schema:
    /// initialises a fresh database, applies pending migrations when `migrate_if_behind`,
    /// goes on (with a warning in the log) when the database is ahead by expand migrations
    /// only, and otherwise fails with [`StoreError::SchemaBehind`],
    /// [`StoreError::SchemaTooNew`] or [`StoreError::SchemaMismatch`], whose messages say
    /// what to do. Returns the schema as the process will use it.
    pub async fn check_schema_at_start(
        &self,
        migrate_if_behind: bool,
    ) -> Result<SchemaStatus, StoreError> {
        let status = self.schema_status().await?;
        let migrate = match status.verdict {
            SchemaVerdict::Fresh => true,
            SchemaVerdict::Behind => migrate_if_behind,
            _ => false,
        };
        if migrate {
            let report = self.migrate().await?;
            for (version, description, took) in &report.applied {
                tracing::info!(version, description, ?took, "applied migration");
            }
            return self.schema_status().await;
        }
        if let Some(problem) = status.problem() {
            return Err(problem);
        }
        if status.verdict == SchemaVerdict::AheadCompatible {
            tracing::warn!(
                database = status.database_version,
                known = status.known_version,
                "the database schema is newer than this selextract's; its migrations are all \
                 additive (expand), so this process runs, but upgrade it soon"
            );
        }
        Ok(status)
    }

    /// Applies every pending migration in one transaction: all of them or, when one fails,
    /// none (the database stays at its version). The transaction holds a lock (PostgreSQL:
    /// an advisory lock, the one sqlx's migrator takes; SQLite: the write lock, `BEGIN
    /// IMMEDIATE`) and reads the history only once it holds it, so concurrent migrators run
    /// one after the other and the later ones find nothing to do. Refuses a database whose
    /// history does not match this build's or that a contract migration took past it.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.run_migrations(false).await
    }

    /// Applies the pending migrations as [`Store::migrate`] does, then rolls everything
    /// back: reports what would be applied, and fails where a migration would fail.
    pub async fn migrate_dry_run(&self) -> Result<MigrationReport, StoreError> {
        self.run_migrations(true).await
    }

    async fn run_migrations(&self, dry_run: bool) -> Result<MigrationReport, StoreError> {
        let embedded = embedded_migrations(&self.db);
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin_migration().await?;
            let before = judge(tx.read_applied_migrations().await?, &embedded);
            match before.verdict {
                SchemaVerdict::Fresh | SchemaVerdict::Behind => {}
                SchemaVerdict::Current | SchemaVerdict::AheadCompatible => {
                    tx.rollback().await?;
                    let version = before.database_version;
                    return Ok(MigrationReport {
                        before,
                        applied: Vec::new(),
                        version,
                        dry_run,
                    });
                }
                SchemaVerdict::AheadIncompatible | SchemaVerdict::Mismatch => {
                    tx.rollback().await?;
                    return Err(before.problem().unwrap_or(StoreError::SchemaMismatch {
                        known: SCHEMA_VERSION,
                        details: String::new(),
                    }));
                }
            }
            tx.create_migrations_table().await?;
            let mut applied = Vec::new();
            let mut version = before.database_version;
            for migration in &embedded {
                let pending = before
                    .migrations
                    .iter()
                    .any(|m| m.version == migration.version && m.state == MigrationState::Pending);
                if !pending {
                    continue;
                }
                let took = tx.apply_migration(migration).await.map_err(|source| {
                    StoreError::MigrationFailed {
                        version: migration.version,
                        description: migration.description.to_string(),
                        database: before.database_version.unwrap_or(0),
                        source,
                    }
                })?;
                applied.push((migration.version, migration.description.to_string(), took));
                version = Some(migration.version);
            }
            if dry_run {
                tx.rollback().await?;
            } else {
                tx.commit().await?;
            }
            Ok(MigrationReport {
                before,
                applied,
                version,
                dry_run,
            })
        })
    }
}

/// The embedded migrations of the store's backend, with sqlx's checksums.
fn embedded_migrations(db: &Db) -> Vec<Migration> {
    let list = match db {
        Db::Sqlite(_) => SQLITE_MIGRATIONS,
        Db::Postgres(_) => POSTGRES_MIGRATIONS,
    };
    list.iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect()
}

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone)]
struct AppliedRow {
    version: i64,
    description: String,
    installed_on: String,
    success: bool,
    checksum: Vec<u8>,
}

/// Judges the database's history (`None`: no `_sqlx_migrations` table) against the
/// embedded migrations. Pure, so that every verdict is easy to test.
fn judge(applied: Option<Vec<AppliedRow>>, embedded: &[Migration]) -> SchemaStatus {
    let applied = applied.unwrap_or_default();
    let known_version = embedded.last().map_or(0, |m| m.version);
    let mut migrations = Vec::new();
    for migration in embedded {
        let row = applied.iter().find(|row| row.version == migration.version);
        let state = match row {
            None => MigrationState::Pending,
            Some(row) if !row.success => MigrationState::Failed,
            Some(row) if row.checksum != *migration.checksum => MigrationState::ChecksumMismatch,
            Some(_) => MigrationState::Applied,
        };
        migrations.push(MigrationStatus {
            version: migration.version,
            description: migration.description.to_string(),
            installed_on: row.map(|row| row.installed_on.clone()),
            state,
        });
    }
    for row in &applied {
        if embedded.iter().any(|m| m.version == row.version) {
            continue;
        }
        let state = if !row.success {
            MigrationState::Failed
        } else if row.version > known_version {
            MigrationState::UnknownNewer
        } else {
            MigrationState::UnknownOlder
        };
        migrations.push(MigrationStatus {
            version: row.version,
            description: row.description.clone(),
            installed_on: Some(row.installed_on.clone()),
            state,
        });
    }
    migrations.sort_by_key(|m| m.version);
    let database_version = applied
        .iter()
        .filter(|row| row.success)
        .map(|row| row.version)
        .max();
    let has = |state: MigrationState| migrations.iter().any(|m| m.state == state);
    let verdict = if applied.is_empty() {
        SchemaVerdict::Fresh
    } else if has(MigrationState::ChecksumMismatch)
        || has(MigrationState::Failed)
        || has(MigrationState::UnknownOlder)
        || (has(MigrationState::UnknownNewer) && has(MigrationState::Pending))
    {
        SchemaVerdict::Mismatch
    } else if has(MigrationState::UnknownNewer) {
        let contract = migrations
            .iter()
            .any(|m| m.state == MigrationState::UnknownNewer && m.is_contract());
        if contract {
            SchemaVerdict::AheadIncompatible
        } else {
            SchemaVerdict::AheadCompatible
        }
    } else if has(MigrationState::Pending) {
        SchemaVerdict::Behind
    } else {
        SchemaVerdict::Current
    };
    SchemaStatus {
        known_version,
        database_version,
        migrations,
        verdict,
    }
}

/// Begins the migration transaction, holding the lock that serialises migrators.
trait MigrationLock {
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
fn sqlx_lock_id(database: &str) -> i64 {
    0x3d32_ad9e * i64::from(crc32_ieee(database.as_bytes()))
}

fn crc32_ieee(bytes: &[u8]) -> u32 {
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
trait MigrationHistory {
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

#[cfg(test)]
#[path = "migrate/tests.rs"]
mod tests;
