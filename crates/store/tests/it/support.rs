//! Test helpers: a fresh, migrated store per test, and small builders for users and tasks.

use std::path::PathBuf;

use selextract_store::{NewTask, NewUser, Store, Task, User};
use tempfile::TempDir;

/// Keeps the test database alive; dropping it deletes the files. `url` connects a second
/// `Store` (another "process") to the same database.
pub struct TestDb {
    pub url: String,
    pub path: PathBuf,
    _dir: TempDir,
}

/// A migrated store on a new SQLite file (in a not-yet-existing subdirectory, which also
/// exercises directory creation).
pub async fn test_store() -> (Store, TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("selextract.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (
        store,
        TestDb {
            url,
            path,
            _dir: dir,
        },
    )
}

pub async fn user(store: &Store, email: &str, max_concurrent_runs: u32) -> User {
    store
        .create_user(NewUser {
            email: email.to_owned(),
            password_hash: Some("argon2-hash".to_owned()),
            is_admin: false,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs,
        })
        .await
        .unwrap()
}

pub async fn task(store: &Store, user: &User, name: &str) -> Task {
    store
        .create_task(NewTask {
            user_id: user.id.clone(),
            name: name.to_owned(),
            spec: serde_json::json!({"url": "http://127.0.0.1/", "fields": [{"name": name}]}),
            priority: 5,
        })
        .await
        .unwrap()
}

/// Enqueues `count` runs of `task` at `priority`, returning their ids in enqueue order.
pub async fn enqueue(store: &Store, task: &Task, priority: u8, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let run = store
            .enqueue_run(&task.user_id, &task.id, &task.spec, priority, 3)
            .await
            .unwrap();
        ids.push(run.id);
    }
    ids
}

pub const T0: i64 = 1_700_000_000_000;
