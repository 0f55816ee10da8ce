//! Schema versions through the real binary: `--version`, `migrate --status`, and `serve` and
//! `worker` refusing (or migrating, or tolerating) databases at other schema versions.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use selextract_store::SCHEMA_VERSION;
use selextract_store::testing::{Backend, TestDatabase, run_script};

use crate::support::{Proc, binary, fast_env};

/// How long a refusing process may take to exit before the test calls it hung.
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// Brings the database to schema `last` as release 0.1.0 did (sqlx's `Migrator`), then runs
/// `extra` SQL.
async fn prepare(db: &TestDatabase, last: i64, extra: &str) {
    let store = db.store_at_schema(last).await;
    run_script(&store, extra).await.unwrap();
    store.close().await;
}

/// A `_sqlx_migrations` row as a newer release's migration leaves it.
fn newer_migration(backend: Backend, description: &str) -> String {
    let checksum = match backend {
        Backend::Sqlite => "X'00'",
        Backend::Postgres => "'\\x00'::bytea",
    };
    format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999, '{description}', TRUE, {checksum}, 1)"
    )
}

/// `selextract` with the database of `db`: the SQLite file's directory as data directory,
/// or `DATABASE_URL` for PostgreSQL (and a data directory of its own for results).
fn selextract(db: &TestDatabase, data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    fast_env(&mut cmd);
    let data_dir = match &db.sqlite_path {
        Some(path) => path.parent().unwrap().to_path_buf(),
        None => {
            cmd.env("DATABASE_URL", &db.url);
            data.to_path_buf()
        }
    };
    cmd.arg("--data-dir").arg(data_dir).args(args);
    cmd
}

/// Runs a command that must end by itself, and returns its output.
fn run_to_exit(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(EXIT_LIMIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("selextract {cmd:?} did not exit within {EXIT_LIMIT:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `serve` and waits for it to announce its address.
fn serve_until_listening(mut cmd: Command) -> Proc {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let mut lines = BufReader::new(stdout).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("is listening on http://"));
    assert!(listening, "serve ended without announcing its address");
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    proc
}

fn status_of(db: &TestDatabase, data: &Path) -> (Option<i32>, String) {
    let output = run_to_exit(selextract(db, data, &["migrate", "--status"]));
    (output.status.code(), text(&output.stdout))
}

#[test]
fn version_names_the_release_the_commit_and_the_schema() {
    let output = Command::new(binary()).arg("--version").output().unwrap();
    assert!(output.status.success());
    let line = text(&output.stdout);
    let rest = line
        .strip_prefix("selextract 0.2.0-dev (commit ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (commit, rest) = rest.split_at(12);
    assert!(
        commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{line:?}: the commit is not 12 hex digits"
    );
    assert_eq!(rest, format!(", schema {SCHEMA_VERSION})\n"), "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_status_lists_the_pending_migration_of_a_behind_database_and_exits_2() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let data = tempfile::tempdir().unwrap();
    prepare(&db, 2, "").await;
    let (code, out) = status_of(&db, data.path());
    assert_eq!(code, Some(2), "{out}");
    for part in [
        "database schema  2\n".to_owned(),
        "      2  user_queue_state     applied".to_owned(),
        "      3  partial_run_indexes  pending  -\n".to_owned(),
        format!(
            "verdict: behind — {} pending: back up the database, then run `selextract migrate`",
            SCHEMA_VERSION - 2
        ),
    ] {
        assert!(out.contains(&part), "{out}\nlacks {part:?}");
    }

    let dry = run_to_exit(selextract(&db, data.path(), &["migrate", "--dry-run"]));
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(text(&dry.stdout).contains("would apply migration 3 (partial_run_indexes)"));
    assert_eq!(
        status_of(&db, data.path()).0,
        Some(2),
        "the dry run changed the database"
    );

    let migrate = run_to_exit(selextract(&db, data.path(), &["migrate"]));
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));
    assert!(text(&migrate.stdout).contains("applied migration 3 (partial_run_indexes)"));
    let (code, out) = status_of(&db, data.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verdict: current"), "{out}");
}

/// `serve` and `worker` against a database one migration behind: both refuse with the
/// message that says what to do and exit 1, changing nothing.
async fn refuse_a_behind_database(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let data = tempfile::tempdir().unwrap();
    prepare(&db, 2, "").await;
    let expected = format!(
        "the database schema is at version 2 and this selextract (0.2.0-dev, schema \
         {SCHEMA_VERSION}) needs {SCHEMA_VERSION}: back up the database, then run `selextract \
         migrate` (or set database.migrate_on_start = true)"
    );
    for args in [
        &["serve", "--bind", "127.0.0.1:0"][..],
        &["worker", "--allow-private-networks"][..],
    ] {
        let output = run_to_exit(selextract(&db, data.path(), args));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
    assert_eq!(status_of(&db, data.path()).0, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_worker_refuse_a_behind_sqlite_database() {
    refuse_a_behind_database(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_worker_refuse_a_behind_postgres_database() {
    refuse_a_behind_database(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_worker_migrate_a_behind_database_when_migrate_on_start_is_set() {
    for command in ["serve", "worker"] {
        let db = TestDatabase::create(Backend::Sqlite).await;
        let data = tempfile::tempdir().unwrap();
        prepare(&db, 2, "").await;
        let mut cmd = selextract(&db, data.path(), &[command]);
        cmd.env("SELEXTRACT__DATABASE__MIGRATE_ON_START", "true");
        let mut proc = if command == "serve" {
            cmd.args(["--bind", "127.0.0.1:0"]);
            serve_until_listening(cmd)
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            Proc(cmd.spawn().unwrap())
        };
        let deadline = Instant::now() + EXIT_LIMIT;
        loop {
            let (code, out) = status_of(&db, data.path());
            if code == Some(0) {
                assert!(out.contains("verdict: current"), "{out}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{command} did not migrate: {out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            proc.0.try_wait().unwrap().is_none(),
            "{command} exited after migrating"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_worker_refuse_a_database_past_a_contract_migration() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let data = tempfile::tempdir().unwrap();
    prepare(
        &db,
        SCHEMA_VERSION,
        &newer_migration(Backend::Sqlite, "contract_x"),
    )
    .await;
    let expected = format!(
        "the database schema is at version 999; migration 999 (contract_x) removed what this \
         selextract (schema {SCHEMA_VERSION}) uses: run a selextract that knows schema 999 or \
         later"
    );
    for args in [
        &["serve", "--bind", "127.0.0.1:0"][..],
        &["worker"][..],
        &["migrate"][..],
    ] {
        let output = run_to_exit(selextract(&db, data.path(), args));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
    let (code, out) = status_of(&db, data.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("    999  contract_x           unknown (newer), contract  "),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_worker_start_against_a_database_ahead_by_expand_migrations_only() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let data = tempfile::tempdir().unwrap();
    prepare(
        &db,
        SCHEMA_VERSION,
        &newer_migration(Backend::Sqlite, "add_x"),
    )
    .await;
    let (code, out) = status_of(&db, data.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verdict: ahead (compatible)"), "{out}");
    let mut serve = serve_until_listening(selextract(
        &db,
        data.path(),
        &["serve", "--no-worker", "--bind", "127.0.0.1:0"],
    ));
    // A worker that gets past the schema check prints its id to stderr.
    let mut cmd = selextract(&db, data.path(), &["worker"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut worker = Proc(child);
    let mut lines = BufReader::new(stderr).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.starts_with("worker ") && line.ends_with(" started"));
    assert!(started, "the worker ended without starting");
    // Keep draining its log so that it never writes into a closed pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    assert!(serve.0.try_wait().unwrap().is_none(), "serve exited");
    assert!(worker.0.try_wait().unwrap().is_none(), "the worker exited");
    assert_eq!(status_of(&db, data.path()).0, Some(0));
}
