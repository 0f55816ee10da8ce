//! Test helpers: a fresh, migrated store per test on either backend, the macro that runs a
//! test on both (shared by every crate's suites), and small builders for users and tasks.

use selextract_store::{NewTask, NewUser, Store, Task, User};
use sqlx::{AssertSqlSafe, Connection};

pub use selextract_store::testing::{Backend, TestDatabase, test_postgres_url, test_store};

/// The one `both_backends!` of every crate's suites (`selextract_store::testing`).
pub(crate) use selextract_store::both_backends;

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

/// Runs `sql` on a connection of its own, as another process (say, `selextract migrate`)
/// would.
pub async fn execute_elsewhere(db: &TestDatabase, sql: &str) {
    let sql = AssertSqlSafe(sql.to_owned());
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}
