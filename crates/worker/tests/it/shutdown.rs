//! Graceful shutdown: finish within the grace period, else release back to the queue.

use std::time::Duration;

use selextract_store::RunState;

use crate::support::{Backend, RunningWorker, TestEnv, both_backends, now_ms, pages_spec};

both_backends!(
    graceful_shutdown_releases_a_long_run_back_to_the_queue_without_consuming_an_attempt
);
async fn graceful_shutdown_releases_a_long_run_back_to_the_queue_without_consuming_an_attempt(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let run = env
        .enqueue(&user, pages_spec(&[env.site.url("/slow?ms=30000")]))
        .await;
    let mut config = env.config("worker-1");
    config.grace_period = Duration::from_millis(200);
    let worker = RunningWorker::spawn(config, env.deps());

    env.wait_for_run(&run.id, "the claim", |run| run.state == RunState::Running)
        .await;
    worker.stop().await;

    let released = env.store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(released.state, RunState::Queued);
    assert_eq!(released.attempt, 0);
    assert_eq!(released.lease_owner, None);
    let live = env
        .store
        .list_live_workers(Duration::from_secs(60), now_ms())
        .await
        .unwrap();
    assert!(live.is_empty(), "the worker deregistered: {live:?}");
}

both_backends!(graceful_shutdown_lets_a_run_finish_within_the_grace_period);
async fn graceful_shutdown_lets_a_run_finish_within_the_grace_period(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let run = env
        .enqueue(&user, pages_spec(&[env.site.url("/slow?ms=500")]))
        .await;
    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());

    env.wait_for_run(&run.id, "the claim", |run| run.state == RunState::Running)
        .await;
    worker.stop().await;

    let finished = env.store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(finished.state, RunState::Completed);
    assert_eq!(finished.attempt, 1);
}
