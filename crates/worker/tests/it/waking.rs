//! Waking up: an enqueue wakes an idle worker at once; maintenance mode keeps it from claiming.

use std::time::Duration;

use selextract_store::RunState;

use crate::support::{Backend, RunningWorker, TestEnv, both_backends, catalogue_spec};

both_backends!(notifying_the_waker_makes_an_idle_worker_claim_without_waiting_for_its_poll);
async fn notifying_the_waker_makes_an_idle_worker_claim_without_waiting_for_its_poll(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let mut config = env.config("worker-1");
    // Far longer than the test's own give-up time: only the waker can start this run.
    config.poll_interval = Duration::from_secs(3_600);
    let deps = env.deps();
    let waker = deps.waker.clone();
    let first = env.enqueue(&user, catalogue_spec(&env.site, 1)).await;
    let worker = RunningWorker::spawn(config, deps);
    // The first run is claimed at start; after it the queue is empty and the worker goes to
    // sleep. The pause makes sure it is asleep (without it the test could only pass more
    // easily, never fail wrongly).
    env.wait_until_finished(&first.id).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let run = env.enqueue(&user, catalogue_spec(&env.site, 1)).await;
    waker.notify_one();
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Completed);
}

both_backends!(in_maintenance_mode_the_worker_claims_nothing_until_the_flag_is_cleared);
async fn in_maintenance_mode_the_worker_claims_nothing_until_the_flag_is_cleared(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    env.store
        .set_flag(selextract_worker::MAINTENANCE_FLAG, Some("upgrading"))
        .await
        .unwrap();
    let run = env.enqueue(&user, catalogue_spec(&env.site, 1)).await;
    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());
    env.wait_for_registration("worker-1").await;

    // Several poll intervals (50 ms each) pass without a claim.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = env.store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(waiting.state, RunState::Queued);

    env.store
        .set_flag(selextract_worker::MAINTENANCE_FLAG, None)
        .await
        .unwrap();
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;
    assert_eq!(finished.state, RunState::Completed);
}
