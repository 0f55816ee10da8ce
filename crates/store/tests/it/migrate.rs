//! The schema runner: verdicts on fresh, behind, current, ahead and mismatched databases,
//! all-or-nothing migration, dry runs, concurrent migrators, and continuity with databases
//! that release 0.1.0 migrated with sqlx's own `Migrator`.

use selextract_store::{MigrationState, SCHEMA_VERSION, SchemaVerdict, Store, StoreError};
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Connection, Row};

use selextract_store::testing::{migrations_dir, migrations_up_to};

use crate::support::{Backend, TestDatabase, both_backends, execute_elsewhere};

/// Whether a table or index of that name exists.
async fn object_exists(db: &TestDatabase, name: &str) -> bool {
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let row = sqlx::query("SELECT COUNT(*) FROM sqlite_master WHERE name = $1")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            row.get::<i64, _>(0) > 0
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let row = sqlx::query("SELECT to_regclass($1) IS NOT NULL")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            row.get::<bool, _>(0)
        }
    }
}

/// Inserts a row as a newer release's migration would leave it.
async fn record_newer_migration(db: &TestDatabase, version: i64, description: &str) {
    let checksum = match db.backend {
        Backend::Sqlite => "X'00'",
        Backend::Postgres => "'\\x00'::bytea",
    };
    execute_elsewhere(
        db,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({version}, '{description}', TRUE, {checksum}, 1)"
        ),
    )
    .await;
}

both_backends!(a_database_migrated_by_sqlx_reads_as_current_with_no_mismatch);
async fn a_database_migrated_by_sqlx_reads_as_current_with_no_mismatch(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    db.store_at_schema(SCHEMA_VERSION).await.close().await;
    let store = db.connect().await.unwrap();
    let status = store.schema_status().await.unwrap();
    assert_eq!(status.verdict, SchemaVerdict::Current, "{status:#?}");
    assert_eq!(status.database_version, Some(SCHEMA_VERSION));
    assert_eq!(status.migrations.len(), every_migration().len());
    for migration in &status.migrations {
        assert_eq!(migration.state, MigrationState::Applied, "{migration:?}");
        assert!(migration.installed_on.is_some(), "{migration:?}");
    }
    let report = store.migrate().await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    store.check_schema_at_start(false).await.unwrap();
}

both_backends!(a_fresh_database_lists_every_migration_as_pending_and_is_initialised_at_start);
async fn a_fresh_database_lists_every_migration_as_pending_and_is_initialised_at_start(
    backend: Backend,
) {
    let db = TestDatabase::create(backend).await;
    let store = db.connect().await.unwrap();
    let status = store.schema_status().await.unwrap();
    assert_eq!(status.verdict, SchemaVerdict::Fresh);
    assert_eq!(status.database_version, None);
    assert_eq!(
        status.with_state(MigrationState::Pending).count(),
        every_migration().len()
    );
    assert!(!object_exists(&db, "_sqlx_migrations").await);
    // Initialising a fresh database needs no permission to migrate.
    let after = store.check_schema_at_start(false).await.unwrap();
    assert_eq!(after.verdict, SchemaVerdict::Current);
    crate::support::user(&store, "a@example.com", 1).await;
}

both_backends!(a_behind_database_is_refused_at_start_unless_migrating_on_start_is_allowed);
async fn a_behind_database_is_refused_at_start_unless_migrating_on_start_is_allowed(
    backend: Backend,
) {
    let db = TestDatabase::create(backend).await;
    db.store_at_schema(2).await.close().await;
    let store = db.connect().await.unwrap();
    let status = store.schema_status().await.unwrap();
    assert_eq!(status.verdict, SchemaVerdict::Behind);
    assert_eq!(status.database_version, Some(2));
    let pending: Vec<i64> = status
        .with_state(MigrationState::Pending)
        .map(|m| m.version)
        .collect();
    assert_eq!(pending, migrations_after(2));

    let error = store.check_schema_at_start(false).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaBehind {
                database: 2,
                needed: SCHEMA_VERSION
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    for part in [
        "the database schema is at version 2".to_owned(),
        format!("schema {SCHEMA_VERSION}) needs {SCHEMA_VERSION}"),
        "back up the database, then run `selextract migrate`".to_owned(),
        "database.migrate_on_start = true".to_owned(),
    ] {
        assert!(message.contains(&part), "{message:?} lacks {part:?}");
    }
    assert_eq!(
        store.schema_status().await.unwrap().verdict,
        SchemaVerdict::Behind,
        "refusing changed the database"
    );

    let after = store.check_schema_at_start(true).await.unwrap();
    assert_eq!(after.verdict, SchemaVerdict::Current);
    assert_eq!(after.database_version, Some(SCHEMA_VERSION));
}

both_backends!(rows_written_by_the_runner_are_accepted_by_sqlx_s_migrator);
/// A rollback to release 0.1.0 (whose binary migrates with sqlx's `Migrator` on start)
/// must find the history in the format it wrote: same checksums, no dirty rows.
async fn rows_written_by_the_runner_are_accepted_by_sqlx_s_migrator(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    db.store_at_schema(1).await.close().await;
    let store = db.connect().await.unwrap();
    let report = store.migrate().await.unwrap();
    let applied: Vec<i64> = report.applied.iter().map(|(v, _, _)| *v).collect();
    assert_eq!(applied, migrations_after(1));
    assert_eq!(report.version, Some(SCHEMA_VERSION));
    // sqlx's migrator checks every applied row's checksum against the files and refuses a
    // dirty (failed) row; it has nothing left to apply.
    db.store_at_schema(SCHEMA_VERSION).await.close().await;
    assert_eq!(
        store.schema_status().await.unwrap().verdict,
        SchemaVerdict::Current
    );
}

both_backends!(a_database_ahead_by_expand_migrations_is_used_with_a_warning);
async fn a_database_ahead_by_expand_migrations_is_used_with_a_warning(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = db.migrated_store().await;
    record_newer_migration(&db, 999, "add_x").await;
    let status = store.schema_status().await.unwrap();
    assert_eq!(status.verdict, SchemaVerdict::AheadCompatible);
    assert_eq!(status.database_version, Some(999));
    let newer: Vec<_> = status.with_state(MigrationState::UnknownNewer).collect();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].description, "add_x");
    store.check_schema_at_start(false).await.unwrap();
    assert!(store.migrate().await.unwrap().applied.is_empty());
    crate::support::user(&store, "a@example.com", 1).await;
}

both_backends!(a_database_past_a_contract_migration_is_refused_with_the_version_to_run);
async fn a_database_past_a_contract_migration_is_refused_with_the_version_to_run(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = db.migrated_store().await;
    record_newer_migration(&db, 999, "contract_x").await;
    let status = store.schema_status().await.unwrap();
    assert_eq!(status.verdict, SchemaVerdict::AheadIncompatible);
    let error = store.check_schema_at_start(true).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the database schema is at version 999; migration 999 (contract_x) removed what \
             this selextract (schema {SCHEMA_VERSION}) uses: run a selextract that knows schema \
             999 or later"
        )
    );
    let error = store.migrate().await.unwrap_err();
    assert!(
        matches!(error, StoreError::SchemaTooNew { .. }),
        "{error:?}"
    );
}

both_backends!(a_changed_migration_is_a_mismatch_that_nothing_runs_against);
async fn a_changed_migration_is_a_mismatch_that_nothing_runs_against(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = db.migrated_store().await;
    let checksum = match backend {
        Backend::Sqlite => "X'00'",
        Backend::Postgres => "'\\x00'::bytea",
    };
    execute_elsewhere(
        &db,
        &format!("UPDATE _sqlx_migrations SET checksum = {checksum} WHERE version = 2"),
    )
    .await;
    let status = store.schema_status().await.unwrap();
    assert_eq!(status.verdict, SchemaVerdict::Mismatch);
    assert_eq!(status.migrations[1].state, MigrationState::ChecksumMismatch);
    for error in [
        store.check_schema_at_start(true).await.unwrap_err(),
        store.migrate().await.unwrap_err(),
        store.migrate_dry_run().await.unwrap_err(),
    ] {
        let message = error.to_string();
        assert!(
            matches!(error, StoreError::SchemaMismatch { .. })
                && message.contains("2 (user_queue_state)")
                && message.contains("checksum mismatch"),
            "{message}"
        );
    }
}

/// Makes migration 3 fail: it creates the index `runs_queued`, which already exists.
async fn block_migration_3(db: &TestDatabase) {
    execute_elsewhere(db, "CREATE INDEX runs_queued ON runs (id)").await;
}

/// Makes the last migration fail: it creates a table (its first `CREATE TABLE`), which
/// then exists already. Returns that table's name.
async fn block_last_migration(db: &TestDatabase) -> String {
    let table = table_created_by_last_migration(db.backend);
    execute_elsewhere(db, &format!("CREATE TABLE {table} (id TEXT)")).await;
    table
}

/// The first table the last migration file of `backend` creates.
fn table_created_by_last_migration(backend: Backend) -> String {
    let dir = migrations_dir(backend);
    let prefix = format!("{SCHEMA_VERSION:04}_");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no migration {SCHEMA_VERSION} in {}", dir.display()));
    let sql = std::fs::read_to_string(&file).unwrap();
    let table = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .find_map(|line| line.trim_start().strip_prefix("CREATE TABLE "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| {
            panic!(
                "migration {SCHEMA_VERSION} ({}) creates no table: block it another way",
                file.display()
            )
        });
    table.to_owned()
}

/// Every migration this binary knows, in order.
fn every_migration() -> Vec<i64> {
    (1..=SCHEMA_VERSION).collect()
}

/// The migrations after schema `version`, up to the latest.
fn migrations_after(version: i64) -> Vec<i64> {
    ((version + 1)..=SCHEMA_VERSION).collect()
}

both_backends!(when_the_last_pending_migration_fails_none_is_applied);
async fn when_the_last_pending_migration_fails_none_is_applied(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    db.store_at_schema(1).await.close().await;
    let blocking_table = block_last_migration(&db).await;
    let store = db.connect().await.unwrap();
    crate::support::user(&store, "a@example.com", 1).await;

    let error = store.migrate().await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::MigrationFailed {
                version: SCHEMA_VERSION,
                database: 1,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("no migration was applied and the database schema stays at version 1"),
        "{message}"
    );
    let status = store.schema_status().await.unwrap();
    assert_eq!(status.verdict, SchemaVerdict::Behind);
    assert_eq!(status.database_version, Some(1));
    // Neither migration 2's table nor migration 3's first step (dropping `runs_claim`)
    // survived the failure of the last migration.
    assert!(!object_exists(&db, "user_queue_state").await);
    assert!(object_exists(&db, "runs_claim").await);
    assert_eq!(store.count_users().await.unwrap(), 1);

    execute_elsewhere(&db, &format!("DROP TABLE {blocking_table}")).await;
    let report = store.migrate().await.unwrap();
    let applied: Vec<i64> = report.applied.iter().map(|(v, _, _)| *v).collect();
    assert_eq!(applied, migrations_after(1));
    assert!(object_exists(&db, "user_queue_state").await);
    assert!(
        selextract_store::testing::queue_state_mismatches(&store)
            .await
            .unwrap()
            .is_empty()
    );
}

both_backends!(a_dry_run_reports_what_would_be_applied_and_changes_nothing);
async fn a_dry_run_reports_what_would_be_applied_and_changes_nothing(backend: Backend) {
    let fresh = TestDatabase::create(backend).await;
    let store = fresh.connect().await.unwrap();
    let report = store.migrate_dry_run().await.unwrap();
    assert!(report.dry_run);
    let would: Vec<i64> = report.applied.iter().map(|(v, _, _)| *v).collect();
    assert_eq!(would, every_migration());
    assert_eq!(report.version, Some(SCHEMA_VERSION));
    assert!(!object_exists(&fresh, "_sqlx_migrations").await);
    assert!(!object_exists(&fresh, "users").await);

    let db = TestDatabase::create(backend).await;
    db.store_at_schema(1).await.close().await;
    let store = db.connect().await.unwrap();
    let report = store.migrate_dry_run().await.unwrap();
    let would: Vec<i64> = report.applied.iter().map(|(v, _, _)| *v).collect();
    assert_eq!(would, migrations_after(1));
    assert_eq!(report.before.database_version, Some(1));
    let status = store.schema_status().await.unwrap();
    assert_eq!(status.database_version, Some(1));
    assert!(!object_exists(&db, "user_queue_state").await);

    block_migration_3(&db).await;
    let error = store.migrate_dry_run().await.unwrap_err();
    assert!(
        matches!(error, StoreError::MigrationFailed { version: 3, .. }),
        "{error:?}"
    );
    assert!(!object_exists(&db, "user_queue_state").await);
}

both_backends!(concurrent_migrators_apply_each_migration_once);
async fn concurrent_migrators_apply_each_migration_once(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    db.store_at_schema(1).await.close().await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(db.connect().await.unwrap());
    }
    crate::support::user(&stores[0], "a@example.com", 2).await;
    let reports = futures_join_all(&stores).await;
    let appliers: Vec<Vec<i64>> = reports
        .iter()
        .map(|report| report.applied.iter().map(|(v, _, _)| *v).collect())
        .filter(|applied: &Vec<i64>| !applied.is_empty())
        .collect();
    assert_eq!(appliers, [migrations_after(1)], "{reports:#?}");
    let status = stores[3].schema_status().await.unwrap();
    assert_eq!(status.verdict, SchemaVerdict::Current);
    assert!(
        selextract_store::testing::queue_state_mismatches(&stores[1])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Every store migrates at the same time, each from a task of its own (as processes would).
async fn futures_join_all(stores: &[Store]) -> Vec<selextract_store::MigrationReport> {
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| tokio::spawn(async move { store.migrate().await }))
        .collect();
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.unwrap().unwrap());
    }
    reports
}

both_backends!(release_0_1_0_s_migrator_refuses_a_database_with_a_migration_it_does_not_know);
/// What a rolling upgrade from 0.1.0 can rely on: 0.1.0 runs sqlx's `Migrator` at every
/// start, which refuses any applied migration it does not embed (sqlx's `VersionMissing`),
/// so a 0.1.0 process that (re)starts after a newer release applied a migration fails to
/// start, even for an expand migration. Processes already running are unaffected; binaries
/// from this runner on judge by expand/contract instead.
async fn release_0_1_0_s_migrator_refuses_a_database_with_a_migration_it_does_not_know(
    backend: Backend,
) {
    let db = TestDatabase::create(backend).await;
    db.migrated_store().await;
    record_newer_migration(&db, 999, "add_x").await;
    let migrator = Migrator::with_migrations(migrations_up_to(backend, i64::MAX));
    let error = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            migrator.run(&mut conn).await.unwrap_err()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            migrator.run(&mut conn).await.unwrap_err()
        }
    };
    assert!(
        matches!(error, sqlx::migrate::MigrateError::VersionMissing(999)),
        "{error:?}"
    );
}
