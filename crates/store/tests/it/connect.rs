//! Connecting, migrating, URL schemes.

use selextract_store::{Store, StoreError};

use crate::support::{Backend, TestDatabase, both_backends, test_store};

#[tokio::test]
async fn connect_creates_the_database_file_and_its_directory() {
    let (store, db) = test_store(Backend::Sqlite).await;
    store.ping().await.unwrap();
    let path = db.sqlite_path.clone().unwrap();
    assert!(path.exists(), "{} was not created", path.display());
}

both_backends!(migrations_are_idempotent_and_keep_data);
async fn migrations_are_idempotent_and_keep_data(backend: Backend) {
    let (store, db) = test_store(backend).await;
    assert_eq!(store.backend_name(), db.url.split(':').next().unwrap());
    crate::support::user(&store, "a@example.com", 1).await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let other = Store::connect(&db.url).await.unwrap();
    other.migrate().await.unwrap();
    assert_eq!(other.count_users().await.unwrap(), 1);
}

both_backends!(two_processes_migrating_a_fresh_database_at_once_both_succeed);
async fn two_processes_migrating_a_fresh_database_at_once_both_succeed(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let first = db.connect().await.unwrap();
    let second = db.connect().await.unwrap();
    let (a, b) = tokio::join!(first.migrate(), second.migrate());
    a.unwrap();
    b.unwrap();
    crate::support::user(&first, "a@example.com", 1).await;
    assert_eq!(second.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn a_postgres_url_selects_the_postgres_backend() {
    let store = Store::connect(&crate::support::test_postgres_url())
        .await
        .unwrap();
    assert_eq!(store.backend_name(), "postgres");
    store.ping().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_postgres_server_is_reported_as_unavailable() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let store = Store::connect("postgres://postgres@127.0.0.1:1/postgres")
        .await
        .unwrap();
    let error = store.ping().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
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
