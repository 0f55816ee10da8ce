//! Rendering one request in one pooled browser: a fresh incognito context, request
//! interception through the URL guard, the task's headers, cookies, user agent and viewport,
//! wait conditions, and in-page pagination (clicking, scrolling) as DOM snapshots.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams, EventRequestPaused, FailRequestParams, RequestPattern,
};
use chromiumoxide::cdp::browser_protocol::inspector::{
    EnableParams as InspectorEnableParams, EventTargetCrashed,
};
use chromiumoxide::cdp::browser_protocol::network::{
    CookieParam, ErrorReason, EventResponseReceived, Headers, ResourceType, SetCookiesParams,
    SetExtraHttpHeadersParams, SetUserAgentOverrideParams,
};
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::error::CdpError;
use futures::StreamExt;
use selextract_fetch::guard::GuardPolicy;
use selextract_fetch::{FetchError, FetchRequest, FetchResponse, RenderOptions, Rendered};
use selextract_spec::WaitCondition;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::guard::check_request_url;
use crate::pool::Instance;

/// How many refused URLs a render reports by name.
const REPORTED_BLOCKED_URLS: usize = 5;
/// Quiet time that counts as "network idle" and as a settled DOM after a click or scroll.
const QUIET: Duration = Duration::from_millis(500);
/// How long a click or scroll may take to change anything before pagination ends.
const STEP_WAIT: Duration = Duration::from_secs(5);
/// Bound on DevTools calls that should be instant (context creation, evaluation).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Document responses seen by the page: frame id, HTTP status, MIME type.
type Documents = Arc<Mutex<Vec<(String, u16, Option<String>)>>>;

pub(crate) enum RenderFailure {
    /// No usable page, the browser is fine.
    Fetch(FetchError),
    /// The page hung (timeout): the browser is killed; the error is reported.
    Hung(FetchError),
    /// The renderer crashed or the browser went away: kill it and retry the page elsewhere.
    BrowserLost(String),
}

/// Requests the page made that the guard refused, and when the page last asked for anything.
struct Activity {
    blocked: u64,
    blocked_urls: Vec<String>,
    main_blocked: Option<String>,
    last_request: Instant,
}

pub(crate) async fn render_page(
    instance: &Arc<Instance>,
    req: &FetchRequest,
    options: &RenderOptions,
    policy: &GuardPolicy,
    proxy: Option<String>,
    cancel: &CancellationToken,
) -> Result<Rendered, RenderFailure> {
    let browser = &instance.browser;
    // With a proxy, everything goes through it: Chromium's implicit loopback bypass is
    // removed (`<-loopback>`); the URL guard still vets each request first.
    let context_params = CreateBrowserContextParams {
        proxy_bypass_list: proxy.as_ref().map(|_| "<-loopback>".to_owned()),
        proxy_server: proxy,
        ..Default::default()
    };
    let context =
        match tokio::time::timeout(CALL_TIMEOUT, browser.create_browser_context(context_params))
            .await
        {
            Ok(Ok(id)) => id,
            Ok(Err(error)) => return Err(RenderFailure::BrowserLost(error.to_string())),
            Err(_) => {
                return Err(RenderFailure::BrowserLost(
                    "creating a context timed out".into(),
                ));
            }
        };
    let disposer = ContextDisposer {
        instance: instance.clone(),
        context: Some(context.clone()),
    };
    let outcome = tokio::select! {
        outcome = render_in_context(instance, &context, req, options, policy) => outcome,
        () = cancel.cancelled() => Err(RenderFailure::Fetch(FetchError::Cancelled)),
    };
    let disposed = disposer.dispose().await;
    match outcome {
        Ok(rendered) if !disposed => {
            // The page is done but the browser did not answer: keep the result, restart the
            // browser through the "hung" path on the next acquire.
            tracing::warn!("disposing a browser context timed out");
            Ok(rendered)
        }
        other => other,
    }
}

/// Disposes the incognito context (and its pages) when the render ends, even when the render
/// future is dropped.
struct ContextDisposer {
    instance: Arc<Instance>,
    context: Option<BrowserContextId>,
}

impl ContextDisposer {
    async fn dispose(mut self) -> bool {
        let Some(context) = self.context.take() else {
            return true;
        };
        matches!(
            tokio::time::timeout(
                Duration::from_secs(3),
                self.instance.browser.dispose_browser_context(context),
            )
            .await,
            Ok(Ok(()))
        )
    }
}

impl Drop for ContextDisposer {
    fn drop(&mut self) {
        if let Some(context) = self.context.take() {
            let instance = self.instance.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(3),
                    instance.browser.dispose_browser_context(context),
                )
                .await;
            });
        }
    }
}

fn lost(error: CdpError) -> RenderFailure {
    RenderFailure::BrowserLost(error.to_string())
}

async fn render_in_context(
    instance: &Arc<Instance>,
    context: &BrowserContextId,
    req: &FetchRequest,
    options: &RenderOptions,
    policy: &GuardPolicy,
) -> Result<Rendered, RenderFailure> {
    let browser = &instance.browser;
    let download = SetDownloadBehaviorParams {
        behavior: SetDownloadBehaviorBehavior::Deny,
        browser_context_id: Some(context.clone()),
        download_path: None,
        events_enabled: None,
    };
    browser.execute(download).await.map_err(lost)?;
    let mut target = CreateTargetParams::new("about:blank");
    target.browser_context_id = Some(context.clone());
    let page = match tokio::time::timeout(CALL_TIMEOUT, browser.new_page(target)).await {
        Ok(Ok(page)) => page,
        Ok(Err(error)) => return Err(lost(error)),
        Err(_) => {
            return Err(RenderFailure::BrowserLost(
                "opening a page timed out".into(),
            ));
        }
    };

    let main_frame = page
        .mainframe()
        .await
        .ok()
        .flatten()
        .map(|f| f.inner().clone());
    let activity = Arc::new(Mutex::new(Activity {
        blocked: 0,
        blocked_urls: Vec::new(),
        main_blocked: None,
        last_request: Instant::now(),
    }));
    let interceptor = spawn_interceptor(
        &page,
        policy,
        options.browser.load_images,
        main_frame,
        &activity,
    )
    .await
    .map_err(lost)?;
    let _interceptor = AbortOnDrop(interceptor);
    let mut crashed = page
        .event_listener::<EventTargetCrashed>()
        .await
        .map_err(lost)?;
    page.execute(InspectorEnableParams::default())
        .await
        .map_err(lost)?;
    let documents: Documents = Arc::new(Mutex::new(Vec::new()));
    let recorder = spawn_document_recorder(&page, &documents)
        .await
        .map_err(lost)?;
    let _recorder = AbortOnDrop(recorder);

    configure_page(&page, req, options, policy).await?;

    let work = async {
        navigate(&page, req, &activity).await?;
        wait_for_conditions(&page, &options.browser.wait_conditions, &activity).await;
        paginate(&page, req, options, &documents).await
    };
    let result = tokio::select! {
        result = work => result,
        _ = crashed.next() => Err(RenderFailure::BrowserLost("the renderer crashed".into())),
    };
    let pages = result?;
    let activity = lock(&activity);
    Ok(Rendered {
        pages,
        blocked_requests: activity.blocked,
        blocked_urls: activity.blocked_urls.clone(),
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Pauses every request and lets it continue only when the guard allows it; images, media
/// and fonts are refused when the task does not load images.
async fn spawn_interceptor(
    page: &Page,
    policy: &GuardPolicy,
    load_images: bool,
    main_frame: Option<String>,
    activity: &Arc<Mutex<Activity>>,
) -> Result<tokio::task::JoinHandle<()>, CdpError> {
    let mut paused = page.event_listener::<EventRequestPaused>().await?;
    let page_for_task = page.clone();
    let policy = policy.clone();
    let activity = activity.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = paused.next().await {
            let page = page_for_task.clone();
            let policy = policy.clone();
            let activity = activity.clone();
            let main_frame = main_frame.clone();
            // Each decision may need DNS: decide concurrently so one slow name does not
            // hold the page's other requests.
            tokio::spawn(async move {
                lock(&activity).last_request = Instant::now();
                let url = event.request.url.clone();
                let media = matches!(
                    event.resource_type,
                    ResourceType::Image | ResourceType::Media | ResourceType::Font
                );
                let verdict = if media && !load_images {
                    Err(None)
                } else {
                    check_request_url(&policy, &url).await.map_err(Some)
                };
                match verdict {
                    Ok(()) => {
                        let _ = page
                            .execute(ContinueRequestParams::new(event.request_id.clone()))
                            .await;
                    }
                    Err(reason) => {
                        if let Some(reason) = reason {
                            tracing::info!(%url, %reason, "browser request refused by the URL guard");
                            let mut activity = lock(&activity);
                            activity.blocked += 1;
                            if activity.blocked_urls.len() < REPORTED_BLOCKED_URLS {
                                activity.blocked_urls.push(url.clone());
                            }
                            let in_main_frame =
                                main_frame.as_deref() == Some(event.frame_id.inner().as_str());
                            if event.resource_type == ResourceType::Document
                                && in_main_frame
                                && activity.main_blocked.is_none()
                            {
                                activity.main_blocked = Some(reason);
                            }
                        }
                        let _ = page
                            .execute(FailRequestParams::new(
                                event.request_id.clone(),
                                ErrorReason::BlockedByClient,
                            ))
                            .await;
                    }
                }
            });
        }
    });
    let pattern = RequestPattern {
        url_pattern: Some("*".to_owned()),
        ..Default::default()
    };
    page.execute(EnableParams {
        patterns: Some(vec![pattern]),
        handle_auth_requests: None,
    })
    .await?;
    Ok(task)
}

/// Records the status of every document response (frame id, status, MIME type).
async fn spawn_document_recorder(
    page: &Page,
    documents: &Documents,
) -> Result<tokio::task::JoinHandle<()>, CdpError> {
    let mut responses = page.event_listener::<EventResponseReceived>().await?;
    let documents = documents.clone();
    Ok(tokio::spawn(async move {
        while let Some(event) = responses.next().await {
            if event.r#type == ResourceType::Document {
                let frame = event
                    .frame_id
                    .as_ref()
                    .map(|f| f.inner().clone())
                    .unwrap_or_default();
                let status = u16::try_from(event.response.status).unwrap_or(0);
                lock(&documents).push((frame, status, Some(event.response.mime_type.clone())));
            }
        }
    }))
}

async fn configure_page(
    page: &Page,
    req: &FetchRequest,
    options: &RenderOptions,
    policy: &GuardPolicy,
) -> Result<(), RenderFailure> {
    let browser = &options.browser;
    let mut user_agent = browser.user_agent.clone();
    let mut headers = serde_json::Map::new();
    for (name, value) in &req.headers {
        if name.eq_ignore_ascii_case("user-agent") {
            user_agent = Some(value.clone());
        } else {
            headers.insert(name.clone(), serde_json::Value::String(value.clone()));
        }
    }
    if !headers.is_empty() {
        page.execute(SetExtraHttpHeadersParams::new(Headers::new(
            serde_json::Value::Object(headers),
        )))
        .await
        .map_err(lost)?;
    }
    if let Some(user_agent) = user_agent {
        page.execute(SetUserAgentOverrideParams::new(user_agent))
            .await
            .map_err(lost)?;
    }
    if !req.cookies.is_empty() {
        let cookies = req
            .cookies
            .iter()
            .map(|(name, value)| {
                let mut cookie = CookieParam::new(name.clone(), value.clone());
                cookie.url = Some(req.url.to_string());
                cookie
            })
            .collect();
        page.execute(SetCookiesParams::new(cookies))
            .await
            .map_err(lost)?;
    }
    page.execute(SetDeviceMetricsOverrideParams::new(
        i64::from(browser.viewport_width.max(1)),
        i64::from(browser.viewport_height.max(1)),
        1.0,
        false,
    ))
    .await
    .map_err(lost)?;
    if !policy.allow_private_networks {
        // CDP `Fetch` cannot pause WebSocket handshakes, so the guard cannot vet them, and
        // `Network.setBlockedURLs` does not apply to them either (a test showed a handshake
        // reaching a refused address). The constructors are taken away from every document
        // before its own scripts run instead.
        page.execute(AddScriptToEvaluateOnNewDocumentParams::new(
            REFUSE_WEBSOCKETS_SCRIPT,
        ))
        .await
        .map_err(lost)?;
    }
    Ok(())
}

/// Replaces `WebSocket` (and `WebSocketStream`) with constructors that throw, unforgeably.
const REFUSE_WEBSOCKETS_SCRIPT: &str = r#"(() => {
  const refuse = function WebSocket() {
    throw new DOMException('WebSocket connections are refused: the URL guard cannot check them', 'SecurityError');
  };
  for (const name of ['WebSocket', 'WebSocketStream']) {
    try { Object.defineProperty(globalThis, name, { value: refuse, writable: false, configurable: false }); } catch (e) {}
  }
})();"#;

async fn navigate(
    page: &Page,
    req: &FetchRequest,
    activity: &Arc<Mutex<Activity>>,
) -> Result<(), RenderFailure> {
    let limit = if req.timeout.is_zero() {
        Duration::from_secs(60)
    } else {
        req.timeout
    };
    let navigation = tokio::time::timeout(limit, page.goto(req.url.as_str())).await;
    if let Some(reason) = lock(activity).main_blocked.clone() {
        let error = match guard_error_of(req) {
            Some(guard) => FetchError::Blocked {
                url: req.url.clone(),
                reason: guard,
            },
            None => FetchError::Connect {
                url: req.url.clone(),
                message: format!("refused by the URL guard: {reason}"),
            },
        };
        return Err(RenderFailure::Fetch(error));
    }
    match navigation {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(CdpError::Timeout)) | Err(_) => Err(RenderFailure::Hung(FetchError::Timeout {
            url: req.url.clone(),
            stage: "browser navigation",
        })),
        Ok(Err(CdpError::ChromeMessage(message))) => {
            Err(RenderFailure::Fetch(FetchError::Connect {
                url: req.url.clone(),
                message,
            }))
        }
        Ok(Err(error)) => Err(lost(error)),
    }
}

/// The guard's typed refusal of the request's own URL when it is an IP literal (for the
/// `blocked_address` error class).
fn guard_error_of(req: &FetchRequest) -> Option<selextract_fetch::GuardError> {
    let port = req.url.port_or_known_default()?;
    let ip = match req.url.host()? {
        url::Host::Ipv4(ip) => std::net::IpAddr::V4(ip),
        url::Host::Ipv6(ip) => std::net::IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    selextract_fetch::guard::check_ip(std::net::SocketAddr::new(ip, port).ip()).err()
}

async fn evaluate<T: serde::de::DeserializeOwned>(page: &Page, script: String) -> Option<T> {
    match tokio::time::timeout(CALL_TIMEOUT, page.evaluate(script)).await {
        Ok(Ok(result)) => result.into_value().ok(),
        _ => None,
    }
}

async fn wait_for_conditions(
    page: &Page,
    conditions: &[WaitCondition],
    activity: &Arc<Mutex<Activity>>,
) {
    for condition in conditions {
        match condition {
            WaitCondition::Timeout { timeout_ms } => {
                tokio::time::sleep(Duration::from_millis(*timeout_ms)).await;
            }
            WaitCondition::Element {
                selector,
                timeout_ms,
            } => {
                let deadline = Instant::now() + Duration::from_millis(*timeout_ms);
                let script = format!("document.querySelector({}) !== null", js_string(selector));
                while Instant::now() < deadline {
                    if evaluate::<bool>(page, script.clone()).await == Some(true) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            WaitCondition::NetworkIdle { timeout_ms } => {
                let deadline = Instant::now() + Duration::from_millis(*timeout_ms);
                while Instant::now() < deadline {
                    if lock(activity).last_request.elapsed() >= QUIET {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

fn js_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// Serialises the rendered DOM, leaving out items already handed out by an earlier
/// snapshot of this page, and marks the current items as handed out.
fn snapshot_script(item_selector: Option<&str>) -> String {
    let selector = item_selector.map_or("null".to_owned(), js_string);
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
  return doctype + clone.outerHTML;
}})()"#
    )
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
    let html: Option<String> =
        evaluate(page, snapshot_script(options.item_selector.as_deref())).await;
    let Some(html) = html else {
        return Err(RenderFailure::Hung(FetchError::Timeout {
            url: req.url.clone(),
            stage: "browser rendering",
        }));
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

async fn paginate(
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
