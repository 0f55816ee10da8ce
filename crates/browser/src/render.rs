//! Rendering one request in one pooled browser: a fresh incognito context behind the
//! render's guarding proxy, request interception through the same guard, the task's headers,
//! cookies, user agent and viewport, and wait conditions; the snapshots are taken by
//! [`crate::snapshot`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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
    ErrorReason, EventResponseReceived, ResourceType, SetBypassServiceWorkerParams,
    SetUserAgentOverrideParams,
};
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams, SetAutoAttachParams,
};
use chromiumoxide::error::CdpError;
use futures::StreamExt;
use selextract_fetch::{FetchError, FetchRequest, RenderOptions, Rendered};
use selextract_spec::WaitCondition;
use tokio_util::sync::CancellationToken;

use crate::first_party::FirstParty;
use crate::guard::{Refusal, RenderGuard};
use crate::pool::Instance;
use crate::snapshot::paginate;

/// Quiet time that counts as "network idle" and as a settled DOM after a click or scroll.
pub(crate) const QUIET: Duration = Duration::from_millis(500);
/// Bound on DevTools calls that should be instant (context creation, evaluation).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Document responses seen by the page: frame id, HTTP status, MIME type.
pub(crate) type Documents = Arc<Mutex<Vec<(String, u16, Option<String>)>>>;

pub(crate) enum RenderFailure {
    /// No usable page, the browser is fine.
    Fetch(FetchError),
    /// The page hung (timeout): the browser is killed; the error is reported.
    Hung(FetchError),
    /// The renderer crashed or the browser went away: kill it and retry the page elsewhere.
    BrowserLost(String),
}

/// Why the main frame's document was refused, and when the page last asked for anything.
struct Activity {
    main_blocked: Option<Refusal>,
    last_request: Instant,
}

pub(crate) async fn render_page(
    instance: &Arc<Instance>,
    req: &FetchRequest,
    options: &RenderOptions,
    guard: &Arc<RenderGuard>,
    proxy_server: &str,
    cancel: &CancellationToken,
) -> Result<Rendered, RenderFailure> {
    let browser = &instance.browser;
    // Everything the context does goes through the render's guarding proxy; Chromium's
    // implicit loopback bypass is removed (`<-loopback>`).
    let context_params = CreateBrowserContextParams {
        proxy_bypass_list: Some("<-loopback>".to_owned()),
        proxy_server: Some(proxy_server.to_owned()),
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
        outcome = render_in_context(instance, &context, req, options, guard) => outcome,
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

pub(crate) fn lost(error: CdpError) -> RenderFailure {
    RenderFailure::BrowserLost(error.to_string())
}

async fn render_in_context(
    instance: &Arc<Instance>,
    context: &BrowserContextId,
    req: &FetchRequest,
    options: &RenderOptions,
    guard: &Arc<RenderGuard>,
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

    configure_workers(&page).await.map_err(lost)?;
    let main_frame = page
        .mainframe()
        .await
        .ok()
        .flatten()
        .map(|f| f.inner().clone());
    let activity = Arc::new(Mutex::new(Activity {
        main_blocked: None,
        last_request: Instant::now(),
    }));
    let interceptor = spawn_interceptor(
        &page,
        guard,
        FirstParty::of(req),
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

    configure_page(&page, req, options).await?;

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
    let blocked = guard.blocked();
    Ok(Rendered {
        pages,
        blocked_requests: blocked.count,
        blocked_urls: blocked.urls,
    })
}

/// Lets the page's workers start without waiting for a debugger, and keeps the page's own
/// requests away from Service Workers. chromiumoxide auto-attaches to workers with
/// `waitForDebuggerOnStart`; it resumes a dedicated worker, but it detaches from a Service
/// Worker at once, which leaves that worker paused before its script runs, so
/// `navigator.serviceWorker.register()` never settled. Without the wait, Service Workers run,
/// and what they import and fetch leaves Chromium through the render's guarding proxy like
/// everything else in the context.
async fn configure_workers(page: &Page) -> Result<(), CdpError> {
    let params = SetAutoAttachParams {
        auto_attach: true,
        wait_for_debugger_on_start: false,
        flatten: Some(true),
        filter: None,
    };
    page.execute(params).await?;
    // The page's own requests never go to a Service Worker: one that controls the page would
    // fetch them itself, out of the interceptor's sight (no task headers for the first party,
    // images loaded when the task does not load them). Its own requests still meet the
    // guarding proxy.
    page.execute(SetBypassServiceWorkerParams::new(true))
        .await
        .map(drop)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Pauses every request of the page and lets it continue only when the render's guard allows
/// it (the guarding proxy checks again, on the same pinned answers); images, media and fonts
/// are refused when the task does not load images; first-party requests get the task's
/// headers and cookies.
async fn spawn_interceptor(
    page: &Page,
    guard: &Arc<RenderGuard>,
    first_party: FirstParty,
    load_images: bool,
    main_frame: Option<String>,
    activity: &Arc<Mutex<Activity>>,
) -> Result<tokio::task::JoinHandle<()>, CdpError> {
    let mut paused = page.event_listener::<EventRequestPaused>().await?;
    let page_for_task = page.clone();
    let guard = guard.clone();
    let activity = activity.clone();
    let first_party = Arc::new(first_party);
    let task = tokio::spawn(async move {
        while let Some(event) = paused.next().await {
            let page = page_for_task.clone();
            let guard = guard.clone();
            let activity = activity.clone();
            let main_frame = main_frame.clone();
            let first_party = first_party.clone();
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
                    guard.check_url(&url).await.map_err(Some)
                };
                match verdict {
                    Ok(()) => {
                        let mut params = ContinueRequestParams::new(event.request_id.clone());
                        params.headers =
                            first_party.headers_for(&url, event.request.headers.inner());
                        let _ = page.execute(params).await;
                    }
                    Err(reason) => {
                        let mut error = ErrorReason::BlockedByClient;
                        if let Some(reason) = reason {
                            if reason.is_blocked() {
                                tracing::info!(%url, %reason, "browser request refused by the URL guard");
                                guard.record_blocked(&url);
                            } else {
                                error = ErrorReason::NameNotResolved;
                            }
                            let in_main_frame =
                                main_frame.as_deref() == Some(event.frame_id.inner().as_str());
                            let mut activity = lock(&activity);
                            if event.resource_type == ResourceType::Document
                                && in_main_frame
                                && activity.main_blocked.is_none()
                            {
                                activity.main_blocked = Some(reason);
                            }
                        }
                        let _ = page
                            .execute(FailRequestParams::new(event.request_id.clone(), error))
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
) -> Result<(), RenderFailure> {
    let browser = &options.browser;
    // The user agent is no secret: it goes to every origin, like a browser's own.
    let user_agent = req
        .headers
        .iter()
        .rev()
        .find(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
        .map(|(_, value)| value.clone())
        .or_else(|| browser.user_agent.clone());
    if let Some(user_agent) = user_agent {
        page.execute(SetUserAgentOverrideParams::new(user_agent))
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
    Ok(())
}

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
    if let Some(refusal) = lock(activity).main_blocked.clone() {
        let error = match refusal {
            Refusal::Guard(reason) => FetchError::Blocked {
                url: req.url.clone(),
                reason,
            },
            Refusal::Lookup { message, .. } => FetchError::Connect {
                url: req.url.clone(),
                message,
            },
            Refusal::Other(reason) => FetchError::Connect {
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

pub(crate) async fn evaluate<T: serde::de::DeserializeOwned>(
    page: &Page,
    script: String,
) -> Option<T> {
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

pub(crate) fn js_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}
