//! A PostgreSQL outage in the middle of runs (the connection cut by a proxy, then restored):
//! workers keep their runs, retry their commits, and everything completes once the database
//! is back, with no record or charge lost or duplicated.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use selextract_fetch::{FetchError, FetchRequest, FetchResponse, Fetcher};
use selextract_store::testing::owned_run_unchecked;
use selextract_store::{LedgerKind, RunState};
use selextract_testkit::TcpCutProxy;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, RunningWorker, TestEnv, catalogue_spec, product_titles, titles};

/// Fetches through `inner`, but holds catalogue pages from `hold_from_page` on until the
/// gate opens: runs make known progress, then wait at a known point.
struct GatedFetcher {
    inner: Arc<dyn Fetcher>,
    hold_from_page: u32,
    gate: watch::Receiver<bool>,
}

#[async_trait]
impl Fetcher for GatedFetcher {
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
            let mut gate = self.gate.clone();
            tokio::select! {
                _ = gate.wait_for(|open| *open) => {}
                () = cancel.cancelled() => return Err(FetchError::Cancelled),
            }
        }
        self.inner.fetch(request, cancel).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_a_database_outage_and_complete_with_every_record_charged_once() {
    let env = TestEnv::start(Backend::Postgres).await;
    let proxy = TcpCutProxy::start(env.db.postgres_addr().unwrap())
        .await
        .unwrap();
    // The worker reaches the database only through the proxy; the test reads it directly.
    let worker_store = env.db.connect_through(Some(proxy.addr())).await.unwrap();
    let user = env.user("a@example.com", "free", 8).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(env.enqueue(&user, catalogue_spec(&env.site, 5)).await.id);
    }

    let (open_gate, gate) = watch::channel(false);
    let fetcher = Arc::new(GatedFetcher {
        inner: env.http.clone(),
        hold_from_page: 3,
        gate,
    });
    let mut deps = env.deps_with(fetcher);
    deps.store = worker_store.clone();
    let worker = RunningWorker::spawn(env.config("worker-1"), deps);

    // Every run commits its first two pages and waits for page 3: the worker is mid-run.
    for run_id in &runs {
        env.wait_for_run(run_id, "two committed pages", |run| {
            run.progress.pages_done >= 2
        })
        .await;
    }

    proxy.cut();
    let error = worker_store.ping().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    // The runs go on fetching while the database is down; their commits fail and are
    // retried. A run enqueued meanwhile (through another path) waits in the queue.
    open_gate.send_replace(true);
    runs.push(env.enqueue(&user, catalogue_spec(&env.site, 5)).await.id);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = env
        .store
        .find_run_any_user(&runs[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(during.state, RunState::Running);
    assert_eq!(
        during.progress.pages_done, 2,
        "a commit landed during the outage"
    );

    proxy.restore();
    for run_id in &runs {
        let finished = env.wait_until_finished(run_id).await;
        assert_eq!(
            (finished.state, finished.attempt),
            (RunState::Completed, 1),
            "run {run_id} did not complete on its first attempt: {finished:?}"
        );
        assert_eq!(finished.progress.pages_done, 5);
        assert_eq!(finished.progress.records, 50);
        assert_eq!(finished.progress.compute_units, 5);
        assert_eq!(
            titles(&env.exported_records(run_id).await),
            product_titles(50)
        );
        let charges = env
            .store
            .ledger_entries_for_run(
                &owned_run_unchecked(&env.store, run_id)
                    .await
                    .unwrap()
                    .unwrap(),
            )
            .await
            .unwrap();
        let keys: HashSet<&str> = charges
            .iter()
            .map(|entry| entry.idempotency_key.as_str())
            .collect();
        assert_eq!((charges.len(), keys.len()), (5, 5), "{charges:?}");
        assert!(charges.iter().all(|entry| entry.kind == LedgerKind::Charge));
    }
    worker.stop().await;
    assert!(proxy.relayed_connections() > 0);
}
