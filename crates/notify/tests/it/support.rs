//! Receivers, a store with a user and a monitored task, and running the loop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use selextract_fetch::guard::NameResolver;
use selextract_mail::Mailer;
use selextract_notify::{NotifyConfig, NotifyDeps, RunEventInput, deliveries_for_run};
use selextract_spec::TaskSpec;
use selextract_store::{
    Delivery, DeliveryFilter, NewTask, NewUser, Progress, RunChanges, RunState, Store, Task, User,
};
use tokio_util::sync::CancellationToken;

/// Only reached when something is broken; not a speed requirement.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// How a receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// Always this status.
    Always(u16),
    /// Never answers.
    Hang,
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was answered with (`None`: never answered).
    pub answered: Option<u16>,
}

impl Hit {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP receiver on 127.0.0.1:0 recording every request. Stopped when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let recorded = hits.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let hits = recorded.clone();
            let seen = seen.clone();
            async move {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let status = match behaviour {
                    Behaviour::FailFirst(failures) if n < failures => Some(500),
                    Behaviour::FailFirst(_) => Some(200),
                    Behaviour::Always(status) => Some(status),
                    Behaviour::Hang => None,
                };
                hits.lock().unwrap().push(Hit {
                    headers,
                    body,
                    answered: status,
                });
                match status {
                    Some(status) => StatusCode::from_u16(status).unwrap(),
                    None => std::future::pending().await,
                }
            }
        };
        let router = axum::Router::new().fallback(axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
                .unwrap();
        });
        Receiver { addr, hits, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// Resolves every name to 127.0.0.1, as a hostile DNS answer would.
#[derive(Debug)]
pub struct EverythingIsLoopback;

#[async_trait::async_trait]
impl NameResolver for EverythingIsLoopback {
    async fn lookup(&self, _host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])
    }
}

/// Short backoffs and timeouts; only the given receivers are allowed past the guard.
pub fn config(allowed: &[&Receiver]) -> NotifyConfig {
    NotifyConfig {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        attempt_timeout: Duration::from_millis(700),
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(50),
        concurrency: 4,
        public_url: Some("https://sx.example/".to_owned()),
        allowed_private_addrs: allowed.iter().map(|r| r.addr).collect(),
        ..NotifyConfig::default()
    }
}

pub fn deps(owner: &str, mailer: Mailer) -> NotifyDeps {
    NotifyDeps {
        mailer: Arc::new(mailer),
        resolver: None,
        owner: owner.to_owned(),
    }
}

pub async fn user(store: &Store, email: &str) -> User {
    store
        .create_user(NewUser {
            email: email.to_owned(),
            password_hash: None,
            is_admin: false,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs: 5,
        })
        .await
        .unwrap()
}

/// A canonical spec notifying `notify` (the `notify` object).
pub fn spec_json(name: &str, notify: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "start_urls": ["https://shop.example/"],
        "fields": [{"name": "title", "selector": "h1"}],
        "notify": notify,
    })
}

pub async fn task(store: &Store, user: &User, name: &str, notify: serde_json::Value) -> Task {
    store
        .create_task(NewTask {
            user_id: user.id.clone(),
            name: name.to_owned(),
            spec: spec_json(name, notify),
            priority: 5,
        })
        .await
        .unwrap()
}

/// A run of `task` that ended in `state` (with `changes`), its events queued by the
/// worker's finish. Returns the delivery ids.
pub async fn finished_run(
    store: &Store,
    task: &Task,
    state: RunState,
    changes: Option<&RunChanges>,
    config: &NotifyConfig,
) -> Vec<String> {
    finished_run_with_sample(store, task, state, changes, config, &[]).await
}

/// [`finished_run`] whose `changes.detected` events carry `sample` (detail entries).
pub async fn finished_run_with_sample(
    store: &Store,
    task: &Task,
    state: RunState,
    changes: Option<&RunChanges>,
    config: &NotifyConfig,
    sample: &[serde_json::Value],
) -> Vec<String> {
    store
        .enqueue_run(&task.user_id, &task.id, &task.spec, 5, 3)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    // Claimed and finished the way a worker finishes a run: the deliveries go in with the
    // run's end, in its transaction.
    let run = store
        .claim_next_run("test-worker", Duration::from_secs(60), now)
        .await
        .unwrap()
        .expect("the run just enqueued");
    let spec: TaskSpec = serde_json::from_value(task.spec.clone()).unwrap();
    let progress = Progress {
        pages_done: 3,
        records: 42,
        ..Progress::default()
    };
    let changes = changes.map(|changes| RunChanges {
        run_id: run.id.clone(),
        ..changes.clone()
    });
    let mut deliveries = deliveries_for_run(
        &RunEventInput {
            run: &run,
            task_name: &task.name,
            spec: &spec,
            state,
            reason: "ok",
            error: None,
            progress: &progress,
            changes: changes.as_ref(),
        },
        config,
        now,
    );
    selextract_notify::attach_change_sample(&mut deliveries, sample);
    let finished = store
        .finish_run_with_outcome(
            &run.id,
            "test-worker",
            state,
            "ok",
            None,
            &progress,
            now,
            changes.as_ref(),
            &deliveries,
        )
        .await
        .unwrap();
    assert!(finished);
    deliveries.into_iter().map(|d| d.id).collect()
}

/// Every delivery of the user, newest first.
pub async fn deliveries(store: &Store, user: &User) -> Vec<Delivery> {
    let filter = DeliveryFilter {
        limit: 1000,
        ..DeliveryFilter::default()
    };
    store.list_deliveries(&user.id, &filter).await.unwrap().0
}

/// Polls until `done` holds (or gives up, failing the test).
pub async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + GIVE_UP_AFTER;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The delivery loop running in the background until dropped.
pub struct Loop {
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Loop {
    pub fn start(store: &Store, config: NotifyConfig, deps: NotifyDeps) -> Loop {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let store = store.clone();
        let handle = tokio::spawn(async move {
            selextract_notify::run_deliveries(store, config, deps, token)
                .await
                .unwrap();
        });
        Loop {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the loop and waits for its attempts in flight.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap();
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn changes(task: &Task) -> RunChanges {
    RunChanges {
        run_id: String::new(),
        task_id: task.id.clone(),
        user_id: task.user_id.clone(),
        previous_run_id: Some("run-before".to_owned()),
        key_field: Some("sku".to_owned()),
        previous_records: 40,
        records: 42,
        added: 3,
        removed: 1,
        changed: 2,
        unchanged: 37,
        changed_fraction: 6.0 / 42.0,
        passed_threshold: true,
        detail_items: 6,
        detail_chunk_size: 1000,
        snapshot_chunks: 1,
        created_at_ms: 0,
    }
}
