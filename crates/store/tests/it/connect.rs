//! Connecting, migrating, URL schemes.

use selextract_store::{Store, StoreError};

use crate::support::test_store;

#[tokio::test]
async fn connect_creates_the_database_file_and_its_directory() {
    let (store, db) = test_store().await;
    store.ping().await.unwrap();
    assert!(db.path.exists(), "{} was not created", db.path.display());
}

#[tokio::test]
async fn migrations_are_idempotent_and_keep_data() {
    let (store, db) = test_store().await;
    crate::support::user(&store, "a@example.com", 1).await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let other = Store::connect(&db.url).await.unwrap();
    other.migrate().await.unwrap();
    assert_eq!(other.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn a_bare_path_and_an_in_memory_url_both_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/bare.db");
    let bare = Store::connect(path.to_str().unwrap()).await.unwrap();
    bare.migrate().await.unwrap();
    assert!(path.exists());

    let memory = Store::connect("sqlite::memory:").await.unwrap();
    memory.migrate().await.unwrap();
    crate::support::user(&memory, "m@example.com", 1).await;
    assert_eq!(memory.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn other_schemes_are_refused_by_name() {
    match Store::connect("postgres://user@127.0.0.1:1/db").await {
        Err(StoreError::UnsupportedScheme(message)) => {
            assert!(message.contains("postgres"), "{message}");
            assert!(message.contains("not built yet"), "{message}");
        }
        other => panic!("expected UnsupportedScheme, got {other:?}"),
    }
    match Store::connect("mysql://127.0.0.1:1/db").await {
        Err(StoreError::UnsupportedScheme(message)) => assert_eq!(message, "mysql"),
        other => panic!("expected UnsupportedScheme, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unopenable_database_is_reported_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be: SQLite cannot open it.
    let path = dir.path().join("is-a-directory");
    std::fs::create_dir_all(&path).unwrap();
    let error = Store::connect(path.to_str().unwrap()).await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_migrating_a_fresh_database_at_once_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let first = Store::connect(&url).await.unwrap();
    let second = Store::connect(&url).await.unwrap();
    let (a, b) = tokio::join!(first.migrate(), second.migrate());
    a.unwrap();
    b.unwrap();
    crate::support::user(&first, "a@example.com", 1).await;
    assert_eq!(second.count_users().await.unwrap(), 1);
}
