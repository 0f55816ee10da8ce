//! Unit tests of the migration list and of the verdicts, on histories built in memory.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::history::{crc32_ieee, sqlx_lock_id};
use super::status::AppliedRow;
use super::*;

fn migration_files(backend: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    files
}

fn embedded_names(embedded: &[(i64, &str, &str)]) -> Vec<String> {
    embedded
        .iter()
        .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
        .collect()
}

#[test]
fn every_migration_file_is_embedded_in_order() {
    assert_eq!(migration_files("sqlite"), embedded_names(SQLITE_MIGRATIONS));
    assert_eq!(
        migration_files("postgres"),
        embedded_names(POSTGRES_MIGRATIONS)
    );
}

#[test]
fn both_backends_have_the_same_migration_files() {
    assert_eq!(migration_files("sqlite"), migration_files("postgres"));
}

#[test]
fn the_schema_version_is_the_last_migration_of_both_backends() {
    // Migrations are numbered 1, 2, … without gaps, so the last one's number is their count.
    let files = migration_files("sqlite");
    assert_eq!(SCHEMA_VERSION, i64::try_from(files.len()).unwrap());
    assert!(
        files
            .last()
            .unwrap()
            .starts_with(&format!("{SCHEMA_VERSION:04}_")),
        "{files:?}"
    );
    assert_eq!(POSTGRES_MIGRATIONS.last().unwrap().0, SCHEMA_VERSION);
}

/// The words of a migration outside `--` comments, upper-cased.
fn statement_words(sql: &str) -> Vec<String> {
    sql.lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .flat_map(|line| line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|word| !word.is_empty())
        .map(str::to_uppercase)
        .collect()
}

/// Every migration runs inside the one transaction of the runner, so none may hold a
/// statement that cannot run inside a transaction (PostgreSQL: `CREATE INDEX CONCURRENTLY`,
/// `VACUUM`) or that does nothing there (SQLite: `PRAGMA foreign_keys`), nor end the
/// transaction itself.
#[test]
fn no_migration_needs_to_run_outside_a_transaction() {
    let refused = [
        "PRAGMA",
        "VACUUM",
        "COMMIT",
        "ROLLBACK",
        "ATTACH",
        "CONCURRENTLY",
        "SAVEPOINT",
    ];
    for (backend, list) in [
        ("sqlite", SQLITE_MIGRATIONS),
        ("postgres", POSTGRES_MIGRATIONS),
    ] {
        for (version, _, sql) in list {
            let words = statement_words(sql);
            for word in refused {
                assert!(
                    !words.iter().any(|w| w == word),
                    "{backend} migration {version} uses {word}"
                );
            }
        }
    }
    assert!(
        statement_words("CREATE INDEX CONCURRENTLY x -- COMMIT")
            .contains(&"CONCURRENTLY".to_owned())
    );
    assert!(!statement_words("SELECT 1 -- COMMIT").contains(&"COMMIT".to_owned()));
}

#[test]
fn crc32_and_the_lock_key_match_sqlx() {
    // The standard CRC-32 check value.
    assert_eq!(crc32_ieee(b"123456789"), 0xcbf4_3926);
    assert_eq!(
        sqlx_lock_id("postgres"),
        0x3d32_ad9e * i64::from(crc32_ieee(b"postgres"))
    );
}

fn embedded() -> Vec<Migration> {
    embedded_migrations(&Db::Sqlite(
        sqlx::sqlite::SqlitePoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .unwrap(),
    ))
}

fn row(migration: &Migration) -> AppliedRow {
    AppliedRow {
        version: migration.version,
        description: migration.description.to_string(),
        installed_on: "2026-01-01 00:00:00".to_owned(),
        success: true,
        checksum: migration.checksum.to_vec(),
    }
}

fn foreign(version: i64, description: &str) -> AppliedRow {
    AppliedRow {
        version,
        description: description.to_owned(),
        installed_on: "2026-01-01 00:00:00".to_owned(),
        success: true,
        checksum: vec![0; 48],
    }
}

#[tokio::test]
async fn verdicts_follow_the_history() {
    let embedded = embedded();
    let all: Vec<AppliedRow> = embedded.iter().map(row).collect();

    assert_eq!(judge(None, &embedded).verdict, SchemaVerdict::Fresh);
    assert_eq!(judge(Some(vec![]), &embedded).verdict, SchemaVerdict::Fresh);
    let current = judge(Some(all.clone()), &embedded);
    assert_eq!(current.verdict, SchemaVerdict::Current);
    assert_eq!(current.database_version, Some(SCHEMA_VERSION));
    assert!(current.problem().is_none());

    let behind = judge(Some(all[..2].to_vec()), &embedded);
    assert_eq!(behind.verdict, SchemaVerdict::Behind);
    assert_eq!(behind.database_version, Some(2));
    assert!(matches!(
        behind.problem(),
        Some(StoreError::SchemaBehind {
            database: 2,
            needed: SCHEMA_VERSION
        })
    ));

    let mut expand = all.clone();
    expand.push(foreign(SCHEMA_VERSION + 1, "add_x"));
    let ahead = judge(Some(expand.clone()), &embedded);
    assert_eq!(ahead.verdict, SchemaVerdict::AheadCompatible);
    assert_eq!(ahead.database_version, Some(SCHEMA_VERSION + 1));
    assert!(ahead.problem().is_none());

    let mut contract = expand.clone();
    let next = SCHEMA_VERSION + 2;
    contract.push(foreign(next, "contract_x"));
    let too_new = judge(Some(contract), &embedded);
    assert_eq!(too_new.verdict, SchemaVerdict::AheadIncompatible);
    let message = too_new.problem().unwrap().to_string();
    assert!(
        message.contains(&format!("migration {next} (contract_x)")),
        "{message}"
    );
    assert!(
        message.contains(&format!("schema {next} or later")),
        "{message}"
    );

    let mut changed = all.clone();
    changed[1].checksum = vec![1; 48];
    let mismatch = judge(Some(changed), &embedded);
    assert_eq!(mismatch.verdict, SchemaVerdict::Mismatch);
    assert_eq!(
        mismatch.migrations[1].state,
        MigrationState::ChecksumMismatch
    );
    let message = mismatch.problem().unwrap().to_string();
    assert!(message.contains("2 (user_queue_state)"), "{message}");

    let mut failed = all.clone();
    let last = failed.len() - 1;
    failed[last].success = false;
    let failed = judge(Some(failed), &embedded);
    assert_eq!(failed.verdict, SchemaVerdict::Mismatch);
    assert_eq!(failed.database_version, Some(SCHEMA_VERSION - 1));

    let mut gap = all[..2].to_vec();
    gap.push(foreign(SCHEMA_VERSION + 1, "add_x"));
    assert_eq!(judge(Some(gap), &embedded).verdict, SchemaVerdict::Mismatch);
}
