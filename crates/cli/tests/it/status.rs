//! `selextract status`: workers, queue, the last hour's outcomes and today's compute units,
//! read from a data directory that a platform wrote into.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use selextract_store::{
    NewTask, NewUser, PageCommit, PageOutcome, Progress, RunState, Store, WorkerHeartbeat,
};
use serde_json::{Value, json};

use crate::support::run_ok;
use crate::support_now;

/// A data directory with one live and one long-dead worker, two queued runs, one completed
/// run (charged 3 compute units) and one failed run.
async fn busy_data_dir(dir: &Path) {
    let store = Store::connect(&format!("sqlite://{}", dir.join("selextract.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let user = store
        .create_user(NewUser {
            email: "ops@example.com".to_owned(),
            password_hash: None,
            is_admin: false,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs: 8,
        })
        .await
        .unwrap();
    let spec = json!({"name": "t", "start_urls": ["http://shop.invalid/"], "fields": []});
    let task = store
        .create_task(NewTask {
            user_id: user.id.clone(),
            name: "t".to_owned(),
            spec: spec.clone(),
            priority: 5,
        })
        .await
        .unwrap();
    for _ in 0..4 {
        store
            .enqueue_run(&user.id, &task.id, &spec, 5, 3)
            .await
            .unwrap();
    }
    let now = support_now();
    let lease = Duration::from_secs(60);
    let first = store
        .claim_next_run("w-1", lease, now)
        .await
        .unwrap()
        .unwrap();
    let second = store
        .claim_next_run("w-1", lease, now)
        .await
        .unwrap()
        .unwrap();
    store
        .commit_page(PageCommit {
            run_id: first.id.clone(),
            user_id: user.id.clone(),
            worker_id: "w-1".to_owned(),
            page_key: "s0-p0".to_owned(),
            url: "http://shop.invalid/".to_owned(),
            status: Some(200),
            outcome: PageOutcome::Ok,
            records: 0,
            bytes: 0,
            object_key: None,
            charge: 3,
            mode: "http".to_owned(),
        })
        .await
        .unwrap();
    let progress = Progress {
        pages_done: 1,
        pages_failed: 0,
        pages_known: 1,
        records: 0,
        bytes: 0,
        compute_units: 3,
    };
    for (run, state, reason) in [
        (&first, RunState::Completed, "ok"),
        (&second, RunState::Failed, "fetch_errors"),
    ] {
        assert!(
            store
                .finish_run(&run.id, "w-1", state, reason, None, &progress, now)
                .await
                .unwrap()
        );
    }
    for (id, age_ms) in [("w-1", 500), ("w-dead", 3_600_000)] {
        store
            .upsert_worker_heartbeat(&WorkerHeartbeat {
                id: id.to_owned(),
                host: "box-7".to_owned(),
                pid: 99,
                started_at_ms: now - 7_200_000,
                heartbeat_at_ms: now - age_ms,
                active_runs: 0,
                processed: 2,
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn status_json_reports_workers_queue_outcomes_and_compute_units() {
    let dir = tempfile::tempdir().unwrap();
    busy_data_dir(dir.path()).await;

    let status: Value = serde_json::from_str(&run_ok(dir.path(), &["status", "--json"])).unwrap();

    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let workers = status["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{status:#}");
    assert_eq!(workers[0]["id"], "w-1");
    assert_eq!(workers[0]["host"], "box-7");
    assert_eq!(workers[0]["processed"], 2);
    assert!(workers[0]["heartbeat_age_seconds"].as_f64().unwrap() < 30.0);
    assert!(workers[0]["uptime_seconds"].as_f64().unwrap() >= 7200.0);

    assert_eq!(status["queue"]["depth"]["queued"], 2, "{status:#}");
    assert_eq!(status["queue"]["depth"]["running"], 0);
    assert_eq!(status["queue"]["depth"]["completed"], 1);
    assert!(
        status["queue"]["oldest_queued_age_seconds"]
            .as_f64()
            .unwrap()
            >= 0.0
    );

    assert_eq!(status["last_hour"]["finished_total"], 2);
    assert_eq!(status["last_hour"]["finished"]["completed"], 1);
    assert_eq!(status["last_hour"]["finished"]["failed"], 1);
    assert_eq!(status["last_hour"]["success_rate"], 0.5);
    assert_eq!(status["compute_units_today"], 3);
}

#[tokio::test]
async fn status_without_json_prints_the_same_numbers_for_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    busy_data_dir(dir.path()).await;
    let text = run_ok(dir.path(), &["status"]);
    assert!(text.contains("Workers (1 live)"), "{text}");
    assert!(text.contains("w-1"), "{text}");
    assert!(!text.contains("w-dead"), "{text}");
    assert!(text.contains("success rate   50.0 %"), "{text}");
    assert!(text.contains("Compute units today (UTC)  3"), "{text}");
}

#[test]
fn status_on_an_empty_installation_reports_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let status: Value = serde_json::from_str(&run_ok(dir.path(), &["status", "--json"])).unwrap();
    assert_eq!(status["workers"], json!([]));
    assert_eq!(status["queue"]["depth"]["queued"], 0);
    assert!(status["queue"]["oldest_queued_age_seconds"].is_null());
    assert!(status["last_hour"]["success_rate"].is_null());
    assert_eq!(status["compute_units_today"], 0);
}

/// `selextract status | head` and the like: a reader that has gone away ends the output
/// quietly (exit 0, no panic on stderr) instead of a "failed printing to stdout" panic.
#[test]
fn printing_commands_end_quietly_when_the_reader_has_gone() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(dir.path(), &["migrate"]);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["migrate", "--status"],
        &["config", "print"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = std::process::Command::new(crate::support::binary());
        crate::support::fast_env(&mut cmd)
            .args(["--data-dir", dir.path().to_str().unwrap()])
            .args(args)
            .stdout(writer);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked"),
            "selextract {args:?}: {stderr}"
        );
        assert!(
            out.status.success(),
            "selextract {args:?} exited {:?}: {stderr}",
            out.status
        );
    }
}
