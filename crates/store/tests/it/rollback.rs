//! The rollback test: a database at an older schema holding an installation's data (the
//! upgrade fixtures) is backed up the way the upgrade procedure says (SQLite: `VACUUM INTO`
//! a file; PostgreSQL: `pg_dump`), migrated and worked on (runs reclaimed, claimed,
//! finished, pages committed and charged); restoring the backup brings back the old schema
//! version and exactly the data of before the upgrade, and the restored database takes work
//! again.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use selextract_store::testing::{
    UpgradeFixture, applied_schema_version, data_snapshot, latest_migration,
    queue_state_mismatches, run_script, test_postgres_url, upgrade_fixtures,
};
use selextract_store::{PageCommit, PageOutcome, Progress, RunState, SchemaVerdict, Store};

use crate::support::{Backend, TestDatabase, both_backends};

const SITE: &str = "http://127.0.0.1:9";

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

both_backends!(restoring_the_pre_upgrade_backup_brings_back_the_old_schema_and_data);
async fn restoring_the_pre_upgrade_backup_brings_back_the_old_schema_and_data(backend: Backend) {
    for fixture in upgrade_fixtures(backend) {
        backup_upgrade_work_restore(backend, &fixture).await;
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("running {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Takes the backup of the test's database into `dir`; returns the backup file.
async fn backup(db: &TestDatabase, store: &Store, dir: &Path) -> std::path::PathBuf {
    let file = dir.join("backup");
    match db.backend {
        Backend::Sqlite => {
            let path = file.display().to_string().replace('\'', "''");
            run_script(store, &format!("VACUUM INTO '{path}'"))
                .await
                .unwrap();
        }
        Backend::Postgres => {
            let schema = db.schema.as_deref().unwrap();
            run(Command::new("pg_dump")
                .args(["--format=custom", "--schema", schema, "--file"])
                .arg(&file)
                .arg(test_postgres_url()));
        }
    }
    file
}

/// Replaces the test's database with the backup (every store on it closed).
async fn restore(db: &TestDatabase, file: &Path) {
    match db.backend {
        Backend::Sqlite => {
            let path = db.sqlite_path.as_ref().unwrap();
            for suffix in ["-wal", "-shm"] {
                let side = format!("{}{suffix}", path.display());
                let _ = std::fs::remove_file(side);
            }
            std::fs::copy(file, path).unwrap();
        }
        Backend::Postgres => {
            let schema = db.schema.as_deref().unwrap();
            run(Command::new("psql")
                .args(["--quiet", "--set", "ON_ERROR_STOP=1", "--command"])
                .arg(format!("DROP SCHEMA {schema} CASCADE"))
                .arg(test_postgres_url()));
            run(Command::new("pg_restore")
                .args(["--exit-on-error", "--dbname"])
                .arg(test_postgres_url())
                .arg(file));
        }
    }
}

/// Work on the upgraded database: lost runs requeued, a run claimed, a page committed and
/// charged, the run finished.
async fn do_work(store: &Store) {
    let now = now_ms();
    store.requeue_expired_runs(now).await.unwrap();
    let run = store
        .claim_next_run("after-upgrade", Duration::from_secs(30), now)
        .await
        .unwrap()
        .expect("a claimable run after the upgrade");
    store
        .commit_page(PageCommit {
            run_id: run.id.clone(),
            user_id: run.user_id.clone(),
            worker_id: "after-upgrade".to_owned(),
            page_key: "s0-p9".to_owned(),
            url: format!("{SITE}/catalog?page=10"),
            status: Some(200),
            outcome: PageOutcome::Ok,
            records: 10,
            bytes: 452,
            object_key: None,
            charge: 1,
            mode: "http".to_owned(),
        })
        .await
        .unwrap();
    let finished = store
        .finish_run(
            &run.id,
            "after-upgrade",
            RunState::Completed,
            "ok",
            None,
            &Progress::default(),
            now,
        )
        .await
        .unwrap();
    assert!(finished);
}

async fn backup_upgrade_work_restore(backend: Backend, fixture: &UpgradeFixture) {
    let schema = fixture.schema;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(backend).await;
    let store = fixture.load(&db, SITE).await;
    let before = data_snapshot(&store).await.unwrap();
    let file = backup(&db, &store, dir.path()).await;

    store.migrate().await.unwrap();
    assert_eq!(
        applied_schema_version(&store).await.unwrap(),
        latest_migration(backend)
    );
    do_work(&store).await;
    let worked = data_snapshot(&store).await.unwrap();
    assert_ne!(before, worked, "schema {schema}: the work changed nothing");
    store.close().await;

    restore(&db, &file).await;
    let restored = db.connect().await.unwrap();
    assert_eq!(
        applied_schema_version(&restored).await.unwrap(),
        schema,
        "the restored database is at the schema of the backup"
    );
    let status = restored.schema_status().await.unwrap();
    assert_eq!(
        status.verdict,
        SchemaVerdict::Behind,
        "schema {schema}: {status:?}"
    );
    assert_eq!(
        data_snapshot(&restored).await.unwrap(),
        before,
        "schema {schema}: the restored data is the data of before the upgrade"
    );
    if schema >= 2 {
        assert_eq!(
            queue_state_mismatches(&restored).await.unwrap(),
            Vec::<String>::new()
        );
    }
    // The previous binary's queue works on the restored database: lost runs come back and
    // are claimed.
    let report = restored.requeue_expired_runs(now_ms()).await.unwrap();
    assert!(!report.requeued.is_empty(), "schema {schema}: {report:?}");
    if schema >= 2 {
        let claimed = restored
            .claim_next_run("after-rollback", Duration::from_secs(30), now_ms())
            .await
            .unwrap();
        assert!(
            claimed.is_some(),
            "schema {schema}: nothing claimable after the rollback"
        );
    }
    restored.close().await;
}
