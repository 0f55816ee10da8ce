//! Per-user concurrency caps hold whatever the worker's own concurrency.

use selextract_store::{Page, RunState};

use crate::support::{Backend, RunningWorker, TestEnv, both_backends, pages_spec};

both_backends!(a_user_capped_at_one_run_never_has_two_running_even_with_four_worker_slots);
async fn a_user_capped_at_one_run_never_has_two_running_even_with_four_worker_slots(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let capped = env.user("capped@example.com", "free", 1).await;
    let other = env.user("other@example.com", "free", 8).await;
    let capped_task = env
        .task(&capped, pages_spec(&[env.site.url("/slow?ms=400")]))
        .await;
    for _ in 0..3 {
        env.enqueue_on(&capped_task).await;
    }
    let other_run = env
        .enqueue(&other, pages_spec(&[env.site.url("/slow?ms=1500")]))
        .await;

    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());
    let mut most_capped_running = 0;
    let mut most_running_overall = 0;
    loop {
        // One statement each, so every sample is a consistent snapshot of the runs.
        let capped_runs = env
            .store
            .list_runs(&capped.id, &capped_task.id, Page::new(1, 10))
            .await
            .unwrap()
            .items;
        let depth = env.store.queue_depth().await.unwrap();
        let capped_running = capped_runs
            .iter()
            .filter(|run| run.state == RunState::Running)
            .count();
        assert!(
            capped_running <= 1,
            "two runs of a user capped at one: {capped_runs:?}"
        );
        most_capped_running = most_capped_running.max(capped_running);
        most_running_overall = most_running_overall.max(depth.get("running").copied().unwrap_or(0));
        let other_done = env
            .store
            .find_run_any_user(&other_run.id)
            .await
            .unwrap()
            .unwrap()
            .state
            .is_terminal();
        if other_done && capped_runs.iter().all(|run| run.state.is_terminal()) {
            assert!(
                capped_runs
                    .iter()
                    .all(|run| run.state == RunState::Completed),
                "{capped_runs:?}"
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    worker.stop().await;

    assert_eq!(most_capped_running, 1);
    assert!(
        most_running_overall >= 2,
        "the other user's run ran beside the capped user's"
    );
}
