//! Databases at an older schema, for the upgrade, rolling-upgrade and rollback suites: a
//! schema built by replaying the first migrations the way release 0.1.0 applied them
//! (sqlx's `Migrator`, one `_sqlx_migrations` row per migration with sqlx's checksum), SQL
//! scripts (fixtures) run against it, and a snapshot of what the data says (counts, run
//! states, balances, charges) to compare before and after an upgrade or a restore.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, Executor, SqlSafeStr};

use super::{Backend, TestDatabase};
use crate::db::{RowExt, with_pool};
use crate::{Store, StoreError};

/// The migrations directory of `backend` in this crate's source tree.
pub fn migrations_dir(backend: Backend) -> PathBuf {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(name)
}

/// The migrations of `backend` up to and including `version`, read from the migration files
/// (`NNNN_description.sql`): the same versions, descriptions (underscores kept, as the
/// binary's embedded list has them) and SQL (hence checksums) that the binary embeds.
#[allow(clippy::expect_used)]
pub fn migrations_up_to(backend: Backend, version: i64) -> Vec<Migration> {
    let dir = migrations_dir(backend);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    let mut migrations = Vec::new();
    for path in files {
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("a UTF-8 migration file name");
        let (number, description) = name
            .split_once('_')
            .unwrap_or_else(|| panic!("migration file {name} is not NNNN_description.sql"));
        let number: i64 = number
            .parse()
            .unwrap_or_else(|_| panic!("migration file {name} does not start with a number"));
        if number > version {
            continue;
        }
        let sql = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
        migrations.push(Migration::new(
            number,
            description.to_owned().into(),
            MigrationType::Simple,
            AssertSqlSafe(sql).into_sql_str(),
            false,
        ));
    }
    assert!(
        version == i64::MAX
            || migrations
                .last()
                .is_some_and(|last| last.version == version),
        "no migration {version} in {}",
        dir.display()
    );
    migrations
}

impl TestDatabase {
    /// A store on this (empty) database with migrations 1..=`version` applied exactly as
    /// release 0.1.0 applied them: sqlx's `Migrator` over those migrations.
    #[allow(clippy::expect_used)]
    pub async fn store_at_schema(&self, version: i64) -> Store {
        let store = self.connect().await.expect("connecting the test store");
        let migrator = Migrator::with_migrations(migrations_up_to(self.backend, version));
        with_pool!(&store.db, |pool| migrator.run(pool).await)
            .unwrap_or_else(|error| panic!("applying migrations 1..={version}: {error}"));
        store
    }
}

/// Runs `sql` (any number of statements) as one script, outside a transaction.
pub async fn run_script(store: &Store, sql: &str) -> Result<(), StoreError> {
    with_pool!(&store.db, |pool| {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(pool)
            .await?;
        Ok(())
    })
}

/// Prepares `sql` on the database without running it: the database parses it and resolves
/// every table, column and function it names, so a statement an older binary sends fails
/// here when the schema no longer has what it uses.
pub async fn prepare_statement(store: &Store, sql: &str) -> Result<(), StoreError> {
    with_pool!(&store.db, |pool| {
        let mut conn = pool.acquire().await?;
        conn.prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
            .await?;
        Ok(())
    })
}

/// One integer that `sql` selects (first column of the first row, as BIGINT).
pub async fn query_int(store: &Store, sql: &str) -> Result<i64, StoreError> {
    with_pool!(&store.db, |pool| {
        let value: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
            .fetch_one(pool)
            .await?;
        Ok(value)
    })
}

/// The highest migration version recorded as applied (`_sqlx_migrations`), 0 when none.
pub async fn applied_schema_version(store: &Store) -> Result<i64, StoreError> {
    query_int(
        store,
        "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM _sqlx_migrations WHERE success",
    )
    .await
}

/// The tables every schema since migration 1 has, whose row counts a snapshot takes.
pub const DATA_TABLES: &[&str] = &[
    "users",
    "api_keys",
    "tasks",
    "runs",
    "run_pages",
    "run_logs",
    "ledger",
    "workers",
    "kv",
];

/// What the data of a database says, as `name → value` lines so that a failed comparison
/// shows exactly which differ: `count:<table>`, `runs:<state>`, `balance:<email>`,
/// `charged:<run id>` (compute units charged to the run in the ledger), `pages:<run id>`,
/// `run:<run id>` (state, attempt, pages done, records, compute units).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataSnapshot {
    pub values: BTreeMap<String, String>,
}

impl DataSnapshot {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// Reads a [`DataSnapshot`] of the store's data (the tables every schema has).
pub async fn data_snapshot(store: &Store) -> Result<DataSnapshot, StoreError> {
    snapshot(store, false).await
}

/// A [`DataSnapshot`] of the data users can still reach: without the tasks deleted before
/// deletion was real (schema 3 and older kept them, `deleted_at` set), their runs, pages and
/// logs, which migration 4 deletes. What an upgrade must keep unchanged.
pub async fn live_data_snapshot(store: &Store) -> Result<DataSnapshot, StoreError> {
    snapshot(store, true).await
}

/// Rows of `table` that belong to a task not soft-deleted (for `live_only`).
fn live_rows(table: &str) -> &'static str {
    match table {
        "tasks" => " WHERE deleted_at IS NULL",
        "runs" => " WHERE task_id IN (SELECT id FROM tasks WHERE deleted_at IS NULL)",
        "run_pages" | "run_logs" => {
            " WHERE run_id IN (SELECT r.id FROM runs r JOIN tasks t ON t.id = r.task_id \
             WHERE t.deleted_at IS NULL)"
        }
        _ => "",
    }
}

async fn snapshot(store: &Store, live_only: bool) -> Result<DataSnapshot, StoreError> {
    let mut values = BTreeMap::new();
    let live_runs = if live_only { live_rows("runs") } else { "" };
    with_pool!(&store.db, |pool| {
        for table in DATA_TABLES {
            let filter = if live_only { live_rows(table) } else { "" };
            let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}{filter}");
            let row = sqlx::query(AssertSqlSafe(sql)).fetch_one(pool).await?;
            values.insert(format!("count:{table}"), row.int("n")?.to_string());
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT state, CAST(COUNT(*) AS BIGINT) AS n FROM runs{live_runs} GROUP BY state ORDER BY state"
        )))
        .fetch_all(pool)
        .await?;
        for row in &rows {
            values.insert(
                format!("runs:{}", row.text("state")?),
                row.int("n")?.to_string(),
            );
        }
        let rows = sqlx::query(
            "SELECT u.email, CAST(COALESCE(SUM(CASE WHEN l.kind = 'grant' THEN l.amount \
             ELSE -l.amount END), 0) AS BIGINT) AS balance \
             FROM users u LEFT JOIN ledger l ON l.user_id = u.id GROUP BY u.email ORDER BY u.email",
        )
        .fetch_all(pool)
        .await?;
        for row in &rows {
            values.insert(
                format!("balance:{}", row.text("email")?),
                row.int("balance")?.to_string(),
            );
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT r.id, r.state, r.attempt, r.pages_done, r.records, r.compute_units, \
             CAST((SELECT COUNT(*) FROM run_pages p WHERE p.run_id = r.id) AS BIGINT) AS pages, \
             CAST((SELECT COALESCE(SUM(l.amount), 0) FROM ledger l \
                   WHERE l.run_id = r.id AND l.kind = 'charge') AS BIGINT) AS charged \
             FROM runs r{live_runs} ORDER BY r.id"
        )))
        .fetch_all(pool)
        .await?;
        for row in &rows {
            let id = row.text("id")?;
            values.insert(
                format!("run:{id}"),
                format!(
                    "{} attempt={} pages_done={} records={} compute_units={}",
                    row.text("state")?,
                    row.int("attempt")?,
                    row.int("pages_done")?,
                    row.int("records")?,
                    row.int("compute_units")?
                ),
            );
            values.insert(format!("pages:{id}"), row.int("pages")?.to_string());
            values.insert(format!("charged:{id}"), row.int("charged")?.to_string());
        }
        Ok::<(), StoreError>(())
    })?;
    Ok(DataSnapshot { values })
}

/// The per-user queue counters (`user_queue_state`) as `email → (running, queued,
/// max_running, disabled, head run id)`; the table exists from schema 2 on.
pub async fn queue_counters(
    store: &Store,
) -> Result<BTreeMap<String, (i64, i64, i64, i64, Option<String>)>, StoreError> {
    with_pool!(&store.db, |pool| {
        let rows = sqlx::query(
            "SELECT u.email, s.running, s.queued, s.max_running, s.disabled, s.head_id \
             FROM user_queue_state s JOIN users u ON u.id = s.user_id ORDER BY u.email",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.text("email")?,
                    (
                        row.int("running")?,
                        row.int("queued")?,
                        row.int("max_running")?,
                        row.int("disabled")?,
                        row.opt_text("head_id")?,
                    ),
                ))
            })
            .collect()
    })
}

/// The placeholder in upgrade fixtures for the base URL of the site their tasks scrape.
pub const SITE_PLACEHOLDER: &str = "{{SITE}}";

/// The data fixture written at schema `schema` (`tests/fixtures/upgrade/schema-<N>.sql`,
/// loaded before migration N+1 is applied) and what it is known to hold
/// (`schema-<N>.expected.json`).
#[derive(Clone, Debug)]
pub struct UpgradeFixture {
    pub schema: i64,
    /// The SQL script, with [`SITE_PLACEHOLDER`] not yet replaced.
    pub sql: String,
    pub expected: serde_json::Value,
}

/// The directory of the upgrade fixtures.
pub fn upgrade_fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join("upgrade")
}

/// The latest migration version (the schema `migrate` brings a database to).
pub fn latest_migration(backend: Backend) -> i64 {
    migrations_up_to_latest(backend)
        .last()
        .map_or(0, |migration| migration.version)
}

fn migrations_up_to_latest(backend: Backend) -> Vec<Migration> {
    migrations_up_to(backend, i64::MAX)
}

/// The upgrade fixture for every migration N ≥ 2: the data at schema N-1. Panics, naming
/// the missing file, when a migration has no fixture: every new migration gets one.
pub fn upgrade_fixtures(backend: Backend) -> Vec<UpgradeFixture> {
    let dir = upgrade_fixtures_dir();
    (1..latest_migration(backend))
        .map(|schema| {
            let sql_path = dir.join(format!("schema-{schema}.sql"));
            let expected_path = dir.join(format!("schema-{schema}.expected.json"));
            let sql = std::fs::read_to_string(&sql_path).unwrap_or_else(|error| {
                panic!(
                    "migration {} has no upgrade fixture at schema {schema}: {} ({error})",
                    schema + 1,
                    sql_path.display()
                )
            });
            let expected = std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|error| panic!("reading {}: {error}", expected_path.display()));
            let expected = serde_json::from_str(&expected)
                .unwrap_or_else(|error| panic!("{} is not JSON: {error}", expected_path.display()));
            UpgradeFixture {
                schema,
                sql,
                expected,
            }
        })
        .collect()
}

impl UpgradeFixture {
    /// A store on `db` at this fixture's schema (replayed as release 0.1.0 did) holding the
    /// fixture's data, its tasks pointing at `site` (`http://127.0.0.1:<port>`).
    pub async fn load(&self, db: &TestDatabase, site: &str) -> Store {
        let store = db.store_at_schema(self.schema).await;
        run_script(&store, &self.sql.replace(SITE_PLACEHOLDER, site))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "loading the upgrade fixture at schema {}: {error}",
                    self.schema
                )
            });
        store
    }
}
