//! A user's cancel reaches a running run within a couple of heartbeats.

use std::time::{Duration, Instant};

use selextract_store::{CancelOutcome, RunState};

use crate::support::{
    Backend, RunningWorker, TestEnv, both_backends, pages_spec, product_titles, titles,
};

both_backends!(cancelling_a_running_run_ends_it_cancelled_promptly_with_the_records_it_already_had);
async fn cancelling_a_running_run_ends_it_cancelled_promptly_with_the_records_it_already_had(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    // One fast catalogue page, then pages that each take 20 s to answer, fetched one at a time.
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
    let asked = Instant::now();
    let outcome = env.store.request_cancel(&user.id, &run.id).await.unwrap();
    assert_eq!(outcome, CancelOutcome::CancelRequested);
    let finished = env.wait_until_finished(&run.id).await;
    let took = asked.elapsed();
    worker.stop().await;

    assert_eq!(finished.state, RunState::Cancelled);
    assert_eq!(finished.reason.as_deref(), Some("cancelled_by_user"));
    // The slow page alone would have held the run for 20 s; the cancel cut it short.
    assert!(took < Duration::from_secs(10), "cancellation took {took:?}");
    assert!(
        env.site.hits("/slow") <= 1,
        "no page is requested after the cancel"
    );
    assert_eq!(finished.progress.pages_done, 1);
    assert_eq!(
        titles(&env.exported_records(&run.id).await),
        product_titles(10)
    );
    let logs = env.log_messages(&run.id).await;
    assert!(
        logs.iter()
            .any(|line| line == "finished: cancelled (cancelled_by_user)"),
        "{logs:?}"
    );
}
