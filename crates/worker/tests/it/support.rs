//! Shared setup: a store (on the backend the test runs on), a result store, a fixture site and an HTTP fetcher allowed to
//! reach exactly that site; helpers to enqueue runs, start workers and wait for states.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use selextract_fetch::{Fetcher, HttpFetcher, HttpFetcherConfig};
use selextract_results::ResultStore;
use selextract_store::testing::owned_run_unchecked;
use selextract_store::{NewTask, NewUser, Plans, Run, Store, Task, User};
use selextract_testkit::FixtureSite;
use selextract_worker::{WorkerConfig, WorkerDeps, run_worker};
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for any wait in these tests: only reached when the behaviour under test is
/// broken, never a speed requirement.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

pub use selextract_store::testing::{Backend, TestDatabase};

/// The one `both_backends!` of every crate's suites (`selextract_store::testing`): a
/// two-thread runtime, or `both_backends!(name, current_thread)`.
pub(crate) use selextract_store::both_backends;

pub struct TestEnv {
    pub store: Store,
    pub results: ResultStore,
    pub site: FixtureSite,
    pub http: Arc<dyn Fetcher>,
    pub db: TestDatabase,
    /// The local directory behind `results`, for tests that count stored objects.
    pub results_dir: std::path::PathBuf,
    _dir: TempDir,
}

impl TestEnv {
    pub async fn start(backend: Backend) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::create(backend).await;
        let store = db.migrated_store().await;
        let results_dir = dir.path().join("results");
        let results = ResultStore::local(&results_dir).unwrap();
        let site = FixtureSite::start().await;
        let http = HttpFetcher::new(HttpFetcherConfig {
            allowed_private_addrs: vec![site.addr()],
            ..HttpFetcherConfig::default()
        })
        .unwrap();
        TestEnv {
            store,
            results,
            site,
            http: Arc::new(http),
            db,
            results_dir,
            _dir: dir,
        }
    }

    pub async fn user(&self, email: &str, plan: &str, max_concurrent_runs: u32) -> User {
        self.store
            .create_user(NewUser {
                email: email.to_owned(),
                password_hash: None,
                is_admin: false,
                plan: plan.to_owned(),
                max_concurrent_runs,
            })
            .await
            .unwrap()
    }

    pub async fn task(&self, user: &User, spec: Value) -> Task {
        self.store
            .create_task(NewTask {
                user_id: user.id.clone(),
                name: "test".to_owned(),
                spec,
                priority: 5,
            })
            .await
            .unwrap()
    }

    /// Enqueues one more run of `task` (at most 3 attempts).
    pub async fn enqueue_on(&self, task: &Task) -> Run {
        self.store
            .enqueue_run(&task.user_id, &task.id, &task.spec, 5, 3)
            .await
            .unwrap()
    }

    /// Creates a task with `spec` and enqueues one run of it.
    pub async fn enqueue(&self, user: &User, spec: Value) -> Run {
        let task = self.task(user, spec).await;
        self.enqueue_on(&task).await
    }

    pub fn deps(&self) -> WorkerDeps {
        self.deps_with(self.http.clone())
    }

    pub fn deps_with(&self, http: Arc<dyn Fetcher>) -> WorkerDeps {
        WorkerDeps {
            store: self.store.clone(),
            results: self.results.clone(),
            http,
            browser: None,
            waker: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Fast heartbeats and polls so tests do not wait on production intervals.
    pub fn config(&self, worker_id: &str) -> WorkerConfig {
        WorkerConfig {
            worker_id: worker_id.to_owned(),
            host: "test-host".to_owned(),
            concurrency: 4,
            lease: Duration::from_secs(30),
            heartbeat_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(50),
            grace_period: Duration::from_secs(10),
            engine_concurrency: 8,
            rates: Default::default(),
            plans: Plans::default(),
            ..WorkerConfig::default()
        }
    }

    /// Polls the run until `done` holds for it.
    pub async fn wait_for_run(&self, run_id: &str, what: &str, done: impl Fn(&Run) -> bool) -> Run {
        let deadline = tokio::time::Instant::now() + GIVE_UP_AFTER;
        loop {
            let run = self
                .store
                .find_run_any_user(run_id)
                .await
                .unwrap()
                .expect("the run exists");
            if done(&run) {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gave up waiting for {what}; run is {run:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the worker's row exists (it registers before its first claim).
    pub async fn wait_for_registration(&self, worker_id: &str) {
        let deadline = tokio::time::Instant::now() + GIVE_UP_AFTER;
        loop {
            let live = self
                .store
                .list_live_workers(Duration::from_secs(3_600), now_ms())
                .await
                .unwrap();
            if live.iter().any(|worker| worker.id == worker_id) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker {worker_id} never registered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_until_finished(&self, run_id: &str) -> Run {
        self.wait_for_run(run_id, "a terminal state", |run| run.state.is_terminal())
            .await
    }

    /// Every record of the run, in commit order, as an export would read them.
    pub async fn exported_records(&self, run_id: &str) -> Vec<Map<String, Value>> {
        let keys: Vec<String> = self
            .store
            .run_pages(
                &owned_run_unchecked(&self.store, run_id)
                    .await
                    .unwrap()
                    .unwrap(),
            )
            .await
            .unwrap()
            .into_iter()
            .filter_map(|page| page.object_key)
            .collect();
        self.results
            .stream_records(keys)
            .try_collect()
            .await
            .unwrap()
    }

    pub async fn log_messages(&self, run_id: &str) -> Vec<String> {
        let page = selextract_store::Page::new(1, 100);
        let logs = self
            .store
            .list_run_logs(
                &owned_run_unchecked(&self.store, run_id)
                    .await
                    .unwrap()
                    .unwrap(),
                page,
            )
            .await
            .unwrap();
        logs.items.into_iter().map(|line| line.message).collect()
    }
}

/// A running worker and the means to stop it.
pub struct RunningWorker {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    pub fn spawn(config: WorkerConfig, deps: WorkerDeps) -> RunningWorker {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run_worker(config, deps, shutdown.clone()));
        RunningWorker { shutdown, handle }
    }

    /// Graceful stop; the worker's own result must be Ok.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(GIVE_UP_AFTER, self.handle)
            .await
            .expect("the worker stops");
        result.unwrap().unwrap();
    }
}

/// The fixture catalogue from page 1, following `a.next` for up to `max_pages` pages.
pub fn catalogue_spec(site: &FixtureSite, max_pages: u32) -> Value {
    json!({
        "name": "catalogue",
        "start_urls": [site.url("/catalog?page=1")],
        "mode": "http",
        "item_selector": "div.product",
        "fields": [
            {"name": "title", "selector": "h2 a", "type": "text"},
            {"name": "price", "selector": ".price", "type": "text"}
        ],
        "pagination": {"next_selector": "a.next", "max_pages": max_pages},
        "max_retries": 0
    })
}

/// A spec over explicit start URLs (one page each), fetched one at a time.
pub fn pages_spec(urls: &[String]) -> Value {
    json!({
        "name": "pages",
        "start_urls": urls,
        "mode": "http",
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2 a", "type": "text"}],
        "max_retries": 0
    })
}

/// `Product 1` … `Product n`.
pub fn product_titles(n: usize) -> Vec<String> {
    (1..=n).map(|id| format!("Product {id}")).collect()
}

pub fn titles(records: &[Map<String, Value>]) -> Vec<String> {
    records
        .iter()
        .map(|record| {
            record
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}
