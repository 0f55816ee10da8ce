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

use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType};

use crate::db::{Db, with_pool};

mod history;
mod status;

use crate::{Store, StoreError};
use history::{MigrationHistory, MigrationLock};
use status::judge;
pub use status::{MigrationReport, MigrationState, MigrationStatus, SchemaStatus, SchemaVerdict};

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
    (
        4,
        "accounts",
        include_str!("../migrations/sqlite/0004_accounts.sql"),
    ),
    (
        5,
        "monitors",
        include_str!("../migrations/sqlite/0005_monitors.sql"),
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
    (
        4,
        "accounts",
        include_str!("../migrations/postgres/0004_accounts.sql"),
    ),
    (
        5,
        "monitors",
        include_str!("../migrations/postgres/0005_monitors.sql"),
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

#[cfg(test)]
#[path = "migrate/tests.rs"]
mod tests;
