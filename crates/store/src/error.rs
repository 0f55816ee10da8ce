//! The one error type of the store: what failed, so callers can tell "database down" from
//! "that e-mail is taken" from "a row holds bad JSON".

use thiserror::Error;

/// Every fallible store operation returns this. Lookups return `Ok(None)` for "not found",
/// so a missing row never looks like a database failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused or failed a statement, or could not be reached.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A uniqueness rule was broken (e-mail already registered, key public id reused, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A row that an operation needs does not exist (enqueueing a run for a missing task).
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller passed a value the store cannot accept (finishing a run as `queued`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The database URL names a backend this build does not support.
    #[error("unsupported database URL scheme: {0}")]
    UnsupportedScheme(String),
    /// sqlx's own migrator failed (tests that replay an old release's migrations with it).
    #[error("migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database's schema is older than this build's: pending migrations must be applied
    /// first.
    #[error(
        "the database schema is at version {database} and this selextract ({}, schema \
         {needed}) needs {needed}: back up the database, then run `selextract migrate` (or set \
         database.migrate_on_start = true)",
        env!("CARGO_PKG_VERSION")
    )]
    SchemaBehind { database: i64, needed: i64 },
    /// A newer build applied a contract migration: this build would use what it removed.
    #[error(
        "the database schema is at version {database}; migration {contract_version} \
         ({contract_description}) removed what this selextract (schema {known}) uses: run a \
         selextract that knows schema {database} or later"
    )]
    SchemaTooNew {
        database: i64,
        known: i64,
        contract_version: i64,
        contract_description: String,
    },
    /// The database's migration history does not match this build's (checksum mismatch,
    /// failed or foreign rows): nothing may run or migrate until an operator looks.
    #[error(
        "the database's migration history does not match this selextract (schema {known}): \
         {details}; run the selextract build that migrated this database, or restore the \
         backup taken before the migration"
    )]
    SchemaMismatch { known: i64, details: String },
    /// A migration failed; the transaction holding every pending migration was rolled back.
    #[error(
        "migration {version} ({description}) failed, so no migration was applied and the \
         database schema stays at version {database}: {source}"
    )]
    MigrationFailed {
        version: i64,
        description: String,
        database: i64,
        #[source]
        source: sqlx::Error,
    },
    /// A row holds a value that cannot be decoded (bad JSON, unknown run state).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the failure is about reaching the database at all (I/O, pool exhausted or
    /// closed, database busy for longer than the busy timeout) rather than about the
    /// statement; health checks report these as "database unavailable" and callers may retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(error) => is_connection_level(error),
            _ => false,
        }
    }
}

fn is_connection_level(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Configuration(_) => true,
        // SQLite reports a lock held past busy_timeout as SQLITE_BUSY (5) or SQLITE_LOCKED (6),
        // a disk failure as SQLITE_IOERR (10) and an unopenable file as SQLITE_CANTOPEN (14);
        // the low byte of an extended result code is its primary code.
        sqlx::Error::Database(db)
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
        {
            db.code()
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| matches!(code & 0xff, 5 | 6 | 10 | 14))
        }
        // PostgreSQL: class 08 is "connection exception"; 57P01–57P03 are a server shutting
        // down, crashed or still starting (a failover or restart); 53300 is "too many
        // connections". Each clears by itself, unlike an error in the statement.
        sqlx::Error::Database(db)
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some() =>
        {
            db.code().is_some_and(|code| {
                code.starts_with("08")
                    || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
            })
        }
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_nul_in_text(&error) {
            return StoreError::InvalidArgument(
                "a text value contains a NUL byte (U+0000), which the database cannot store"
                    .to_owned(),
            );
        }
        StoreError::Database(error)
    }
}

/// PostgreSQL refuses U+0000 in text (SQLSTATE 22021, "invalid byte sequence for encoding
/// UTF8: 0x00"): that is the caller's value, not a database failure.
fn is_nul_in_text(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => database.code().as_deref() == Some("22021"),
        _ => false,
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(error)
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] with `what` as message;
/// other errors pass through unchanged.
pub(crate) fn conflict_on_unique(error: sqlx::Error, what: &str) -> StoreError {
    let is_unique = error
        .as_database_error()
        .is_some_and(|db| db.is_unique_violation());
    if is_unique {
        StoreError::Conflict(what.to_owned())
    } else {
        StoreError::Database(error)
    }
}
