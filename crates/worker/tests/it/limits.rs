//! The worker validates a run's saved spec against the installation's configured limits
//! (`WorkerConfig::limits`), the same numbers the API accepted the task with, and the engine
//! enforces their run-time bounds (`max_run_seconds`).

use std::collections::BTreeMap;

use selextract_spec::Limits;
use selextract_store::{Plan, Plans, RunState};
use serde_json::{Value, json};

use crate::support::{Backend, RunningWorker, TestEnv, both_backends};

/// One more start URL than the default `max_start_urls` allows.
fn spec_past_the_default_start_url_limit(env: &TestEnv) -> Value {
    let urls: Vec<String> = (0..=Limits::default().max_start_urls)
        .map(|n| env.site.url(&format!("/catalog?page=1&n={n}")))
        .collect();
    json!({
        "start_urls": urls,
        "mode": "http",
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2 a"}],
        "max_retries": 0
    })
}

/// A plan of three compute units, so that a run over thousands of start URLs stops after
/// three pages instead of fetching them all.
fn plans_with_a_three_unit_plan() -> Plans {
    let mut plans: BTreeMap<String, Plan> = Plans::default().plans;
    plans.insert(
        "tiny".to_owned(),
        Plan {
            monthly_compute_units: Some(3),
            max_concurrent_runs: 1,
            price_cents: 0,
            overage_compute_units: 0,
            rate_limit_per_minute: None,
        },
    );
    Plans {
        billing_enabled: true,
        default_plan: "self-hosted".to_owned(),
        plans,
        lemon_squeezy: Default::default(),
    }
}

both_backends!(with_raised_start_url_limits_a_task_past_the_default_runs_instead_of_failing);
async fn with_raised_start_url_limits_a_task_past_the_default_runs_instead_of_failing(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("big@example.com", "tiny", 1).await;
    assert!(
        env.store
            .grant_compute_units(&user.id, 3, "grant:test")
            .await
            .unwrap()
    );
    let run = env
        .enqueue(&user, spec_past_the_default_start_url_limit(&env))
        .await;

    let mut config = env.config("worker-1");
    config.plans = plans_with_a_three_unit_plan();
    config.limits = Limits {
        max_start_urls: 20_000,
        ..Limits::default()
    };
    let worker = RunningWorker::spawn(config, env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    // Not `{finished:?}`: the run holds ten thousand start URLs.
    assert_eq!(finished.state, RunState::Partial, "{:?}", finished.reason);
    assert_eq!(
        finished.reason.as_deref(),
        Some("insufficient_compute_units")
    );
    assert_eq!(finished.progress.pages_done, 3);
}

both_backends!(with_default_limits_the_same_task_fails_as_an_invalid_spec);
async fn with_default_limits_the_same_task_fails_as_an_invalid_spec(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let user = env.user("big@example.com", "tiny", 1).await;
    let run = env
        .enqueue(&user, spec_past_the_default_start_url_limit(&env))
        .await;

    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Failed);
    assert_eq!(finished.reason.as_deref(), Some("invalid_spec"));
    assert_eq!(env.site.hits("/catalog"), 0);
}

both_backends!(the_configured_run_time_limit_ends_a_run_that_outlasts_it_with_time_limit);
async fn the_configured_run_time_limit_ends_a_run_that_outlasts_it_with_time_limit(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("slow@example.com", "free", 1).await;
    // The page would answer after a minute; the run may last one second.
    let spec = json!({
        "start_urls": [env.site.url("/slow?ms=60000")],
        "mode": "http",
        "fields": [{"name": "title", "selector": "title"}],
        "max_retries": 0
    });
    let run = env.enqueue(&user, spec).await;

    let mut config = env.config("worker-1");
    config.limits = Limits {
        max_run_seconds: 1,
        ..Limits::default()
    };
    let worker = RunningWorker::spawn(config, env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Failed);
    assert_eq!(finished.reason.as_deref(), Some("time_limit"));
    assert_eq!(finished.progress.compute_units, 0);
    assert!(
        env.log_messages(&run.id)
            .await
            .iter()
            .any(|line| line == "the run reached its time limit of 1 s; fetching stops")
    );
}
