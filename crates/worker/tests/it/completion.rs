//! Runs that go all the way: completed, partial, and refused specs.

use std::time::Duration;

use selextract_store::testing::owned_run_unchecked;
use selextract_store::{LedgerKind, RunState};
use serde_json::json;

use crate::support::{
    Backend, RunningWorker, TestEnv, both_backends, catalogue_spec, now_ms, pages_spec,
    product_titles, titles,
};

both_backends!(
    a_five_page_catalogue_run_completes_with_every_record_in_order_and_one_charge_per_page
);
async fn a_five_page_catalogue_run_completes_with_every_record_in_order_and_one_charge_per_page(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let run = env.enqueue(&user, catalogue_spec(&env.site, 50)).await;

    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Completed);
    assert_eq!(finished.reason.as_deref(), Some("ok"));
    assert_eq!(finished.attempt, 1);
    assert_eq!(finished.progress.pages_done, 5);
    assert_eq!(finished.progress.pages_failed, 0);
    assert_eq!(finished.progress.records, 50);
    assert_eq!(finished.progress.compute_units, 5);
    assert!(finished.progress.bytes > 0);

    let pages = env
        .store
        .run_pages(
            &owned_run_unchecked(&env.store, &run.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap();
    let keys: Vec<&str> = pages.iter().map(|page| page.page_key.as_str()).collect();
    assert_eq!(keys, ["s0-p0", "s0-p1", "s0-p2", "s0-p3", "s0-p4"]);
    let offsets: Vec<u64> = pages.iter().map(|page| page.first_record).collect();
    assert_eq!(offsets, [0, 10, 20, 30, 40]);

    let records = env.exported_records(&run.id).await;
    assert_eq!(titles(&records), product_titles(50));
    assert_eq!(records[0].get("price"), Some(&json!("$11.24")));

    let ledger = env
        .store
        .ledger_entries_for_run(
            &owned_run_unchecked(&env.store, &run.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ledger.len(), 5);
    assert!(
        ledger
            .iter()
            .all(|entry| entry.kind == LedgerKind::Charge && entry.amount == 1)
    );
    assert_eq!(ledger[0].mode.as_deref(), Some("http"));

    let logs = env.log_messages(&run.id).await;
    assert!(
        logs.iter()
            .any(|line| line == "claimed by worker worker-1 (attempt 1 of 3)"),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|line| line == "finished: completed (ok)"),
        "{logs:?}"
    );
}

both_backends!(a_run_with_a_failing_page_ends_partial_with_the_good_pages_records);
async fn a_run_with_a_failing_page_ends_partial_with_the_good_pages_records(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let spec = pages_spec(&[env.site.url("/catalog?page=1"), env.site.url("/status/500")]);
    let run = env.enqueue(&user, spec).await;

    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Partial);
    assert_eq!(finished.reason.as_deref(), Some("fetch_errors"));
    assert_eq!(finished.progress.pages_done, 1);
    assert_eq!(finished.progress.pages_failed, 1);
    assert_eq!(
        titles(&env.exported_records(&run.id).await),
        product_titles(10)
    );
    let failed_page = env
        .store
        .run_pages(
            &owned_run_unchecked(&env.store, &run.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap()
        .into_iter()
        .find(|page| page.page_key == "s1-p0");
    let failed_page = failed_page.expect("the failed page is committed too");
    assert_eq!(failed_page.status, Some(500));
    assert_eq!(failed_page.object_key, None);
}

both_backends!(a_run_whose_spec_no_longer_validates_fails_with_reason_invalid_spec);
async fn a_run_whose_spec_no_longer_validates_fails_with_reason_invalid_spec(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let run = env
        .enqueue(
            &user,
            json!({"name": "broken", "start_urls": [], "no_such_key": 1}),
        )
        .await;

    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Failed);
    assert_eq!(finished.reason.as_deref(), Some("invalid_spec"));
    assert!(
        finished
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("no longer validates"),
        "{finished:?}"
    );
}

both_backends!(a_worker_registers_itself_while_running_and_deregisters_when_stopped);
async fn a_worker_registers_itself_while_running_and_deregisters_when_stopped(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let worker = RunningWorker::spawn(env.config("worker-registered"), env.deps());
    env.wait_for_registration("worker-registered").await;
    worker.stop().await;
    let live = env
        .store
        .list_live_workers(Duration::from_secs(3_600), now_ms())
        .await
        .unwrap();
    assert!(live.is_empty(), "{live:?}");
}

/// A fetcher with a bug: it panics, which kills the engine's task mid-run.
struct PanickingFetcher;

#[async_trait::async_trait]
impl selextract_fetch::Fetcher for PanickingFetcher {
    async fn fetch(
        &self,
        _request: &selextract_fetch::FetchRequest,
        _cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<selextract_fetch::FetchResponse, selextract_fetch::FetchError> {
        panic!("a bug in a fetcher");
    }
}

both_backends!(a_run_whose_engine_dies_fails_with_reason_worker_error_and_the_worker_goes_on);
async fn a_run_whose_engine_dies_fails_with_reason_worker_error_and_the_worker_goes_on(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let run = env.enqueue(&user, catalogue_spec(&env.site, 50)).await;

    let worker = RunningWorker::spawn(
        env.config("worker-1"),
        env.deps_with(std::sync::Arc::new(PanickingFetcher)),
    );
    let finished = env.wait_until_finished(&run.id).await;
    let next = env
        .enqueue(&user, json!({"name": "broken", "start_urls": []}))
        .await;
    let next = env.wait_until_finished(&next.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Failed);
    assert_eq!(finished.reason.as_deref(), Some("worker_error"));
    assert!(
        finished
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("without a summary"),
        "{finished:?}"
    );
    assert_eq!(
        next.reason.as_deref(),
        Some("invalid_spec"),
        "the worker still claims runs"
    );
}
