//! A run whose task is deleted while it runs: its worker notices at its next lease renewal
//! (the run row is gone), stops fetching, writes nothing more, and the sweep leaves no object.

use std::path::Path;
use std::time::Duration;

use selextract_store::testing::{owned_run_unchecked, page_and_log_rows};

use crate::support::{Backend, RunningWorker, TestEnv, both_backends, now_ms, pages_spec};

/// Files below the run's directory in the local results store.
fn files_of_run(results_dir: &Path, run_id: &str) -> usize {
    fn count(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .map(|entry| entry.unwrap().path())
            .map(|path| if path.is_dir() { count(&path) } else { 1 })
            .sum()
    }
    count(&results_dir.join("runs").join(run_id))
}

/// Waits until the worker row (written every 2 s) reports `active` runs.
async fn wait_for_active_runs(env: &TestEnv, active: u32, give_up_after: Duration) {
    let deadline = tokio::time::Instant::now() + give_up_after;
    loop {
        let workers = env
            .store
            .list_live_workers(Duration::from_secs(3_600), now_ms())
            .await
            .unwrap();
        if workers.len() == 1 && workers[0].active_runs == active {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never reported {active} active runs: {workers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

both_backends!(a_worker_abandons_a_run_whose_task_was_deleted_and_leaves_no_object);
async fn a_worker_abandons_a_run_whose_task_was_deleted_and_leaves_no_object(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    // One fast catalogue page, then pages that each take 20 s to answer, one at a time.
    let spec = pages_spec(&[
        env.site.url("/catalog?page=1"),
        env.site.url("/slow?ms=20000&n=1"),
        env.site.url("/slow?ms=20000&n=2"),
    ]);
    let run = env.enqueue(&user, spec).await;
    let mut config = env.config("worker-1");
    config.engine_concurrency = 1;
    let worker = RunningWorker::spawn(config, env.deps());
    env.wait_for_run(&run.id, "the first page", |run| {
        run.progress.pages_done >= 1
    })
    .await;
    assert_eq!(files_of_run(&env.results_dir, &run.id), 1);
    wait_for_active_runs(&env, 1, Duration::from_secs(60)).await;

    let report = env
        .store
        .delete_task(&user.id, &run.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.run_ids, vec![run.id.clone()]);

    // The worker gives the run up on its own (its renewal finds no run): without that the
    // two 20 s pages would hold it for 40 s.
    wait_for_active_runs(&env, 0, Duration::from_secs(15)).await;
    worker.stop().await;
    assert!(
        env.site.hits("/slow") <= 1,
        "no page is fetched after the deletion"
    );

    // Nothing of the run came back, and the sweep removes its object.
    assert!(
        owned_run_unchecked(&env.store, &run.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        page_and_log_rows(&env.store, &run.id).await.unwrap(),
        (0, 0)
    );
    let results = env.results.clone();
    env.store
        .sweep_result_objects(now_ms(), move |run_id| {
            let results = results.clone();
            async move { results.delete_run(&run_id).await }
        })
        .await
        .unwrap();
    assert_eq!(files_of_run(&env.results_dir, &run.id), 0);
}
