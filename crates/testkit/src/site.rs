//! The fixture web site: an axum server on 127.0.0.1:0 that records every request it sees.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::routes;

/// What the fixture site serves where the defaults are not enough.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    /// Body of `/robots.txt`; `None` serves `User-agent: *\nAllow: /\n`.
    pub robots_txt: Option<String>,
    /// Number of `/catalog` pages (default 5).
    pub catalogue_pages: usize,
    /// Products per catalogue page (default 10).
    pub items_per_page: usize,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            robots_txt: None,
            catalogue_pages: 5,
            items_per_page: 10,
        }
    }
}

/// State shared by all handlers of one fixture site.
pub(crate) struct SiteState {
    pub(crate) options: FixtureOptions,
    log: Mutex<Vec<(String, Instant)>>,
    counters: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl SiteState {
    fn new(options: FixtureOptions) -> Self {
        SiteState {
            options,
            log: Mutex::new(Vec::new()),
            counters: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }

    /// Increments the named counter and returns its new value (1 for the first call).
    pub(crate) fn bump(&self, key: &str) -> usize {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counters.entry(key.to_owned()).or_insert(0);
        *count += 1;
        *count
    }

    /// Marks one `/concurrency-probe` request as in flight until the returned guard drops.
    pub(crate) fn enter_probe(self: &Arc<Self>) -> ProbeGuard {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        ProbeGuard {
            state: Arc::clone(self),
        }
    }
}

/// Leaves the in-flight count of `/concurrency-probe` when the handler finishes or is dropped.
pub(crate) struct ProbeGuard {
    state: Arc<SiteState>,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Stopper {
    /// The server runs as a task of the caller's runtime.
    Task(tokio::task::JoinHandle<()>),
    /// The server runs on its own runtime in a background thread, stopped by this signal.
    Thread(Option<tokio::sync::oneshot::Sender<()>>),
}

/// A running fixture site; dropping it stops the server.
pub struct FixtureSite {
    addr: SocketAddr,
    state: Arc<SiteState>,
    stopper: Stopper,
}

impl std::fmt::Debug for FixtureSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixtureSite")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FixtureSite {
    /// Starts the site with default options on the current tokio runtime.
    pub async fn start() -> FixtureSite {
        Self::start_with(FixtureOptions::default()).await
    }

    /// Starts the site on the current tokio runtime.
    pub async fn start_with(options: FixtureOptions) -> FixtureSite {
        let listener = bind_loopback();
        let addr = local_addr(&listener);
        let state = Arc::new(SiteState::new(options));
        let router = router(Arc::clone(&state));
        let listener = into_tokio_listener(listener);
        let task = tokio::spawn(async move {
            // The server only ends with an accept error; there is nobody to report it to but
            // the test, which will see its requests fail.
            let _ = axum::serve(listener, router).await;
        });
        FixtureSite {
            addr,
            state,
            stopper: Stopper::Task(task),
        }
    }

    /// Starts the site with default options on `addr` (any loopback address, e.g.
    /// `127.0.0.2:PORT`, for tests that need two sites on one port); an error when the
    /// address cannot be bound (the port is taken).
    pub async fn start_at(addr: SocketAddr) -> std::io::Result<FixtureSite> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SiteState::new(FixtureOptions::default()));
        let router = router(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(FixtureSite {
            addr,
            state,
            stopper: Stopper::Task(task),
        })
    }

    /// Starts the site with default options on its own runtime, for synchronous tests.
    pub fn start_blocking() -> FixtureSite {
        Self::start_blocking_with(FixtureOptions::default())
    }

    /// Starts the site on its own runtime in a background thread, for synchronous tests.
    pub fn start_blocking_with(options: FixtureOptions) -> FixtureSite {
        let listener = bind_loopback();
        let addr = local_addr(&listener);
        let state = Arc::new(SiteState::new(options));
        let router = router(Arc::clone(&state));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name(format!("fixture-site-{}", addr.port()))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => panic!("testkit: cannot build the fixture site's runtime: {err}"),
                };
                runtime.block_on(async move {
                    let listener = into_tokio_listener(listener);
                    tokio::select! {
                        _ = axum::serve(listener, router) => {}
                        _ = stop_rx => {}
                    }
                });
                // Connections that are still open (a stalled body) must not keep the thread alive.
                runtime.shutdown_background();
            });
        if let Err(err) = spawned {
            panic!("testkit: cannot start the fixture site's thread: {err}");
        }
        FixtureSite {
            addr,
            state,
            stopper: Stopper::Thread(Some(stop_tx)),
        }
    }

    /// The socket address the site listens on (127.0.0.1 unless started with `start_at`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}` (`http://127.0.0.1:PORT{path}` unless started with `start_at`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// How many requests the site saw for `path` (compared without the query string).
    pub fn hits(&self, path: &str) -> usize {
        let log = self
            .state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        log.iter()
            .filter(|(seen, _)| seen.split('?').next() == Some(path))
            .count()
    }

    /// Every request seen so far, in arrival order: path with query, and arrival time.
    pub fn request_log(&self) -> Vec<(String, Instant)> {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The largest number of `/concurrency-probe` requests that were in flight at once.
    pub fn max_concurrent(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FixtureSite {
    fn drop(&mut self) {
        match &mut self.stopper {
            Stopper::Task(task) => task.abort(),
            Stopper::Thread(stop) => {
                if let Some(stop) = stop.take() {
                    // The thread may already be gone (runtime failure); nothing to stop then.
                    let _ = stop.send(());
                }
            }
        }
    }
}

fn router(state: Arc<SiteState>) -> Router {
    routes::routes()
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            record_request,
        ))
        .with_state(state)
}

/// Appends every request to the log before it is handled, so arrival times are exact even
/// for slow handlers.
async fn record_request(
    State(state): State<Arc<SiteState>>,
    request: Request,
    next: Next,
) -> Response {
    let seen = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_owned(), |pq| pq.to_string());
    state
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((seen, Instant::now()));
    next.run(request).await
}

/// Binds 127.0.0.1:0. The test kit panics on failure because a machine that cannot bind a
/// loopback port cannot run the tests at all, and a panic is how a test reports that.
fn bind_loopback() -> std::net::TcpListener {
    let listener = match std::net::TcpListener::bind(("127.0.0.1", 0)) {
        Ok(listener) => listener,
        Err(err) => panic!("testkit: cannot bind 127.0.0.1:0: {err}"),
    };
    if let Err(err) = listener.set_nonblocking(true) {
        panic!("testkit: cannot make the listener non-blocking: {err}");
    }
    listener
}

fn local_addr(listener: &std::net::TcpListener) -> SocketAddr {
    match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => panic!("testkit: bound listener has no local address: {err}"),
    }
}

fn into_tokio_listener(listener: std::net::TcpListener) -> tokio::net::TcpListener {
    match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => panic!("testkit: cannot register the listener with tokio: {err}"),
    }
}
