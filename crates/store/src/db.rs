//! Which database the store talks to: connecting by URL scheme, and the small
//! helpers (row reading, write transactions) that each backend implements once so that the
//! repository modules can share their SQL.
//!
//! Both backends are typed end to end (no `sqlx::Any`): [`with_pool!`] compiles each
//! repository body once per backend, and `dialect.rs` holds the few statements that differ.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Postgres, Row, Sqlite, Transaction};

use crate::StoreError;

/// The connection pool of the configured backend.
#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool. The body is written once and
/// compiled once per backend, so shared statements stay shared while each arm is fully
/// typed (no `sqlx::Any`).
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The store: a cheap-to-clone handle on a connection pool. Every method is one atomic unit
/// of work, safe to call from many tasks and many processes at once.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.db {
            Db::Sqlite(_) => f.write_str("Store(sqlite)"),
            Db::Postgres(_) => f.write_str("Store(postgres)"),
        }
    }
}

/// SQLite waits this long for another connection's or process's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite has one writer at a time; a few connections serve concurrent readers in WAL mode.
const SQLITE_POOL_SIZE: u32 = 6;

/// How long a PostgreSQL statement waits for a pooled connection before failing as
/// unavailable: short, so that during an outage the API answers 503 quickly and workers
/// retry on their own schedule instead of piling up waiters.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections per process. API and worker processes share one pool each; the database's
/// `max_connections` (100 by default) bounds processes × this.
const POSTGRES_POOL_SIZE: u32 = 10;
/// A pooled PostgreSQL connection idle this long is pinged before it is handed out.
const POSTGRES_PING_IDLE_AFTER: Duration = Duration::from_secs(1);

impl Store {
    /// Connects to the database named by `database_url`: `postgres://…` (or
    /// `postgresql://…`), `sqlite://path`, `sqlite:path`, `sqlite::memory:` or a bare file
    /// path. Creates the SQLite file and its directory when missing. Any other scheme is
    /// [`StoreError::UnsupportedScheme`].
    pub async fn connect(database_url: &str) -> Result<Store, StoreError> {
        match url_scheme(database_url) {
            None => connect_sqlite(SqliteConnectOptions::new().filename(database_url), false).await,
            Some("sqlite") => {
                let options = SqliteConnectOptions::from_str(database_url)?;
                let in_memory =
                    database_url.contains(":memory:") || database_url.contains("mode=memory");
                connect_sqlite(options, in_memory).await
            }
            Some(scheme)
                if scheme.eq_ignore_ascii_case("postgres")
                    || scheme.eq_ignore_ascii_case("postgresql") =>
            {
                let options = PgConnectOptions::from_str(database_url)?;
                Store::connect_postgres(options, POSTGRES_POOL_SIZE).await
            }
            Some(scheme) => Err(StoreError::UnsupportedScheme(scheme.to_owned())),
        }
    }

    /// Connects to PostgreSQL with explicit options (tests use them to pin a schema through
    /// `search_path`) and at most `max_connections` pooled connections. The pool pings a
    /// connection that has sat idle for [`POSTGRES_PING_IDLE_AFTER`] or longer before handing
    /// it out (and sqlx pings every connection as it comes back), so connections broken by a
    /// database restart or a network cut are replaced instead of failing a statement; a busy
    /// connection is handed out without the extra round trip, which was a third of a queue
    /// claim's time. It waits at most a few seconds for a connection, so an outage surfaces
    /// as [`StoreError::is_unavailable`] promptly. Connecting does not fail when the database
    /// is down; the first statement does.
    pub async fn connect_postgres(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Store, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= POSTGRES_PING_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        Ok(Store {
            db: Db::Postgres(pool),
        })
    }

    /// The backend's name: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool: waits for checked-out connections to come back and closes them all.
    /// Later calls fail as unavailable.
    pub async fn close(&self) {
        with_pool!(&self.db, |pool| pool.close().await)
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }
}

async fn connect_sqlite(
    options: SqliteConnectOptions,
    in_memory: bool,
) -> Result<Store, StoreError> {
    let options = options
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let pool = if in_memory {
        // An in-memory database lives as long as its last connection and is private to this
        // process: keep exactly one connection open for the life of the pool.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?
    } else {
        create_parent_directory(options.get_filename()).await?;
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        SqlitePoolOptions::new()
            .max_connections(SQLITE_POOL_SIZE)
            .connect_with(options)
            .await?
    };
    Ok(Store {
        db: Db::Sqlite(pool),
    })
}

async fn create_parent_directory(file: &Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => tokio::fs::create_dir_all(parent)
            .await
            .map_err(|error| StoreError::Database(sqlx::Error::Io(error))),
        _ => Ok(()),
    }
}

/// The scheme of a URL (`sqlite` in `sqlite://x`), or `None` for a bare path. A one-letter
/// "scheme" is a Windows drive letter, hence a path.
fn url_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first_is_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_is_scheme = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (scheme.len() > 1 && first_is_letter && rest_is_scheme).then_some(scheme)
}

/// Begins a transaction that holds the write lock from its first statement, for
/// read-modify-write sequences. On SQLite a deferred transaction that reads and then writes
/// fails with SQLITE_BUSY (no waiting) when another process wrote in between; `BEGIN
/// IMMEDIATE` waits for the lock up front instead.
pub(crate) trait WritePool {
    type Database: sqlx::Database;
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Database>, StoreError>;
}

impl WritePool for SqlitePool {
    type Database = Sqlite;

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// PostgreSQL has row locks: a plain transaction, with the rows a sequence reads and then
/// changes locked by the dialect's `… FOR UPDATE` statements.
impl WritePool for PgPool {
    type Database = Postgres;

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.begin().await?)
    }
}

/// Reads typed columns by name, the same way on every backend. Integers are 64-bit
/// everywhere (BIGINT on PostgreSQL); booleans are stored as 0/1 integers.
pub(crate) trait RowExt {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;

    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.int(column)? != 0)
    }

    fn uint<T: TryFrom<i64>>(&self, column: &str) -> Result<T, StoreError> {
        let value = self.int(column)?;
        T::try_from(value).map_err(|_| {
            StoreError::Corrupt(format!("column {column} holds {value}, out of range"))
        })
    }

    fn opt_uint<T: TryFrom<i64>>(&self, column: &str) -> Result<Option<T>, StoreError> {
        match self.opt_int(column)? {
            None => Ok(None),
            Some(value) => T::try_from(value).map(Some).map_err(|_| {
                StoreError::Corrupt(format!("column {column} holds {value}, out of range"))
            }),
        }
    }

    fn json(&self, column: &str) -> Result<serde_json::Value, StoreError> {
        let text = self.text(column)?;
        serde_json::from_str(&text)
            .map_err(|error| StoreError::Corrupt(format!("column {column} is not JSON: {error}")))
    }

    fn parsed<T: FromStr>(&self, column: &str) -> Result<T, StoreError> {
        let text = self.text(column)?;
        text.parse().map_err(|_| {
            StoreError::Corrupt(format!("column {column} holds unknown value {text:?}"))
        })
    }
}

/// Both backends' rows read columns the same way; only the row type differs.
macro_rules! impl_row_ext {
    ($($row:ty),*) => {$(
        impl RowExt for $row {
            fn text(&self, column: &str) -> Result<String, StoreError> {
                Ok(self.try_get(column)?)
            }

            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get(column)?)
            }

            fn int(&self, column: &str) -> Result<i64, StoreError> {
                Ok(self.try_get(column)?)
            }

            fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get(column)?)
            }
        }
    )*};
}

impl_row_ext!(SqliteRow, PgRow);

/// Makes `%`, `_` and `\` in user text match themselves in a LIKE pattern (used with
/// `ESCAPE '\'`), so a search for `50%` finds that text and not everything.
pub(crate) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Now, in unix milliseconds, for timestamps the caller does not pass in.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A new id: UUID v7, so ids sort by creation time (and, within one process, by creation
/// order), which makes `id` a meaningful last tie-breaker.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Counters are u64 in Rust and signed 64-bit in SQL; values past i64::MAX cannot occur in
/// practice, so saturate instead of failing.
pub(crate) fn to_sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_tells_urls_from_paths() {
        assert_eq!(url_scheme("sqlite://data/x.db"), Some("sqlite"));
        assert_eq!(url_scheme("sqlite::memory:"), Some("sqlite"));
        assert_eq!(url_scheme("postgres://u@h/db"), Some("postgres"));
        assert_eq!(url_scheme("./data/selextract.db"), None);
        assert_eq!(url_scheme("C:\\data\\x.db"), None);
    }
}
