//! Monitors (issue 12): a completed run of a task with a `schedule` is compared with the
//! previous completed run and finishes with its change summary; computing the summary again
//! (a re-execution) gives the same result; a change-detection failure is logged on the run,
//! which still completes (without a summary).

use selextract_changes::{ChangeKind, ChangeOptions, detect_changes, read_detail};
use selextract_spec::TaskSpec;
use selextract_store::RunState;
use serde_json::Value;

use crate::support::{Backend, RunningWorker, TestEnv, both_backends, catalogue_spec};

fn monitor_spec(env: &TestEnv) -> Value {
    let mut spec = catalogue_spec(&env.site, 2);
    spec["schedule"] = serde_json::json!({"cron": "0 0 1 1 *", "key_field": "title"});
    spec
}

both_backends!(a_monitors_second_run_finishes_with_its_summary_and_recomputing_it_gives_the_same);
async fn a_monitors_second_run_finishes_with_its_summary_and_recomputing_it_gives_the_same(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let task = env.task(&user, monitor_spec(&env)).await;
    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());
    let first = env.enqueue_on(&task).await;
    let first = env.wait_until_finished(&first.id).await;
    let second = env.enqueue_on(&task).await;
    let second = env.wait_until_finished(&second.id).await;
    worker.stop().await;
    assert_eq!(
        (first.state, second.state),
        (RunState::Completed, RunState::Completed)
    );

    let baseline = env
        .store
        .run_changes_any_user(&first.id)
        .await
        .unwrap()
        .expect("baseline summary");
    assert_eq!(
        (
            baseline.previous_run_id.as_deref(),
            baseline.added,
            baseline.passed_threshold
        ),
        (None, 20, false)
    );
    let summary = env
        .store
        .run_changes_any_user(&second.id)
        .await
        .unwrap()
        .expect("summary");
    assert_eq!(summary.previous_run_id.as_deref(), Some(first.id.as_str()));
    assert_eq!(
        (
            summary.added,
            summary.removed,
            summary.changed,
            summary.unchanged
        ),
        (0, 0, 0, 20)
    );
    assert!(!summary.passed_threshold);
    let logs = env.log_messages(&second.id).await;
    assert!(
        logs.iter()
            .any(|line| line == "changes: 0 added, 0 removed, 0 changed"),
        "{logs:?}"
    );

    // A re-execution computes the same summary and the same detail from the same objects.
    let spec: TaskSpec = serde_json::from_value(monitor_spec(&env)).unwrap();
    let again = detect_changes(
        &env.results,
        &env.store,
        &first,
        &spec,
        &ChangeOptions::default(),
        baseline.created_at_ms,
    )
    .await
    .unwrap();
    assert_eq!(again, baseline);
    let before = read_detail(&env.results, &baseline, Some(ChangeKind::Added), 0, 500)
        .await
        .unwrap();
    assert_eq!(before.items.len(), 20);
    let recomputed = detect_changes(
        &env.results,
        &env.store,
        &second,
        &spec,
        &ChangeOptions::default(),
        summary.created_at_ms,
    )
    .await
    .unwrap();
    assert_eq!(recomputed, summary);
}

both_backends!(a_change_detection_failure_is_logged_and_the_run_completes_without_a_summary);
async fn a_change_detection_failure_is_logged_and_the_run_completes_without_a_summary(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let task = env.task(&user, monitor_spec(&env)).await;
    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());
    let first = env.enqueue_on(&task).await;
    env.wait_until_finished(&first.id).await;
    // The previous run's snapshot disappears (a store emptied by hand, say).
    std::fs::remove_dir_all(env.results_dir.join("runs").join(&first.id).join("changes")).unwrap();
    let second = env.enqueue_on(&task).await;
    let second = env.wait_until_finished(&second.id).await;
    worker.stop().await;

    assert_eq!(second.state, RunState::Completed);
    assert_eq!(second.progress.records, 20);
    assert!(
        env.store
            .run_changes_any_user(&second.id)
            .await
            .unwrap()
            .is_none()
    );
    let logs = env.log_messages(&second.id).await;
    assert!(
        logs.iter()
            .any(|line| line.starts_with("change detection failed: ")),
        "{logs:?}"
    );
}
