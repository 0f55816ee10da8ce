//! A hostile web site for the attack suites: pages built to exhaust a scraper — nesting
//! deeper than any stack, values that explode under transforms, pages too wide for any cap — served
//! on 127.0.0.1:0 like [`crate::FixtureSite`], with every request path recorded.
//!
//! # Routes
//! - `/deep?n=N` — `N` (default 100,000) nested `<div>`s around `<p class="bottom">deep</p>`,
//!   then `<p class="after">after</p>` at the top level.
//! - `/deep-spans?n=N` — the same with `<span>`s, which the HTML parser nests in linear time
//!   (nested `<div>`s make it quadratic).
//! - `/aaaa` — `<h1 class="title">aaaa</h1>` (four `a`: 4 × 2^k bytes after `k` doublings).
//! - `/wide?n=N&bytes=B` — `N` items `<div class="item">` (default 10) each holding `B` bytes
//!   of text (default 10); enough to exceed any record or page-records cap.
//! - `/ok?n=N` — an ordinary page with one `<h1 class="title">ok N</h1>`.

// A fixture that cannot bind or compress in memory is a broken test machine: panic loudly.
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;

/// The hostile site; dropping it stops the server.
pub struct HostileSite {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for HostileSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileSite")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HostileSite {
    /// Starts the site on 127.0.0.1:0 inside the current tokio runtime.
    pub async fn start() -> HostileSite {
        let log = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/deep", get(deep))
            .route("/deep-spans", get(deep_spans))
            .route("/aaaa", get(aaaa))
            .route("/wide", get(wide))
            .route("/ok", get(ok))
            .layer(middleware::from_fn_with_state(log.clone(), record))
            .with_state(());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds 127.0.0.1:0");
        let addr = listener.local_addr().expect("has an address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        HostileSite {
            addr,
            log,
            shutdown: Some(tx),
        }
    }

    /// An absolute URL of `path` on this site.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Paths (with query) requested so far, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for HostileSite {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn record(
    State(log): State<Arc<Mutex<Vec<String>>>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(path);
    next.run(request).await
}

fn number(params: &HashMap<String, String>, name: &str, default: usize) -> usize {
    params
        .get(name)
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn html(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn deep(Query(params): Params) -> Response {
    html(nested(number(&params, "n", 100_000), "div"))
}

async fn deep_spans(Query(params): Params) -> Response {
    html(nested(number(&params, "n", 100_000), "span"))
}

/// `depth` nested `tag`s around `<p class="bottom">deep</p>`, then `<p class="after">`.
fn nested(depth: usize, tag: &str) -> String {
    let mut body = String::with_capacity(depth * (2 * tag.len() + 5) + 200);
    body.push_str("<!doctype html><html><head><title>deep</title></head><body>");
    for _ in 0..depth {
        body.push_str(&format!("<{tag}>"));
    }
    body.push_str("<p class=\"bottom\">deep</p>");
    for _ in 0..depth {
        body.push_str(&format!("</{tag}>"));
    }
    body.push_str("<p class=\"after\">after</p></body></html>");
    body
}

async fn aaaa() -> Response {
    html(
        "<!doctype html><html><head><title>aaaa</title></head><body>\
         <h1 class=\"title\">aaaa</h1></body></html>"
            .to_owned(),
    )
}

async fn wide(Query(params): Params) -> Response {
    let items = number(&params, "n", 10);
    let bytes = number(&params, "bytes", 10);
    let text = "x".repeat(bytes);
    let mut body = String::from("<!doctype html><html><body>");
    for index in 0..items {
        body.push_str(&format!(
            "<div class=\"item\" data-i=\"{index}\">{text}</div>"
        ));
    }
    body.push_str("</body></html>");
    html(body)
}

async fn ok(Query(params): Params) -> Response {
    let n = number(&params, "n", 0);
    html(format!(
        "<!doctype html><html><body><h1 class=\"title\">ok {n}</h1></body></html>"
    ))
}
