//! A run whose worker died is re-executed by another worker without duplicates or double
//! charges.

use std::sync::Arc;

use async_trait::async_trait;
use selextract_fetch::{FetchError, FetchRequest, FetchResponse, Fetcher};
use selextract_store::testing::owned_run_unchecked;
use selextract_store::{LedgerKind, RunState};
use tokio_util::sync::CancellationToken;

use crate::support::{
    Backend, RunningWorker, TestEnv, both_backends, catalogue_spec, now_ms, product_titles, titles,
};

/// Fetches through `inner`, except catalogue pages from `hold_from_page` on, which hang
/// until the fetch is cancelled: a worker using it makes progress up to a known page and
/// then stalls, like a worker about to die.
struct StallingFetcher {
    inner: Arc<dyn Fetcher>,
    hold_from_page: u32,
}

#[async_trait]
impl Fetcher for StallingFetcher {
    async fn fetch(
        &self,
        request: &FetchRequest,
        cancel: &CancellationToken,
    ) -> Result<FetchResponse, FetchError> {
        let page = request
            .url
            .query_pairs()
            .find(|(name, _)| name == "page")
            .and_then(|(_, value)| value.parse::<u32>().ok());
        if page.is_some_and(|page| page >= self.hold_from_page) {
            cancel.cancelled().await;
            return Err(FetchError::Cancelled);
        }
        self.inner.fetch(request, cancel).await
    }
}

both_backends!(
    a_run_reexecuted_after_its_worker_died_completes_with_each_page_committed_and_charged_once
);
async fn a_run_reexecuted_after_its_worker_died_completes_with_each_page_committed_and_charged_once(
    backend: Backend,
) {
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let run = env.enqueue(&user, catalogue_spec(&env.site, 50)).await;

    // The first worker commits a page or two (the engine hands over an extracted page once
    // the next fetch returns, so page 2 may still be in hand), stalls on page 3, and is killed.
    let stalling = Arc::new(StallingFetcher {
        inner: env.http.clone(),
        hold_from_page: 3,
    });
    let doomed = RunningWorker::spawn(env.config("doomed"), env.deps_with(stalling));
    env.wait_for_run(&run.id, "a committed page", |run| {
        run.progress.pages_done >= 1
    })
    .await;
    doomed.handle.abort();
    assert!(doomed.handle.await.unwrap_err().is_cancelled());

    // Its lease runs out (simulated by asking as if a minute had passed) and the run is queued
    // again; from here on the dead worker's commits would be refused.
    let report = env
        .store
        .requeue_expired_runs(now_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(report.requeued, vec![run.id.clone()]);
    let committed_before = env
        .store
        .run_pages(
            &owned_run_unchecked(&env.store, &run.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap()
        .len();
    assert!(
        (1..=2).contains(&committed_before),
        "{committed_before} pages committed before the crash"
    );

    let rescuer = RunningWorker::spawn(env.config("rescuer"), env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    rescuer.stop().await;

    assert_eq!(finished.state, RunState::Completed);
    assert_eq!(finished.attempt, 2);
    assert_eq!(finished.progress.pages_done, 5);
    assert_eq!(finished.progress.records, 50);
    assert_eq!(finished.progress.compute_units, 5);

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
    let seqs: Vec<u64> = pages.iter().map(|page| page.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);

    let charges = env
        .store
        .ledger_entries_for_run(
            &owned_run_unchecked(&env.store, &run.id)
                .await
                .unwrap()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(charges.len(), 5);
    assert!(
        charges
            .iter()
            .all(|entry| entry.kind == LedgerKind::Charge && entry.amount == 1)
    );

    assert_eq!(
        titles(&env.exported_records(&run.id).await),
        product_titles(50)
    );
    let logs = env.log_messages(&run.id).await;
    let resuming = format!("resuming: {committed_before} pages");
    assert!(
        logs.iter().any(|line| line.starts_with(&resuming)),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|line| line == "claimed by worker rescuer (attempt 2 of 3)"),
        "{logs:?}"
    );
}
