//! Deleting for real through the API: a task, a run and an account take their rows and their
//! stored result objects with them — counted on disk (and in S3) before and after — and
//! never anything of another user's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use selextract_fetch::HttpFetcherConfig;
use selextract_results::ResultStore;
use selextract_server::ServerConfig;
use selextract_store::testing::{ledger_entries_of_run_id, page_and_log_rows, rows_naming_user};
use selextract_store::{
    LATE_WRITE_GRACE_MS, LogLine, PageCommit, PageOutcome, Progress, RunState, Store,
};
use selextract_testkit::TestS3;
use serde_json::{Map, Value, json};

use crate::login_support::{PASSWORD, accounts_config, token_login, user_with_password};
use crate::support::{
    TestApp, TestDatabase, TestUser, both_backends, current_backend, request, send_via,
};

const LEASE: Duration = Duration::from_secs(60);

/// A test app whose local results directory the test can count files in.
async fn app_with_results_dir(config: ServerConfig) -> (TestApp, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let results_dir = dir.path().join("results");
    let db = TestDatabase::create(current_backend()).await;
    let store = db.migrated_store().await;
    let app = TestApp::build_on(db, store, dir, config, HttpFetcherConfig::default());
    (app, results_dir)
}

/// Regular files below `dir` (the page objects of every run), as paths relative to it.
fn stored_files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, found);
            } else {
                found.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

fn files_of_run(files: &[String], run_id: &str) -> usize {
    let prefix = format!("runs/{run_id}/");
    files
        .iter()
        .filter(|file| file.starts_with(&prefix))
        .count()
}

fn record(n: u64) -> Map<String, Value> {
    json!({"title": format!("Item {n} — ünïcode \"quoted\""), "n": n})
        .as_object()
        .cloned()
        .unwrap()
}

/// Claims `run_id` (the only queued run) as `worker` and commits `pages` pages of two
/// records each, their objects in `results`, with a log line per page. Leaves it running.
async fn run_with_pages(
    store: &Store,
    results: &ResultStore,
    user_id: &str,
    run_id: &str,
    worker: &str,
    pages: u64,
) {
    let now = chrono::Utc::now().timestamp_millis();
    let claimed = store
        .claim_next_run(worker, LEASE, now)
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(
        claimed.id, run_id,
        "the test's runs are claimed one at a time"
    );
    for page in 0..pages {
        let key = format!("p{page}");
        let object = results
            .put_page(run_id, &key, &[record(2 * page), record(2 * page + 1)])
            .await
            .unwrap();
        store
            .commit_page(PageCommit {
                run_id: run_id.to_owned(),
                user_id: user_id.to_owned(),
                worker_id: worker.to_owned(),
                page_key: key.clone(),
                url: format!("https://shop.example/{key}"),
                status: Some(200),
                outcome: PageOutcome::Ok,
                records: 2,
                bytes: object.bytes,
                object_key: Some(object.key),
                charge: 1,
                mode: "http".to_owned(),
            })
            .await
            .unwrap();
        store
            .append_run_logs(
                run_id,
                &[LogLine {
                    ts_ms: now,
                    level: "info".to_owned(),
                    message: format!("page {page}"),
                    fields: Value::Null,
                }],
            )
            .await
            .unwrap();
    }
}

async fn finish(store: &Store, run_id: &str, worker: &str) {
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        store
            .finish_run(
                run_id,
                worker,
                RunState::Completed,
                "ok",
                None,
                &Progress::default(),
                now
            )
            .await
            .unwrap()
    );
}

/// A task of `user`'s with one finished run of `pages` pages; returns (task id, run id).
async fn finished_task(app: &TestApp, user: &TestUser, name: &str, pages: u64) -> (String, String) {
    let (task_id, run_id) = app.started_task(&user.key, name).await;
    run_with_pages(&app.store, &app.results, &user.id, &run_id, "w", pages).await;
    finish(&app.store, &run_id, "w").await;
    (task_id, run_id)
}

/// Another finished run of the task, of `pages` pages.
async fn another_finished_run(app: &TestApp, user: &TestUser, task_id: &str, pages: u64) -> String {
    let response = app
        .post(
            &format!("/api/v1/tasks/{task_id}/runs"),
            &user.key,
            json!({}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let run_id = response.json()["id"].as_str().unwrap().to_owned();
    run_with_pages(&app.store, &app.results, &user.id, &run_id, "w", pages).await;
    finish(&app.store, &run_id, "w").await;
    run_id
}

async fn delete(app: &TestApp, path: &str, key: &str) -> crate::support::TestResponse {
    app.call(Method::DELETE, path, Some(key), None).await
}

/// Every way a user reads a run answers 404.
async fn assert_run_gone(app: &TestApp, key: &str, run_id: &str) {
    for suffix in ["", "/records", "/logs", "/results"] {
        let response = app
            .get(&format!("/api/v1/runs/{run_id}{suffix}"), key)
            .await;
        response.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

both_backends!(deleting_a_task_removes_its_runs_logs_records_and_stored_objects);
async fn deleting_a_task_removes_its_runs_logs_records_and_stored_objects() {
    let (app, dir) = app_with_results_dir(ServerConfig::default()).await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (doomed, first) = finished_task(&app, &alice, "doomed", 2).await;
    let second = another_finished_run(&app, &alice, &doomed, 3).await;
    let (kept_task, kept_run) = finished_task(&app, &alice, "kept", 1).await;
    let (_, bobs_run) = finished_task(&app, &bob, "bob's", 2).await;
    let files = stored_files(&dir);
    assert_eq!(files.len(), 2 + 3 + 1 + 2, "{files:?}");
    let balance = app.store.compute_unit_balance(&alice.id).await.unwrap();

    // Bob cannot delete it, whatever the spelling; nothing moves.
    for path in [
        format!("/api/v1/tasks/{doomed}"),
        "/api/v1/tasks/no-such-task".to_owned(),
        "/api/v1/tasks/%27%20OR%201%3D1%20--".to_owned(),
    ] {
        delete(&app, &path, &bob.key)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(stored_files(&dir), files);

    let response = delete(&app, &format!("/api/v1/tasks/{doomed}"), &alice.key).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    let after = stored_files(&dir);
    assert_eq!(after.len(), 1 + 2, "{after:?}");
    assert_eq!(files_of_run(&after, &first), 0);
    assert_eq!(files_of_run(&after, &second), 0);
    assert_eq!(files_of_run(&after, &kept_run), 1);
    assert_eq!(files_of_run(&after, &bobs_run), 2);
    for run_id in [&first, &second] {
        assert_run_gone(&app, &alice.key, run_id).await;
        assert_eq!(page_and_log_rows(&app.store, run_id).await.unwrap(), (0, 0));
    }
    app.get(&format!("/api/v1/tasks/{doomed}"), &alice.key)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    delete(&app, &format!("/api/v1/tasks/{doomed}"), &alice.key)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    // The charges stay: they are the accounting record.
    assert_eq!(
        app.store.compute_unit_balance(&alice.id).await.unwrap(),
        balance
    );
    // The other task's records still read.
    let records = app
        .get(&format!("/api/v1/runs/{kept_run}/records"), &alice.key)
        .await;
    assert_eq!(records.status, StatusCode::OK, "{}", records.text());
    assert_eq!(records.json()["items"].as_array().unwrap().len(), 2);
    let listed = app.get("/api/v1/tasks", &alice.key).await.json();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![kept_task.as_str()]);
}

both_backends!(deleting_a_run_needs_it_finished_and_removes_only_its_objects);
async fn deleting_a_run_needs_it_finished_and_removes_only_its_objects() {
    let (app, dir) = app_with_results_dir(ServerConfig::default()).await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (task_id, kept) = finished_task(&app, &alice, "books", 2).await;
    let response = app
        .post(
            &format!("/api/v1/tasks/{task_id}/runs"),
            &alice.key,
            json!({}),
        )
        .await;
    let running = response.json()["id"].as_str().unwrap().to_owned();

    // Queued, then running: refused until it has finished.
    delete(&app, &format!("/api/v1/runs/{running}"), &alice.key)
        .await
        .assert_error(StatusCode::CONFLICT, "run_active");
    run_with_pages(&app.store, &app.results, &alice.id, &running, "w", 3).await;
    let files = stored_files(&dir);
    assert_eq!(files.len(), 5, "{files:?}");
    delete(&app, &format!("/api/v1/runs/{running}"), &alice.key)
        .await
        .assert_error(StatusCode::CONFLICT, "run_active");
    // Another user's run is not found, finished or not.
    for run_id in [&running, &kept] {
        delete(&app, &format!("/api/v1/runs/{run_id}"), &bob.key)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(stored_files(&dir), files);

    finish(&app.store, &running, "w").await;
    let response = delete(&app, &format!("/api/v1/runs/{running}"), &alice.key).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    let after = stored_files(&dir);
    assert_eq!(files_of_run(&after, &running), 0, "{after:?}");
    assert_eq!(files_of_run(&after, &kept), 2, "{after:?}");
    assert_run_gone(&app, &alice.key, &running).await;
    delete(&app, &format!("/api/v1/runs/{running}"), &alice.key)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    // The task and its other run are untouched.
    let runs = app
        .get(&format!("/api/v1/tasks/{task_id}/runs"), &alice.key)
        .await
        .json();
    assert_eq!(runs["total_count"], 1);
    assert_eq!(runs["items"][0]["id"], kept.as_str());
}

both_backends!(a_page_written_after_its_run_was_deleted_is_swept_later);
async fn a_page_written_after_its_run_was_deleted_is_swept_later() {
    let (app, dir) = app_with_results_dir(ServerConfig::default()).await;
    let alice = app.user("alice@example.com").await;
    let (task_id, run_id) = app.started_task(&alice.key, "busy").await;
    run_with_pages(&app.store, &app.results, &alice.id, &run_id, "w", 1).await;
    let response = delete(&app, &format!("/api/v1/tasks/{task_id}"), &alice.key).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert!(stored_files(&dir).is_empty());

    // The worker had one more page on its way: the object lands, its commit is refused.
    let late = app
        .results
        .put_page(&run_id, "late", &[record(9)])
        .await
        .unwrap();
    let outcome = app
        .store
        .commit_page(PageCommit {
            run_id: run_id.clone(),
            user_id: alice.id.clone(),
            worker_id: "w".to_owned(),
            page_key: "late".to_owned(),
            url: "https://shop.example/late".to_owned(),
            status: Some(200),
            outcome: PageOutcome::Ok,
            records: 1,
            bytes: late.bytes,
            object_key: Some(late.key),
            charge: 1,
            mode: "http".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(outcome, selextract_store::CommitOutcome::LeaseLost);
    assert_eq!(stored_files(&dir).len(), 1);

    // A sweep now leaves it (the second sweep is not due); the one after the grace period
    // removes it and the run's removal entry with it.
    let results = app.results.clone();
    let sweep = |now: i64| {
        let results = results.clone();
        let store = app.store.clone();
        async move {
            store
                .sweep_result_objects(now, move |run_id| {
                    let results = results.clone();
                    async move { results.delete_run(&run_id).await }
                })
                .await
                .unwrap()
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(sweep(now).await.removed, 0);
    assert_eq!(stored_files(&dir).len(), 1);
    let later = now + LATE_WRITE_GRACE_MS + 1;
    assert_eq!(sweep(later).await.removed, 1);
    assert!(stored_files(&dir).is_empty());
    assert_eq!(app.store.pending_object_deletions(later).await.unwrap(), 0);
}

both_backends!(deleting_a_task_removes_its_objects_from_s3);
async fn deleting_a_task_removes_its_objects_from_s3() {
    let s3 = TestS3::start();
    s3.create_bucket("results");
    let options = s3.options();
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let results = ResultStore::from_url_with_options("s3://results/selextract", &options).unwrap();
    let app = TestApp::new().await;
    let mut state = app.state.clone();
    state.results = results.clone();
    let router = selextract_server::router(state);
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;

    let mut runs = Vec::new();
    for (user, pages) in [(&alice, 3), (&bob, 2)] {
        let (task_id, run_id) = app.started_task(&user.key, "s3").await;
        run_with_pages(&app.store, &results, &user.id, &run_id, "w", pages).await;
        finish(&app.store, &run_id, "w").await;
        runs.push((task_id, run_id));
    }
    let count = |run_id: &str| {
        s3.list_keys("results", &format!("selextract/runs/{run_id}/"))
            .len()
    };
    assert_eq!((count(&runs[0].1), count(&runs[1].1)), (3, 2));

    let path = format!("/api/v1/tasks/{}", runs[0].0);
    let response = send_via(
        &router,
        request(Method::DELETE, &path, Some(&bob.key), None),
    )
    .await;
    response.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!((count(&runs[0].1), count(&runs[1].1)), (3, 2));
    let response = send_via(
        &router,
        request(Method::DELETE, &path, Some(&alice.key), None),
    )
    .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    assert_eq!((count(&runs[0].1), count(&runs[1].1)), (0, 2));
    assert_eq!(s3.list_keys("results", "selextract/").len(), 2);
}

both_backends!(an_account_deletion_removes_its_rows_and_objects_and_keeps_the_ledger_anonymised);
async fn an_account_deletion_removes_its_rows_and_objects_and_keeps_the_ledger_anonymised() {
    let (app, dir) = app_with_results_dir(accounts_config()).await;
    let alice_id = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let alice = TestUser {
        key: app
            .key_for(&alice_id, crate::support::ALL_SCOPES, None)
            .await,
        id: alice_id,
    };
    let bob = app.user("bob@example.com").await;
    let (alice_task, alice_first) = finished_task(&app, &alice, "a1", 2).await;
    let alice_second = another_finished_run(&app, &alice, &alice_task, 1).await;
    let (_, bobs_run) = finished_task(&app, &bob, "b1", 2).await;
    assert_eq!(stored_files(&dir).len(), 5);
    let (access, _refresh) = token_login(&app, "alice@example.com", PASSWORD).await;
    let bob_rows = rows_naming_user(&app.store, &bob.id).await.unwrap();
    let alice_ledger = rows_naming_user(&app.store, &alice.id).await.unwrap()["ledger"];
    assert!(alice_ledger >= 3, "{alice_ledger}");

    // The wrong password deletes nothing.
    let refused = app
        .call(
            Method::DELETE,
            "/api/v1/auth/account",
            Some(&access),
            Some(json!({"password": "wrong"})),
        )
        .await;
    assert!(refused.status.is_client_error(), "{}", refused.text());
    assert_eq!(stored_files(&dir).len(), 5);

    let response = app
        .call(
            Method::DELETE,
            "/api/v1/auth/account",
            Some(&access),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );

    // Alice's objects are gone, Bob's are all there.
    let after = stored_files(&dir);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(files_of_run(&after, &bobs_run), 2);
    for run_id in [&alice_first, &alice_second] {
        assert_eq!(files_of_run(&after, run_id), 0);
        assert_eq!(page_and_log_rows(&app.store, run_id).await.unwrap(), (0, 0));
    }
    // No row names Alice, except what the audit log keeps about the deletion itself.
    let rows = rows_naming_user(&app.store, &alice.id).await.unwrap();
    let left: Vec<_> = rows
        .iter()
        .filter(|(table, n)| **n > 0 && table.as_str() != "audit_log")
        .collect();
    assert!(left.is_empty(), "rows left for the deleted user: {left:?}");
    assert_eq!(
        rows_naming_user(&app.store, &bob.id).await.unwrap(),
        bob_rows
    );
    // Her key and her token stop working.
    app.get("/api/v1/tasks", &alice.key)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.get("/api/v1/tasks", &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Bob still reads his records.
    let records = app
        .get(&format!("/api/v1/runs/{bobs_run}/records"), &bob.key)
        .await;
    assert_eq!(records.status, StatusCode::OK, "{}", records.text());

    // The ledger keeps Alice's entries under one `deleted:` id.
    let entries = ledger_entries_of_run_id(&app.store, &alice_first)
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    let anonymised = entries[0].user_id.clone();
    assert!(anonymised.starts_with("deleted:"), "{anonymised}");
    assert!(entries.iter().all(|entry| entry.user_id == anonymised));
    assert_eq!(
        rows_naming_user(&app.store, &anonymised).await.unwrap()["ledger"],
        alice_ledger
    );
}

async fn delete_own_account(app: &TestApp, access: &str) -> crate::support::TestResponse {
    app.call(
        Method::DELETE,
        "/api/v1/auth/account",
        Some(access),
        Some(json!({"password": PASSWORD})),
    )
    .await
}

both_backends!(the_last_enabled_administrator_cannot_delete_their_account);
async fn the_last_enabled_administrator_cannot_delete_their_account() {
    let app = TestApp::with_config(accounts_config()).await;
    let root = user_with_password(&app, "root@example.com", PASSWORD).await;
    app.store.set_user_admin(&root, true).await.unwrap();
    let (access, _) = token_login(&app, "root@example.com", PASSWORD).await;

    let body = delete_own_account(&app, &access)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("last enabled administrator"),
        "{body}"
    );
    assert!(app.store.find_user_by_id(&root).await.unwrap().is_some());
    assert_eq!(
        app.get("/api/v1/tasks", &access).await.status,
        StatusCode::OK
    );

    // Once another user is an enabled administrator, the first may go.
    let bob = user_with_password(&app, "bob@example.com", PASSWORD).await;
    app.store.set_user_admin(&bob, true).await.unwrap();
    let response = delete_own_account(&app, &access).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );
    assert!(app.store.find_user_by_id(&root).await.unwrap().is_none());
    // Bob is now the last one.
    let (bobs, _) = token_login(&app, "bob@example.com", PASSWORD).await;
    delete_own_account(&app, &bobs)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
}

both_backends!(a_deleted_accounts_audit_entries_keep_no_id_email_or_address);
async fn a_deleted_accounts_audit_entries_keep_no_id_email_or_address() {
    let app = TestApp::with_config(accounts_config()).await;
    let alice = user_with_password(&app, "alice@example.com", PASSWORD).await;
    let bob = user_with_password(&app, "bob@example.com", PASSWORD).await;
    let (access, _) = token_login(&app, "alice@example.com", PASSWORD).await;
    let _ = token_login(&app, "bob@example.com", PASSWORD).await;
    let all = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            store
                .list_audit(&selextract_store::AuditFilter {
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let bobs_before: Vec<_> = all(&app)
        .await
        .into_iter()
        .filter(|r| r.user_id.as_deref() == Some(bob.as_str()))
        .collect();
    assert!(!bobs_before.is_empty());
    let alices_before = all(&app)
        .await
        .iter()
        .filter(|r| r.user_id.as_deref() == Some(alice.as_str()))
        .count();
    assert!(alices_before > 0);

    let response = delete_own_account(&app, &access).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{}",
        response.text()
    );

    let after = all(&app).await;
    for record in &after {
        let text = format!("{record:?}");
        assert!(!text.contains("alice@example.com"), "{text}");
        assert!(!text.contains(alice.as_str()), "{text}");
    }
    let deleted: Vec<_> = after
        .iter()
        .filter(|r| r.event == "account_deleted" && r.ip.is_none())
        .filter(|r| {
            r.user_id
                .as_deref()
                .is_some_and(|u| u.starts_with("deleted:"))
        })
        .collect();
    assert_eq!(deleted.len(), 1, "{after:?}");
    let anonymous = deleted[0].user_id.clone().unwrap();
    assert_eq!(deleted[0].actor.as_deref(), Some(anonymous.as_str()));
    // Her earlier entries are kept under the same anonymous id, without address or e-mail.
    let kept: Vec<_> = after
        .iter()
        .filter(|r| r.user_id.as_deref() == Some(anonymous.as_str()))
        .collect();
    assert_eq!(kept.len(), alices_before + 1, "{after:?}");
    assert!(kept.iter().all(|r| r.ip.is_none()));
    // Bob's are untouched.
    let bobs_after: Vec<_> = after
        .iter()
        .filter(|r| r.user_id.as_deref() == Some(bob.as_str()))
        .cloned()
        .collect();
    assert_eq!(bobs_after, bobs_before);
}
