//! An expand migration applied while a process runs: the process's cached statements must
//! keep working when a column is added to a table it reads. With `SELECT *`, sqlx's SQLite
//! driver kept the cached column list and panicked on the longer row ("the len is 22 but the
//! index is 22"), and PostgreSQL refuses a cached plan whose result type changed; the store
//! names its columns instead.

use selextract_store::{NewTask, Page, Store, TaskFilter};
use std::time::Duration;

use crate::support::{
    Backend, TestDatabase, both_backends, enqueue, execute_elsewhere, task, user,
};

/// Reads users and runs through every statement that builds a `User` or a `Run`, and
/// claims one run; returns the e-mail and run ids seen.
async fn read_everything(store: &Store, email: &str, task_id: &str, user_id: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let by_email = store.find_user_by_email(email).await.unwrap().unwrap();
    let by_id = store.find_user_by_id(&by_email.id).await.unwrap().unwrap();
    seen.push(by_id.email.clone());
    seen.extend(
        store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.email),
    );
    let runs = store
        .list_runs(
            user_id,
            task_id,
            Page {
                page: 1,
                page_size: 10,
            },
        )
        .await
        .unwrap();
    for run in &runs.items {
        let found = store.find_run_any_user(&run.id).await.unwrap().unwrap();
        seen.push(found.id);
    }
    assert!(store.latest_run(user_id, task_id).await.unwrap().is_some());
    let found = store.find_task(user_id, task_id).await.unwrap().unwrap();
    let listed = store
        .list_tasks(
            user_id,
            &TaskFilter::default(),
            Page {
                page: 1,
                page_size: 10,
            },
        )
        .await
        .unwrap();
    seen.extend(listed.items.iter().map(|summary| summary.task.id.clone()));
    let updated = store
        .update_task(user_id, task_id, &found.name, &found.spec, found.priority)
        .await
        .unwrap()
        .unwrap();
    let made = store
        .create_task(NewTask {
            user_id: user_id.to_owned(),
            name: "another".to_owned(),
            spec: updated.spec.clone(),
            priority: 5,
        })
        .await
        .unwrap();
    seen.push(format!("created {}", made.name));
    let queued = store
        .enqueue_run(user_id, task_id, &updated.spec, 5, 3)
        .await
        .unwrap();
    seen.push(format!("queued {}", queued.state));
    let claimed = store
        .claim_next_run("worker-a", Duration::from_secs(30), 1)
        .await
        .unwrap()
        .expect("a queued run to claim");
    seen.push(format!("claimed {}", claimed.state));
    seen
}

both_backends!(statements_keep_working_when_an_expand_migration_adds_columns_meanwhile);
async fn statements_keep_working_when_an_expand_migration_adds_columns_meanwhile(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = db.migrated_store().await;
    let alice = user(&store, "alice@example.com", 4).await;
    let prices = task(&store, &alice, "prices").await;
    enqueue(&store, &prices, 5, 2).await;

    let before = read_everything(&store, &alice.email, &prices.id, &alice.id).await;
    execute_elsewhere(
        &db,
        "ALTER TABLE runs ADD COLUMN added_by_a_later_release BIGINT; \
         ALTER TABLE users ADD COLUMN added_by_a_later_release BIGINT; \
         ALTER TABLE tasks ADD COLUMN added_by_a_later_release BIGINT;",
    )
    .await;
    let after = read_everything(&store, &alice.email, &prices.id, &alice.id).await;

    // The second read sees what the first one wrote: one more run and one more task.
    assert_eq!(before.len() + 2, after.len(), "{before:?} / {after:?}");
    assert!(after.contains(&"created another".to_owned()), "{after:?}");
    assert!(after.contains(&"queued queued".to_owned()), "{after:?}");
    assert_eq!(before[0], after[0]);
    assert_eq!(after.last().map(String::as_str), Some("claimed running"));
}
