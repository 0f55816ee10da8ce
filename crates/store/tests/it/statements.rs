//! The rolling-upgrade check: during an upgrade the previous release's processes keep
//! running against the migrated schema (API processes are upgraded first, workers after),
//! so every statement the previous release's store sends must still be valid there. The
//! statements of each release are kept as fixtures (`tests/fixtures/statements/<version>.json`,
//! extracted from the release's tag by `scripts/release-statements`); each is prepared
//! against the fully migrated schema, which makes the database resolve every table, column
//! and function it names.

use std::path::Path;

use selextract_store::testing::{prepare_statement, test_store};
use serde_json::Value;

use crate::support::{Backend, both_backends};

/// Every release's statement fixture: `(file name, fixture)`.
fn release_statements() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/statements");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let fixture = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                fixture,
            )
        })
        .collect()
}

fn backend_tag(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

both_backends!(the_previous_releases_statements_prepare_against_the_migrated_schema);
async fn the_previous_releases_statements_prepare_against_the_migrated_schema(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let releases = release_statements();
    assert!(
        releases.iter().any(|(name, _)| name == "0.1.0.json"),
        "no statement fixture of release 0.1.0"
    );
    let tag = backend_tag(backend);
    for (name, fixture) in releases {
        let mut prepared = 0;
        let mut failures = Vec::new();
        for statement in fixture["statements"].as_array().unwrap() {
            let backends: Vec<&str> = statement["backends"]
                .as_array()
                .unwrap()
                .iter()
                .map(|backend| backend.as_str().unwrap())
                .collect();
            if !backends.contains(&tag) {
                continue;
            }
            let sql = statement["sql"].as_str().unwrap();
            match prepare_statement(&store, sql).await {
                Ok(()) => prepared += 1,
                Err(error) => failures.push(format!(
                    "{name} {}: {error}\n    {sql}",
                    statement["source"].as_str().unwrap()
                )),
            }
        }
        assert!(
            failures.is_empty(),
            "statements of release {name} that the migrated schema no longer accepts:\n{}",
            failures.join("\n")
        );
        if name == "0.1.0.json" {
            // 67 statements: 60 on both backends, 3 of SQLite's own, 4 of PostgreSQL's own.
            let want = if backend == Backend::Sqlite { 63 } else { 64 };
            assert_eq!(prepared, want, "{name}: statements prepared on {tag}");
        }
        assert!(prepared > 0, "{name}: no statement for {tag}");
    }
}

both_backends!(preparing_a_statement_checks_its_tables_and_columns);
async fn preparing_a_statement_checks_its_tables_and_columns(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    prepare_statement(&store, "SELECT id, state FROM runs WHERE id = $1")
        .await
        .unwrap();
    for sql in [
        "SELECT id, no_such_column FROM runs WHERE id = $1",
        "UPDATE no_such_table SET state = $1",
        "INSERT INTO runs (id, no_such_column) VALUES ($1, $2)",
    ] {
        let error = prepare_statement(&store, sql)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no_such"),
            "preparing {sql:?} failed without naming what is missing: {error}"
        );
    }
}
