//! Where the database's schema stands against this build: one state per migration and the
//! verdict a starting process acts on, judged from `_sqlx_migrations` by a pure function.

use std::time::Duration;

use sqlx::migrate::Migration;

use super::CONTRACT_PREFIX;
use crate::StoreError;

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

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone)]
pub(crate) struct AppliedRow {
    pub(crate) version: i64,
    pub(crate) description: String,
    pub(crate) installed_on: String,
    pub(crate) success: bool,
    pub(crate) checksum: Vec<u8>,
}

/// Judges the database's history (`None`: no `_sqlx_migrations` table) against the
/// embedded migrations. Pure, so that every verdict is easy to test.
pub(super) fn judge(applied: Option<Vec<AppliedRow>>, embedded: &[Migration]) -> SchemaStatus {
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
