//! Test support (feature `test-support`, dev-only): a fresh, migrated database per test on
//! either backend, so that the store's, the worker's and the server's suites run every test
//! against SQLite and PostgreSQL.
//!
//! PostgreSQL tests share one server and database and isolate themselves in a schema of
//! their own (`t_<uuid>`, through `search_path`), so they run in parallel; the schema is
//! dropped when the [`TestDatabase`] is. The server comes from
//! `SELEXTRACT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! and a test fails, never skips, when it cannot be reached.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::{Store, StoreError};

mod account_tokens;
mod backends;
mod deletion;
mod owned;
mod upgrade;
mod usage;
pub use account_tokens::*;
pub use backends::{BackendTest, current_backend, run_on_backend};
pub use deletion::*;
pub use owned::*;
pub use upgrade::*;
pub use usage::*;

/// The environment variable naming the PostgreSQL server for tests.
pub const TEST_POSTGRES_URL_VAR: &str = "SELEXTRACT_TEST_POSTGRES_URL";
const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Pooled connections per test store: tests run in parallel against one server whose
/// `max_connections` is 100 by default.
const TEST_POOL_SIZE: u32 = 4;

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use.
pub fn test_postgres_url() -> String {
    std::env::var(TEST_POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned())
}

/// A test's own database. `url` connects more stores (other "processes") to it; dropping
/// this deletes it (the SQLite temp dir, or the PostgreSQL schema, best-effort).
#[derive(Debug)]
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    /// The SQLite file; `None` on PostgreSQL.
    pub sqlite_path: Option<PathBuf>,
    /// The PostgreSQL schema; `None` on SQLite.
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Creates an empty database for one test: a new SQLite file (in a directory that does
    /// not exist yet), or a new PostgreSQL schema. Panics with a clear message when
    /// PostgreSQL cannot be reached: these are test fixtures.
    #[allow(clippy::expect_used)]
    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temp dir");
                let path = dir.path().join("data").join("selextract.db");
                TestDatabase {
                    backend,
                    url: format!("sqlite://{}", path.display()),
                    sqlite_path: Some(path),
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let server = test_postgres_url();
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(&server).await.unwrap_or_else(|error| {
                    panic!(
                        "PostgreSQL for tests is not reachable at {server} ({error}); start it or \
                         set {TEST_POSTGRES_URL_VAR}"
                    )
                });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut admin)
                    .await
                    .expect("creating the test schema");
                let _ = admin.close().await;
                let separator = if server.contains('?') { '&' } else { '?' };
                TestDatabase {
                    backend,
                    url: format!("{server}{separator}options=-c%20search_path%3D{schema}"),
                    sqlite_path: None,
                    schema: Some(schema),
                    _dir: None,
                }
            }
        }
    }

    /// The PostgreSQL server's address (for a proxy in front of it); `None` on SQLite or
    /// when the host does not resolve.
    pub fn postgres_addr(&self) -> Option<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        if self.backend != Backend::Postgres {
            return None;
        }
        let options = PgConnectOptions::from_str(&self.url).ok()?;
        (options.get_host(), options.get_port())
            .to_socket_addrs()
            .ok()?
            .next()
    }

    /// A new store on this database (not migrated).
    pub async fn connect(&self) -> Result<Store, StoreError> {
        self.connect_through(None).await
    }

    /// A new store on this database whose PostgreSQL connections go to `addr` (a proxy in
    /// front of the server) instead of the server itself; on SQLite the same as `connect`.
    pub async fn connect_through(
        &self,
        addr: Option<std::net::SocketAddr>,
    ) -> Result<Store, StoreError> {
        match (self.backend, addr) {
            (Backend::Postgres, addr) => {
                let mut options = PgConnectOptions::from_str(&self.url)?;
                if let Some(addr) = addr {
                    options = options.host(&addr.ip().to_string()).port(addr.port());
                }
                Store::connect_postgres(options, TEST_POOL_SIZE).await
            }
            (Backend::Sqlite, _) => Store::connect(&self.url).await,
        }
    }

    /// A new, migrated store on this database.
    #[allow(clippy::expect_used)]
    pub async fn migrated_store(&self) -> Store {
        let store = self.connect().await.expect("connecting the test store");
        store.migrate().await.expect("migrating the test store");
        store
    }
}

/// A fresh, migrated store for one test, with the database that keeps it alive.
pub async fn test_store(backend: Backend) -> (Store, TestDatabase) {
    let db = TestDatabase::create(backend).await;
    let store = db.migrated_store().await;
    (store, db)
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own drops the schema, and is waited for so that the test process
        // does not exit before it is done. Failure only leaves a schema behind.
        let server = test_postgres_url();
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(mut admin) = PgConnection::connect(&server).await else {
                    return;
                };
                let sql =
                    format!("SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE");
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin),
                )
                .await;
                let _ = admin.close().await;
            });
        });
        let _ = dropper.join();
    }
}

/// The users whose queue counters (`user_queue_state`: running, queued, cap, disabled, head
/// run) differ from what `runs` and `users` say, each as a line showing both; empty when
/// every counter is exact.
pub async fn queue_state_mismatches(store: &Store) -> Result<Vec<String>, StoreError> {
    use crate::db::{RowExt, with_pool};
    // Every user is compared, including users without a counter row (LEFT JOIN), and the
    // head is the user's best queued run in the claim's order.
    const SQL: &str = "\
SELECT u.id AS user_id, \
       CAST(COALESCE(s.running, -1) AS BIGINT) AS s_running, \
       CAST(COALESCE(s.queued, -1) AS BIGINT) AS s_queued, \
       CAST(COALESCE(s.max_running, -1) AS BIGINT) AS s_max, \
       CAST(COALESCE(s.disabled, -1) AS BIGINT) AS s_disabled, \
       COALESCE(s.head_id, '') AS s_head, \
       (SELECT COUNT(*) FROM runs r WHERE r.user_id = u.id AND r.state = 'running') AS running, \
       (SELECT COUNT(*) FROM runs r WHERE r.user_id = u.id AND r.state = 'queued') AS queued, \
       u.max_concurrent_runs AS max_running, u.disabled AS disabled, \
       COALESCE((SELECT h.id FROM runs h WHERE h.user_id = u.id AND h.state = 'queued' \
                 ORDER BY h.priority DESC, h.queued_at, h.id LIMIT 1), '') AS head \
FROM users u LEFT JOIN user_queue_state s ON s.user_id = u.id \
ORDER BY u.id";
    with_pool!(&store.db, |pool| {
        let rows = sqlx::query(SQL).fetch_all(pool).await?;
        let mut mismatches = Vec::new();
        for row in &rows {
            let counters = (
                row.int("s_running")?,
                row.int("s_queued")?,
                row.int("s_max")?,
                row.int("s_disabled")?,
                row.text("s_head")?,
            );
            let real = (
                row.int("running")?,
                row.int("queued")?,
                row.int("max_running")?,
                row.int("disabled")?,
                row.text("head")?,
            );
            if counters != real {
                mismatches.push(format!(
                    "user {}: counters {counters:?}, real {real:?}",
                    row.text("user_id")?
                ));
            }
        }
        Ok(mismatches)
    })
}
