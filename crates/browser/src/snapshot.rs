//! DOM snapshots of a rendered page, capped in size, and in-page pagination (clicking,
//! scrolling) that yields one snapshot per step.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chromiumoxide::Page;
use selextract_fetch::{FetchError, FetchRequest, FetchResponse, RenderOptions};
use url::Url;

use crate::render::{Documents, QUIET, RenderFailure, evaluate, js_string, lock};

/// How long a click or scroll may take to change anything before pagination ends.
const STEP_WAIT: Duration = Duration::from_secs(5);

/// Serialises the rendered DOM, leaving out items already handed out by an earlier
/// snapshot of this page, and marks the current items as handed out. A DOM whose UTF-8 size
/// passes `max_bytes` is not sent over the DevTools connection: only its size is.
fn snapshot_script(item_selector: Option<&str>, max_bytes: Option<usize>) -> String {
    let selector = item_selector.map_or("null".to_owned(), js_string);
    let max = max_bytes.map_or("null".to_owned(), |m| m.to_string());
    format!(
        r#"(() => {{
  const sel = {selector};
  const seen = 'data-selextract-seen';
  const clone = document.documentElement.cloneNode(true);
  if (sel) {{
    try {{
      clone.querySelectorAll('[' + seen + ']').forEach(e => e.remove());
      document.querySelectorAll(sel).forEach(e => e.setAttribute(seen, ''));
    }} catch (e) {{}}
  }}
  let doctype = '';
  if (document.doctype) doctype = new XMLSerializer().serializeToString(document.doctype);
  const html = doctype + clone.outerHTML;
  const max = {max};
  // A UTF-16 code unit is 1 to 3 UTF-8 bytes: measure exactly only when it matters.
  if (max !== null && html.length * 3 > max) {{
    const bytes = html.length > max ? html.length : new TextEncoder().encode(html).length;
    if (bytes > max) return {{ over: bytes }};
  }}
  return {{ html }};
}})()"#
    )
}

/// What the snapshot script returns: the DOM, or the size that exceeded the cap.
#[derive(serde::Deserialize)]
struct Snapshot {
    html: Option<String>,
    over: Option<u64>,
}

/// A cheap fingerprint of the DOM: changes when items are added or content is replaced.
const SIGNATURE_SCRIPT: &str = "location.href + '|' + document.getElementsByTagName('*').length + '|' + (document.body ? document.body.innerText.length : 0)";

async fn take_snapshot(
    page: &Page,
    req: &FetchRequest,
    options: &RenderOptions,
    documents: &Documents,
    started: Instant,
) -> Result<FetchResponse, RenderFailure> {
    let script = snapshot_script(options.item_selector.as_deref(), options.max_snapshot_bytes);
    let snapshot: Option<Snapshot> = evaluate(page, script).await;
    let html = match snapshot {
        Some(Snapshot {
            html: Some(html), ..
        }) => html,
        Some(Snapshot { over: Some(_), .. }) => {
            let limit = options.max_snapshot_bytes.unwrap_or(0);
            return Err(RenderFailure::Fetch(FetchError::TooLarge {
                url: req.url.clone(),
                limit: u64::try_from(limit).unwrap_or(u64::MAX),
            }));
        }
        _ => {
            return Err(RenderFailure::Hung(FetchError::Timeout {
                url: req.url.clone(),
                stage: "browser rendering",
            }));
        }
    };
    let href: Option<String> = evaluate(page, "location.href".to_owned()).await;
    let url = href
        .and_then(|h| Url::parse(&h).ok())
        .unwrap_or_else(|| req.url.clone());
    let main_frame = page
        .mainframe()
        .await
        .ok()
        .flatten()
        .map(|f| f.inner().clone());
    let (status, content_type) = {
        let documents = lock(documents);
        documents
            .iter()
            .rev()
            .find(|(frame, ..)| Some(frame) == main_frame.as_ref())
            .or_else(|| documents.first())
            .map_or((200, None), |(_, status, mime)| (*status, mime.clone()))
    };
    let content_type = content_type.map(|mime| {
        // The DOM is serialised as UTF-8 whatever the original encoding was.
        format!("{mime}; charset=utf-8")
    });
    Ok(FetchResponse {
        url,
        status: if status == 0 { 200 } else { status },
        content_type,
        body: Bytes::from(html),
        redirects: Vec::new(),
        attempts: 1,
        via_proxy: false,
        elapsed: started.elapsed(),
        rendered: true,
    })
}

pub(crate) async fn paginate(
    page: &Page,
    req: &FetchRequest,
    options: &RenderOptions,
    documents: &Documents,
) -> Result<Vec<FetchResponse>, RenderFailure> {
    let started = Instant::now();
    let max_pages = options.max_pages.max(1) as usize;
    let mut pages = vec![take_snapshot(page, req, options, documents, started).await?];
    let in_page = options.scroll || options.click_selector.is_some();
    while in_page && pages.len() < max_pages {
        if let Some(stop) = &options.stop_selector {
            let script = format!("document.querySelector({}) !== null", js_string(stop));
            if evaluate::<bool>(page, script).await == Some(true) {
                break;
            }
        }
        let before: Option<String> = evaluate(page, SIGNATURE_SCRIPT.to_owned()).await;
        let acted = if options.scroll {
            evaluate::<bool>(
                page,
                "window.scrollTo(0, document.documentElement.scrollHeight); true".to_owned(),
            )
            .await
            .unwrap_or(false)
        } else if let Some(selector) = &options.click_selector {
            click(page, selector).await
        } else {
            false
        };
        if !acted || !wait_for_change(page, before).await {
            break;
        }
        let snapshot = take_snapshot(page, req, options, documents, started).await?;
        pages.push(snapshot);
    }
    Ok(pages)
}

/// Clicks the pagination control when it is a button (not a link the engine follows by
/// URL); false when there is nothing (enabled and visible) to click.
async fn click(page: &Page, selector: &str) -> bool {
    let script = format!(
        r#"(() => {{
  const el = document.querySelector({sel});
  if (!el) return 'none';
  const href = el.tagName === 'A' ? (el.getAttribute('href') || '') : '';
  if (href && !href.startsWith('#') && !href.toLowerCase().startsWith('javascript:')) return 'link';
  if (el.disabled || el.getAttribute('aria-disabled') === 'true') return 'disabled';
  const style = getComputedStyle(el);
  if (style.display === 'none' || style.visibility === 'hidden') return 'hidden';
  el.scrollIntoView();
  el.click();
  return 'clicked';
}})()"#,
        sel = js_string(selector)
    );
    evaluate::<String>(page, script).await.as_deref() == Some("clicked")
}

/// Waits until the DOM (or the URL) changes and then settles; false when nothing changed.
async fn wait_for_change(page: &Page, before: Option<String>) -> bool {
    let deadline = Instant::now() + STEP_WAIT;
    let mut changed_at: Option<(Instant, Option<String>)> = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now: Option<String> = evaluate(page, SIGNATURE_SCRIPT.to_owned()).await;
        match &changed_at {
            None if now.is_some() && now != before => changed_at = Some((Instant::now(), now)),
            Some((_, last)) if now != *last => changed_at = Some((Instant::now(), now)),
            Some((at, _)) if at.elapsed() >= QUIET => {
                let ready: Option<String> = evaluate(page, "document.readyState".to_owned()).await;
                if ready.as_deref() == Some("complete") {
                    return true;
                }
            }
            _ => {}
        }
    }
    changed_at.is_some()
}
