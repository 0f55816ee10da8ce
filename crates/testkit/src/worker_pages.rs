//! Pages for the browser guard tests of Service Workers and Shared Workers: each reach page
//! starts a worker that imports and fetches from its own origin (allowed) and from another
//! address (`target`, refused unless the test allows it), and shows every outcome in a
//! `body[data-*]` attribute, then `div#done`; one page is taken over by a Service Worker that
//! would answer its requests itself.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::site::SiteState;

type Params = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<SiteState>> {
    Router::new()
        .route("/js/service-worker-reach", get(service_worker_reach))
        .route("/js/service-worker.js", get(service_worker_script))
        .route("/js/worker-import.js", get(worker_import))
        .route("/js/service-worker-controls", get(service_worker_controls))
        .route(
            "/js/forwarding-service-worker.js",
            get(forwarding_service_worker),
        )
        .route(
            "/js/service-worker-registrations",
            get(service_worker_registrations),
        )
        .route("/js/shared-worker-reach", get(shared_worker_reach))
        .route("/js/shared-worker.js", get(shared_worker_script))
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn javascript(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The `target` parameter as a JavaScript string literal.
fn target_literal(params: &HashMap<String, String>) -> String {
    serde_json::Value::String(params.get("target").cloned().unwrap_or_default()).to_string()
}

/// The page script's `finish(outcomes)`: every outcome becomes `body[data-NAME]`, then
/// `div#done` appears.
const FINISH: &str = r"
function finish(outcomes) {
  if (document.getElementById('done')) return;
  for (const [name, outcome] of Object.entries(outcomes)) document.body.dataset[name] = outcome;
  const done = document.createElement('div'); done.id = 'done'; document.body.appendChild(done);
}";

/// The worker scripts' helpers: `load(url)` imports a script (`loaded`, `loaded-unrun` when
/// it did not run, `failed`), `outcome(promise)` turns a fetch into `status-N` or `failed`,
/// and `reach(target, VIA)` fetches `/private/allowed?via=VIA-fetch` on the worker's own
/// origin and `target?via=VIA-fetch` (`no-cors`) from another, and opens a WebSocket to
/// `target?via=VIA-websocket` (`opened`, `failed`).
const WORKER_HELPERS: &str = r"
function load(url) {
  self.importedScriptRan = false;
  try { importScripts(url); } catch (e) { return 'failed'; }
  return self.importedScriptRan ? 'loaded' : 'loaded-unrun';
}
function outcome(promise) {
  return promise.then((r) => 'status-' + r.status, () => 'failed');
}
function socket(url) {
  return new Promise((resolve) => {
    try {
      const ws = new WebSocket(url);
      ws.onopen = () => { resolve('opened'); ws.close(); };
      ws.onerror = () => resolve('failed');
    } catch (e) { resolve('threw'); }
  });
}
function reach(target, via) {
  return Promise.all([
    outcome(fetch('/private/allowed?via=' + via + '-fetch')),
    outcome(fetch(target + '?via=' + via + '-fetch', { mode: 'no-cors' })),
    socket(target.replace(/^http/, 'ws') + '?via=' + via + '-websocket'),
  ]).then(([fetchAllowed, fetchRefused, websocketRefused]) =>
    ({ fetchAllowed, fetchRefused, websocketRefused }));
}";

/// `/js/service-worker-reach?target=URL`: registers `/js/service-worker.js` (scope `/js/`),
/// waits until it is active, and asks it, over a `MessageChannel`, what its imports and
/// fetches gave. `body[data-registration]` is `active` or `rejected:ERROR`; with `active`,
/// `data-import-allowed` (`/js/worker-import.js`), `data-import-refused`
/// (`URL?via=service-worker-import`), `data-fetch-allowed` (`/private/allowed?via=
/// service-worker-fetch`), `data-fetch-refused` (`URL?via=service-worker-fetch`) and
/// `data-websocket-refused` (a WebSocket to `URL?via=service-worker-websocket`), as the
/// worker saw them.
async fn service_worker_reach(Query(params): Params) -> Response {
    let target = target_literal(&params);
    html(format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Service Worker reach</title></head>
<body><h1>Service Worker reach</h1><script>{FINISH}
const target = {target};
if (!('serviceWorker' in navigator)) {{
  finish({{ registration: 'unavailable' }});
}} else {{
  navigator.serviceWorker
    .register('/js/service-worker.js?target=' + encodeURIComponent(target), {{ scope: '/js/' }})
    .then(() => navigator.serviceWorker.ready)
    .then((registration) => new Promise((resolve) => {{
      const channel = new MessageChannel();
      channel.port1.onmessage = (event) => resolve(event.data);
      registration.active.postMessage('reach', [channel.port2]);
    }}))
    .then((outcomes) => finish({{ registration: 'active', ...outcomes }}))
    .catch((error) => finish({{ registration: 'rejected:' + error.name }}));
}}
</script></body></html>"#
    ))
}

/// The Service Worker of `/js/service-worker-reach`: imports while it is first evaluated
/// (the only time a Service Worker may), fetches when asked.
async fn service_worker_script(Query(params): Params) -> Response {
    let target = target_literal(&params);
    javascript(format!(
        r"const target = {target};{WORKER_HELPERS}
const importAllowed = load('/js/worker-import.js');
const importRefused = load(target + '?via=service-worker-import');
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('message', (event) => {{
  const port = event.ports[0];
  event.waitUntil(reach(target, 'service-worker').then((fetched) => {{
    port.postMessage({{ importAllowed, importRefused, ...fetched }});
  }}));
}});
"
    ))
}

/// `/js/service-worker-controls`: registers `/js/forwarding-service-worker.js`, which takes
/// control of the page at once and answers each of the page's requests by fetching it
/// itself; once the page is controlled (`body[data-controlled]` is `yes`, else
/// `rejected:ERROR`), the page fetches `/headers` (the JSON into `pre#same`) and shows the
/// image `/img/controlled.png` (`body[data-image]`: `loaded` or `failed`), then `div#done`.
async fn service_worker_controls() -> Response {
    html(format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Service Worker controls</title></head>
<body><h1>Service Worker controls</h1><pre id="same"></pre><script>{FINISH}
function controlled() {{
  if (navigator.serviceWorker.controller) return Promise.resolve();
  return new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve));
}}
function image() {{
  return new Promise((resolve) => {{
    const img = document.createElement('img');
    img.onload = () => resolve('loaded');
    img.onerror = () => resolve('failed');
    img.src = '/img/controlled.png';
    document.body.appendChild(img);
  }});
}}
navigator.serviceWorker
  .register('/js/forwarding-service-worker.js', {{ scope: '/' }})
  .then(controlled)
  .then(() => Promise.all([fetch('/headers').then((r) => r.text(), () => 'failed'), image()]))
  .then(([headers, image]) => {{
    document.getElementById('same').textContent = headers;
    finish({{ controlled: navigator.serviceWorker.controller ? 'yes' : 'no', image }});
  }})
  .catch((error) => finish({{ controlled: 'rejected:' + error.name }}));
</script></body></html>"#
    ))
}

/// The Service Worker of `/js/service-worker-controls`: claims its clients when it
/// activates and answers every request by fetching it itself.
async fn forwarding_service_worker() -> Response {
    let mut response = javascript(
        r"self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => event.respondWith(fetch(event.request)));
"
        .to_owned(),
    );
    // Its scope is the whole site, above the script's own directory.
    response.headers_mut().insert(
        "service-worker-allowed",
        axum::http::HeaderValue::from_static("/"),
    );
    response
}

/// `/js/service-worker-registrations`: how many Service Workers are registered for this
/// origin (`body[data-registrations]`) and whether one controls the page
/// (`body[data-controlled]`: `yes`, `no`), then `div#done`.
async fn service_worker_registrations() -> Response {
    html(format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Service Worker registrations</title></head>
<body><h1>Service Worker registrations</h1><script>{FINISH}
navigator.serviceWorker.getRegistrations().then(
  (registrations) => finish({{
    registrations: String(registrations.length),
    controlled: navigator.serviceWorker.controller ? 'yes' : 'no',
  }}),
  (error) => finish({{ registrations: 'rejected:' + error.name }}),
);
</script></body></html>"#
    ))
}

/// `/js/worker-import.js`: a script for `importScripts` that says it ran.
async fn worker_import() -> Response {
    javascript("self.importedScriptRan = true;\n".to_owned())
}

/// `/js/shared-worker-reach?target=URL`: starts the Shared Worker `/js/shared-worker.js`
/// and shows what it reports: `body[data-shared-worker]` is `connected` (or `unavailable`,
/// `error`), then `data-import-allowed`, `data-import-refused` (`URL?via=shared-worker-import`),
/// `data-fetch-allowed`, `data-fetch-refused` (`…?via=shared-worker-fetch`) and
/// `data-websocket-refused` (`…?via=shared-worker-websocket`).
async fn shared_worker_reach(Query(params): Params) -> Response {
    let target = target_literal(&params);
    html(format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Shared Worker reach</title></head>
<body><h1>Shared Worker reach</h1><script>{FINISH}
const target = {target};
if (typeof SharedWorker === 'undefined') {{
  finish({{ sharedWorker: 'unavailable' }});
}} else {{
  const worker = new SharedWorker('/js/shared-worker.js?target=' + encodeURIComponent(target));
  worker.onerror = () => finish({{ sharedWorker: 'error' }});
  worker.port.onmessage = (event) => finish({{ sharedWorker: 'connected', ...event.data }});
  worker.port.start();
}}
</script></body></html>"#
    ))
}

/// The Shared Worker of `/js/shared-worker-reach`: imports, then fetches for each page that
/// connects.
async fn shared_worker_script(Query(params): Params) -> Response {
    let target = target_literal(&params);
    javascript(format!(
        r"const target = {target};{WORKER_HELPERS}
const importAllowed = load('/js/worker-import.js');
const importRefused = load(target + '?via=shared-worker-import');
self.addEventListener('connect', (event) => {{
  const port = event.ports[0];
  reach(target, 'shared-worker').then((fetched) => {{
    port.postMessage({{ importAllowed, importRefused, ...fetched }});
  }});
}});
"
    ))
}
