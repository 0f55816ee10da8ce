//! Pages whose content only exists after JavaScript runs, for browser-rendering tests: a
//! catalogue injected after a delay, "load more" and infinite-scroll lists, a page that
//! tries to reach another address, a page that never finishes loading, and a page whose
//! script allocates until the renderer dies.
//!
//! Every product is `div.product[data-id=ID]` with `h2 a` (`Product ID`, `/item/ID`) and
//! `span.price`, as in `/catalog`; none of them is in the HTML sent over the wire.

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
        .route("/js/catalog", get(js_catalogue))
        .route("/js/load-more", get(load_more))
        .route("/js/scroll", get(infinite_scroll))
        .route("/js/reach", get(reach))
        .route("/js/never-loads", get(never_loads))
        .route("/js/crash", get(crash))
        .merge(crate::guard_pages::routes())
}

fn number(params: &HashMap<String, String>, name: &str, default: u64) -> u64 {
    params
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// The script that builds product elements (`makeProducts(first, count)` returns a fragment).
const PRODUCT_SCRIPT: &str = r#"
function makeProduct(id) {
  const div = document.createElement('div');
  div.className = 'product';
  div.dataset.id = id;
  const cents = 999 + 125 * id;
  div.innerHTML = '<h2><a href="/item/' + id + '">Product ' + id + '</a></h2>' +
    '<span class="price">$' + Math.floor(cents / 100) + '.' + String(cents % 100).padStart(2, '0') + '</span>';
  div.style.minHeight = '120px';
  return div;
}
function appendProducts(list, first, count) {
  for (let id = first; id < first + count; id++) list.appendChild(makeProduct(id));
}
"#;

fn shell(title: &str, script: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><div id="list"></div><div id="controls"></div>
<script>{PRODUCT_SCRIPT}
{script}
</script></body></html>"#
    )
}

/// `/js/catalog?page=N&per=P&delay=MS`: products `(N-1)*P+1 ..= N*P` (P defaults to 10)
/// injected MS ms (default 200) after the script runs, then `div#done`.
async fn js_catalogue(Query(params): Params) -> Response {
    let page = number(&params, "page", 1).max(1);
    let per = number(&params, "per", 10);
    let delay = number(&params, "delay", 200);
    let first = (page - 1) * per + 1;
    html(shell(
        "JS catalogue",
        &format!(
            "setTimeout(() => {{ appendProducts(document.getElementById('list'), {first}, {per});
               const done = document.createElement('div'); done.id = 'done'; document.body.appendChild(done); }}, {delay});"
        ),
    ))
}

/// `/js/load-more?batches=B&per=P`: products 1..=P at first, then a `button.load-more`
/// that appends the next P products (after 150 ms) each time it is clicked; after B
/// batches in all the button is removed. B×P products in total.
async fn load_more(Query(params): Params) -> Response {
    let batches = number(&params, "batches", 3);
    let per = number(&params, "per", 10);
    html(shell(
        "Load more",
        &format!(
            r#"const list = document.getElementById('list');
let loaded = 0;
function loadBatch() {{ appendProducts(list, loaded * {per} + 1, {per}); loaded++; if (loaded >= {batches}) {{ const b = document.querySelector('button.load-more'); if (b) b.remove(); }} }}
setTimeout(() => {{
  const button = document.createElement('button');
  button.className = 'load-more'; button.textContent = 'Load more';
  button.addEventListener('click', () => setTimeout(loadBatch, 150));
  document.getElementById('controls').appendChild(button);
  loadBatch();
}}, 50);"#
        ),
    ))
}

/// `/js/scroll?batches=B&per=P`: products 1..=P at first; scrolling to the bottom appends the
/// next P (after 150 ms), B batches in all. B×P products in total.
async fn infinite_scroll(Query(params): Params) -> Response {
    let batches = number(&params, "batches", 3);
    let per = number(&params, "per", 10);
    html(shell(
        "Infinite scroll",
        &format!(
            r#"const list = document.getElementById('list');
let loaded = 0, loading = false;
function loadBatch() {{ appendProducts(list, loaded * {per} + 1, {per}); loaded++; loading = false; }}
window.addEventListener('scroll', () => {{
  if (loading || loaded >= {batches}) return;
  if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 50) {{ loading = true; setTimeout(loadBatch, 150); }}
}});
setTimeout(loadBatch, 50);"#
        ),
    ))
}

/// `/js/reach?target=URL`: three JS-injected products, plus an `<img>`, a `fetch()`, an
/// `<iframe>` and a WebSocket aimed at URL (for guard tests: URL should be another loopback
/// port). `body[data-websocket]` says whether the page could create the WebSocket
/// (`opened`) or its constructor threw (`refused`).
async fn reach(Query(params): Params) -> Response {
    let target = params.get("target").cloned().unwrap_or_default();
    let target_js = serde_json::Value::String(target).to_string();
    html(shell(
        "Reach",
        &format!(
            r#"appendProducts(document.getElementById('list'), 1, 3);
const t = {target_js};
const img = document.createElement('img'); img.src = t + '?via=img'; document.body.appendChild(img);
fetch(t + '?via=fetch').catch(() => {{}});
const frame = document.createElement('iframe'); frame.src = t + '?via=iframe'; document.body.appendChild(frame);
let ws = 'opened';
try {{ new WebSocket(t.replace(/^http/, 'ws') + '?via=websocket'); }} catch (e) {{ ws = 'refused'; }}
document.body.dataset.websocket = ws;"#
        ),
    ))
}

/// `/js/never-loads`: products injected at once, but a script that never finishes loading
/// (`/slow?ms=600000`) keeps the load event from ever firing.
async fn never_loads() -> Response {
    html(
        r#"<!DOCTYPE html><html><head><title>Never loads</title></head><body>
<div class="product" data-id="1"><h2><a href="/item/1">Product 1</a></h2></div>
<script src="/slow?ms=600000"></script></body></html>"#
            .to_owned(),
    )
}

/// `/js/crash`: an allocation bomb. One product is injected, then a script allocates memory
/// without end until V8 gives up and the renderer process dies (out of memory), as a hostile
/// or broken page would. `#done` never appears.
async fn crash() -> Response {
    html(shell(
        "Crash",
        r#"appendProducts(document.getElementById('list'), 1, 1);
const hoard = [];
setTimeout(() => { for (;;) hoard.push(new Array(1 << 20).fill(hoard.length + 0.5)); }, 50);"#,
    ))
}
