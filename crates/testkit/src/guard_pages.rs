//! Pages for the browser guard tests: a Web Worker that reaches another address, a WebSocket echo and a page that talks to it, a page that embeds sub-resources
//! from another origin and shows the headers each side received, and a page whose script
//! builds a huge DOM.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::site::SiteState;

type Params = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<SiteState>> {
    Router::new()
        .route("/js/worker-reach", get(worker_reach))
        .route("/js/worker.js", get(worker_script))
        .route("/ws/echo", get(websocket_echo))
        .route("/js/websocket", get(websocket_page))
        .route("/js/third-party", get(third_party))
        .route("/cors/headers", get(cors_headers))
        .route("/js/headers.js", get(headers_script))
        .route("/js/huge-dom", get(huge_dom))
        .merge(crate::worker_pages::routes())
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

fn js_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

fn target_param(params: &HashMap<String, String>) -> String {
    params.get("target").cloned().unwrap_or_default()
}

/// The request headers as a JSON object (lower-case names, repeated ones joined with `, `).
pub(crate) fn headers_json(headers: &HeaderMap) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        object.insert(
            name.as_str().to_owned(),
            serde_json::Value::String(values.join(", ")),
        );
    }
    serde_json::Value::Object(object)
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `/js/worker-reach?target=URL`: a dedicated Web Worker fetches `URL?via=worker-fetch`
/// (`no-cors`) and opens a WebSocket to `URL?via=worker-websocket`. Each outcome lands in a
/// `body[data-*]` attribute (`worker-fetch`, `worker-websocket`: `status-N`, `opened`,
/// `failed`, …), and `div#done` appears when both are known.
async fn worker_reach(Query(params): Params) -> Response {
    let target = js_string(&target_param(&params));
    html(format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Worker reach</title></head>
<body><h1>Worker reach</h1><script>
const target = {target};
const outcomes = {{}};
function record(name, outcome) {{
  if (outcomes[name]) return;
  outcomes[name] = outcome;
  document.body.dataset[name.replace(/-(.)/g, (_, c) => c.toUpperCase())] = outcome;
  if (Object.keys(outcomes).length === 2) {{
    const done = document.createElement('div'); done.id = 'done'; document.body.appendChild(done);
  }}
}}
const worker = new Worker('/js/worker.js?target=' + encodeURIComponent(target));
worker.onmessage = (e) => record(e.data.name, e.data.outcome);
worker.onerror = () => {{ record('worker-fetch', 'no-worker'); record('worker-websocket', 'no-worker'); }};
</script></body></html>"#
    ))
}

/// The dedicated worker of `/js/worker-reach`.
async fn worker_script(Query(params): Params) -> Response {
    let target = js_string(&target_param(&params));
    javascript(format!(
        r#"const target = {target};
fetch(target + '?via=worker-fetch', {{ mode: 'no-cors' }})
  .then((r) => postMessage({{ name: 'worker-fetch', outcome: 'status-' + r.status }}))
  .catch(() => postMessage({{ name: 'worker-fetch', outcome: 'failed' }}));
try {{
  const ws = new WebSocket(target.replace(/^http/, 'ws') + '?via=worker-websocket');
  ws.onopen = () => postMessage({{ name: 'worker-websocket', outcome: 'opened' }});
  ws.onerror = () => postMessage({{ name: 'worker-websocket', outcome: 'failed' }});
}} catch (e) {{
  postMessage({{ name: 'worker-websocket', outcome: 'threw' }});
}}
"#
    ))
}

/// `/ws/echo`: a WebSocket that sends every text message back.
async fn websocket_echo(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(text) => Message::Text(text),
            Message::Binary(bytes) => Message::Binary(bytes),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

/// `/js/websocket?target=WS_URL`: opens a WebSocket to WS_URL, sends `hello`, and puts what
/// comes back (or `failed`) into `body[data-echo]`, then `div#done`.
async fn websocket_page(Query(params): Params) -> Response {
    let target = js_string(&target_param(&params));
    html(format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>WebSocket</title></head>
<body><h1>WebSocket</h1><script>
function finish(outcome) {{
  if (document.getElementById('done')) return;
  document.body.dataset.echo = outcome;
  const done = document.createElement('div'); done.id = 'done'; document.body.appendChild(done);
}}
try {{
  const ws = new WebSocket({target});
  ws.onopen = () => ws.send('hello');
  ws.onmessage = (e) => finish('echo:' + e.data);
  ws.onerror = () => finish('failed');
}} catch (e) {{ finish('threw'); }}
</script></body></html>"#
    ))
}

/// `/js/third-party?other=ORIGIN`: shows the headers this document was requested with
/// (`pre#own`), then fetches `/headers` on its own origin (`pre#same`) and
/// `ORIGIN/cors/headers` (`pre#cross`), loads `ORIGIN/js/headers.js` as a script
/// (`pre#script`) and `ORIGIN/img/a.png` as an image; `div#done` when both fetches are in.
async fn third_party(headers: HeaderMap, Query(params): Params) -> Response {
    let other = params.get("other").cloned().unwrap_or_default();
    let own = escape_html(&headers_json(&headers).to_string());
    let other_attr = escape_html(&other).replace('"', "&quot;");
    let other_js = js_string(&other);
    html(format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Third party</title></head>
<body><h1>Third party</h1>
<pre id="own">{own}</pre><pre id="same"></pre><pre id="cross"></pre><pre id="script"></pre>
<img src="{other_attr}/img/a.png" alt="">
<script src="{other_attr}/js/headers.js"></script>
<script>
const other = {other_js};
document.getElementById('script').textContent = JSON.stringify(window.scriptHeaders || null);
Promise.all([
  fetch('/headers').then((r) => r.text()).catch(() => 'failed'),
  fetch(other + '/cors/headers').then((r) => r.text()).catch(() => 'failed'),
]).then(([same, cross]) => {{
  document.getElementById('same').textContent = same;
  document.getElementById('cross').textContent = cross;
  const done = document.createElement('div'); done.id = 'done'; document.body.appendChild(done);
}});
</script></body></html>"#
    ))
}

/// `/cors/headers`: the request headers as JSON, readable from any origin.
async fn cors_headers(headers: HeaderMap) -> Response {
    (
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        axum::Json(headers_json(&headers)),
    )
        .into_response()
}

/// `/js/headers.js`: a script that sets `window.scriptHeaders` to the headers it was
/// requested with.
async fn headers_script(headers: HeaderMap) -> Response {
    javascript(format!(
        "window.scriptHeaders = {};",
        headers_json(&headers)
    ))
}

/// `/js/huge-dom?mib=N`: a small page whose script, after the load event, appends N MiB
/// (default 64) of text to the DOM in hidden paragraphs, then `div#done`.
async fn huge_dom(Query(params): Params) -> Response {
    let mib: u64 = params.get("mib").and_then(|v| v.parse().ok()).unwrap_or(64);
    html(format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Huge DOM</title></head>
<body><h1>Huge DOM</h1><script>
// After the load event, in hidden paragraphs: the DOM is huge, but layout stays cheap.
setTimeout(() => {{
  const chunk = 'x'.repeat(1 << 20);
  for (let i = 0; i < {mib}; i++) {{
    const p = document.createElement('p'); p.hidden = true; p.textContent = chunk; document.body.appendChild(p);
  }}
  const done = document.createElement('div'); done.id = 'done'; document.body.appendChild(done);
}}, 0);
</script></body></html>"#
    ))
}
