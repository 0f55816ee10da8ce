//! A test application: store, results, router and helpers to make users, keys and requests.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use selextract_fetch::{HttpFetcher, HttpFetcherConfig};
use selextract_results::ResultStore;
use selextract_server::{AppState, ServerConfig, build_metrics_recorder, keys, router};
use selextract_store::{NewApiKey, NewUser, Store};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::Notify;
use tower::ServiceExt;

pub const ALL_SCOPES: &[&str] = &[
    "tasks:read",
    "tasks:write",
    "results:read",
    "keys:write",
    "billing:read",
];

/// One recorder for the whole test binary, installed globally once, so the HTTP metrics
/// middleware has somewhere to record and `/metrics` has something to render.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let (recorder, handle) = build_metrics_recorder();
            metrics::set_global_recorder(recorder).expect("first and only global recorder");
            handle
        })
        .clone()
}

pub use selextract_store::testing::{Backend, TestDatabase};

/// The backend the current test runs on: set by [`both_backends!`], SQLite otherwise; every
/// [`TestApp`] a test builds uses it.
pub use selextract_store::testing::current_backend;

/// The one `both_backends!` of every crate's suites (`selextract_store::testing`): runs the
/// async test function `$name()` once per backend, as `$name::sqlite` and
/// `$name::postgres`, with [`current_backend`] answering that backend inside it.
pub(crate) use selextract_store::both_backends;

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub store: Store,
    pub results: ResultStore,
    pub waker: Arc<Notify>,
    _db: TestDatabase,
    _dir: TempDir,
}

pub struct TestUser {
    pub id: String,
    /// A key with every scope.
    pub key: String,
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with_config(ServerConfig::default()).await
    }

    pub async fn with_config(config: ServerConfig) -> TestApp {
        TestApp::build(config, HttpFetcherConfig::default()).await
    }

    pub async fn build(config: ServerConfig, fetcher: HttpFetcherConfig) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDatabase::create(current_backend()).await;
        let store = db.migrated_store().await;
        TestApp::build_on(db, store, dir, config, fetcher)
    }

    /// A test app over `store` (which may reach the database through a proxy).
    pub fn build_on(
        db: TestDatabase,
        store: Store,
        dir: TempDir,
        config: ServerConfig,
        fetcher: HttpFetcherConfig,
    ) -> TestApp {
        let results = ResultStore::local(&dir.path().join("results")).expect("result store");
        let http = Arc::new(HttpFetcher::new(fetcher).expect("http fetcher"));
        let waker = Arc::new(Notify::new());
        let state = AppState::new(
            store.clone(),
            results.clone(),
            http,
            Arc::clone(&waker),
            config,
            metrics_handle(),
        );
        TestApp {
            router: router(state.clone()),
            state,
            store,
            results,
            waker,
            _db: db,
            _dir: dir,
        }
    }

    /// A user on `plan` with a key holding every scope.
    pub async fn user_on_plan(&self, email: &str, plan: &str) -> TestUser {
        let user = self
            .store
            .create_user(NewUser {
                email: email.to_owned(),
                password_hash: None,
                is_admin: false,
                plan: plan.to_owned(),
                max_concurrent_runs: 8,
            })
            .await
            .expect("create user");
        let key = self.key_for(&user.id, ALL_SCOPES, None).await;
        TestUser { id: user.id, key }
    }

    pub async fn user(&self, email: &str) -> TestUser {
        self.user_on_plan(email, "self-hosted").await
    }

    /// A new key of `user_id` with `scopes`, inserted directly into the store.
    pub async fn key_for(
        &self,
        user_id: &str,
        scopes: &[&str],
        expires_at_ms: Option<i64>,
    ) -> String {
        let (full, public_id, secret_hash) = keys::generate_api_key();
        self.store
            .insert_api_key(NewApiKey {
                user_id: user_id.to_owned(),
                public_id,
                secret_hash,
                name: "test".to_owned(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                expires_at_ms,
            })
            .await
            .expect("insert key");
        full
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_via(&self.router, request).await
    }

    /// Another API process on the same database and results: its own state and caches
    /// (verified keys, rate-limit windows). Send to it with [`send_via`].
    pub fn sibling(&self, config: ServerConfig) -> Router {
        let http = Arc::new(HttpFetcher::new(HttpFetcherConfig::default()).expect("http fetcher"));
        router(AppState::new(
            self.store.clone(),
            self.results.clone(),
            http,
            Arc::new(Notify::new()),
            config,
            metrics_handle(),
        ))
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        self.send(request(method, path, key, body)).await
    }

    pub async fn get(&self, path: &str, key: &str) -> TestResponse {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> TestResponse {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    /// Creates a task without starting it; returns its id.
    pub async fn task(&self, key: &str, name: &str) -> String {
        let mut spec = catalogue_spec("http://shop.invalid/catalog");
        spec["name"] = json!(name);
        spec["start"] = json!(false);
        let response = self.post("/api/v1/tasks", key, spec).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        response.json()["id"].as_str().expect("task id").to_owned()
    }

    /// Creates a task and its first run; returns (task id, run id).
    pub async fn started_task(&self, key: &str, name: &str) -> (String, String) {
        let mut spec = catalogue_spec("http://shop.invalid/catalog");
        spec["name"] = json!(name);
        let response = self.post("/api/v1/tasks", key, spec).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        let json = response.json();
        (
            json["id"].as_str().expect("id").to_owned(),
            json["latest_run"]["id"]
                .as_str()
                .expect("run id")
                .to_owned(),
        )
    }
}

pub async fn send_via(router: &Router, request: Request<Body>) -> TestResponse {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("read body");
    TestResponse {
        status,
        headers,
        body,
    }
}

pub fn request(
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    let body = match body {
        Some(value) => {
            builder = builder.header("content-type", "application/json");
            Body::from(value.to_string())
        }
        None => Body::empty(),
    };
    builder.body(body).expect("request")
}

/// Marks a request as coming from `peer`, as `serve` does with the real TCP peer.
pub fn from_peer(mut request: Request<Body>, peer: &str) -> Request<Body> {
    let addr: SocketAddr = peer.parse().expect("socket address");
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the error envelope with `code`.
    pub fn assert_error(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        let json = self.json();
        assert_eq!(json["error"], code, "{json}");
        assert!(json["message"].is_string(), "{json}");
        assert!(json["details"].is_array(), "{json}");
        let request_id = json["request_id"].as_str().expect("request_id in the body");
        assert_eq!(Some(request_id), self.header("x-request-id"));
        json
    }
}

/// A canonical spec extracting the fixture catalogue.
pub fn catalogue_spec(url: &str) -> Value {
    json!({
        "name": "Catalogue",
        "start_urls": [url],
        "item_selector": "div.product",
        "fields": [
            {"name": "title", "selector": "h2 a", "type": "text"},
            {"name": "price", "selector": ".price", "type": "text"}
        ],
        "respect_robots_txt": false
    })
}
