//! The run loop: one pagination chain per start URL, `concurrency` chains at a time, with
//! extraction running ahead of the chain so that the next page is requested while the
//! current one is still being extracted.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use selextract_extract::{Extraction, Extractor, NextPage, Page};
use selextract_fetch::{FetchError, FetchRequest, FetchResponse, Fetcher, RenderOptions, Rendered};
use selextract_spec::{Mode, SelectorType, TaskSpec, ValidatedSpec};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::{
    EngineError, EngineEvent, EngineOptions, FetchMode, LogLevel, LogLine, PageKey, PageOutcome,
    PageResult, Progress, StopReason, Summary, millis,
};

/// Start running `spec`. Events arrive on the returned channel; the last one is
/// [`EngineEvent::Done`]. Cancelling `cancel` stops fetching promptly; pages already
/// fetched are still extracted and emitted.
pub fn start(
    spec: Arc<ValidatedSpec>,
    options: EngineOptions,
    cancel: CancellationToken,
) -> Result<mpsc::Receiver<EngineEvent>, EngineError> {
    let mode = spec.spec().mode;
    if mode == Mode::Browser && options.browser.is_none() {
        return Err(EngineError::BrowserUnavailable("browser"));
    }
    let (tx, rx) = mpsc::channel(256);
    let shared = Arc::new(Shared {
        extractor: Extractor::from_validated(&spec),
        spec,
        options,
        user_cancel: cancel.clone(),
        // Stops every chain when the budget runs out, without looking like a user cancel.
        stop: cancel.child_token(),
        budget_exhausted: std::sync::atomic::AtomicBool::new(false),
        progress: Mutex::new(Progress::default()),
        tx,
    });
    tokio::spawn(drive(shared));
    Ok(rx)
}

struct Shared {
    spec: Arc<ValidatedSpec>,
    extractor: Extractor,
    options: EngineOptions,
    user_cancel: CancellationToken,
    stop: CancellationToken,
    budget_exhausted: std::sync::atomic::AtomicBool,
    progress: Mutex<Progress>,
    tx: mpsc::Sender<EngineEvent>,
}

impl Shared {
    fn task(&self) -> &TaskSpec {
        self.spec.spec()
    }

    fn progress(&self) -> Progress {
        match self.progress.lock() {
            Ok(p) => *p,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn update_progress(&self, f: impl FnOnce(&mut Progress)) -> Progress {
        let mut guard = match self.progress.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard);
        *guard
    }

    async fn log(&self, level: LogLevel, message: String, fields: serde_json::Value) {
        let _ = self
            .tx
            .send(EngineEvent::Log(LogLine {
                level,
                message,
                fields,
            }))
            .await;
    }

    async fn emit_page(&self, page: PageResult) {
        let failed = !page.outcome.is_ok();
        let records = page.records.len() as u64;
        let dropped = page
            .diagnostics
            .as_ref()
            .map_or(0, |d| d.records_dropped_missing_required as u64);
        let cu = page.compute_units;
        let progress = self.update_progress(|p| {
            p.pages_done += 1;
            if failed {
                p.pages_failed += 1;
            }
            p.records += records;
            p.records_dropped += dropped;
            p.compute_units += cu;
        });
        let _ = self.tx.send(EngineEvent::Page(Box::new(page))).await;
        let _ = self.tx.send(EngineEvent::Progress(progress)).await;
    }
}

async fn drive(shared: Arc<Shared>) {
    let started = Instant::now();
    let start_urls: Vec<Url> = shared.spec.start_urls().to_vec();
    shared.update_progress(|p| p.pages_known = start_urls.len() as u64);
    let concurrency = shared.options.concurrency.max(1);
    futures::stream::iter(start_urls.into_iter().enumerate())
        .map(|(index, url)| {
            run_chain(
                shared.clone(),
                u32::try_from(index).unwrap_or(u32::MAX),
                url,
            )
        })
        .buffer_unordered(concurrency)
        .for_each(|()| async {})
        .await;
    let stop = if shared
        .budget_exhausted
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        StopReason::BudgetExhausted
    } else if shared.user_cancel.is_cancelled() {
        StopReason::Cancelled
    } else {
        StopReason::Finished
    };
    let summary = Summary {
        progress: shared.progress(),
        stop,
        elapsed_ms: millis(started.elapsed()),
    };
    let _ = shared.tx.send(EngineEvent::Done(summary)).await;
}

/// A page fetched and waiting for (or undergoing) extraction.
type Pending = JoinHandle<PageResult>;

/// Follow one start URL's pagination chain to its end.
async fn run_chain(shared: Arc<Shared>, start_index: u32, start_url: Url) {
    let task = shared.task();
    let max_pages = task.pagination.as_ref().map_or(1, |p| p.max_pages.max(1));
    let paginates = task
        .pagination
        .as_ref()
        .is_some_and(|p| p.next_selector.is_some());
    let mut visited: HashSet<String> = HashSet::new();
    // Extractions run ahead of the chain; a separate emitter hands them out in page order as
    // soon as each finishes, so a page is never held back by the next page's fetch. The
    // channel's bound is the look-ahead that keeps memory flat.
    let (pending, mut in_order) =
        mpsc::channel::<Pending>(shared.options.extraction_lookahead.max(1));
    let emitter_shared = shared.clone();
    let emitter = tokio::spawn(async move {
        while let Some(handle) = in_order.recv().await {
            emit_joined(&emitter_shared, handle).await;
        }
    });
    let mut next_url = Some(start_url);
    let mut page_index: u32 = 0;

    while let Some(url) = next_url.take() {
        if shared.stop.is_cancelled() {
            break;
        }
        visited.insert(without_fragment(&url));
        let key = PageKey {
            start_index,
            page_index,
        };
        let fetched = fetch_page(&shared, key, &url, max_pages - page_index).await;
        let (response, mode, units, in_page) = match fetched {
            Fetched::Response {
                response,
                mode,
                units,
                in_page,
            } => (response, mode, units, in_page),
            Fetched::Failed(page) => {
                let _ = pending.send(tokio::spawn(async move { *page })).await;
                break;
            }
            Fetched::Stopped => break,
        };
        // In-page pagination (a clicked button, scrolling) produced more snapshots of the
        // same URL: each is a page of its own, charged like one; the last one continues
        // the chain as usual.
        let mut response = response;
        let mut out_of_budget = false;
        for snapshot in in_page {
            let earlier = std::mem::replace(&mut response, snapshot);
            let _ = pending
                .send(spawn_extraction(
                    &shared,
                    PageKey {
                        start_index,
                        page_index,
                    },
                    url.clone(),
                    earlier,
                    mode,
                    units,
                ))
                .await;
            page_index += 1;
            shared.update_progress(|p| p.pages_known += 1);
            if !shared.options.budget.try_reserve(units) {
                shared
                    .budget_exhausted
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                shared.stop.cancel();
                out_of_budget = true;
                break;
            }
        }
        if out_of_budget {
            break;
        }
        let key = PageKey {
            start_index,
            page_index,
        };

        let more_allowed = paginates && page_index + 1 < max_pages;
        if more_allowed {
            // The cheap pass finds the next link so the next request goes out while this
            // page's full extraction runs on another thread.
            let next = if (200..300).contains(&response.status) {
                find_next(&shared, &response).await
            } else {
                NextPage {
                    url: None,
                    stop: true,
                }
            };
            let _ = pending
                .send(spawn_extraction(&shared, key, url, response, mode, units))
                .await;
            next_url = accept_next(&shared, next, &visited, key).await;
        } else {
            let _ = pending
                .send(spawn_extraction(&shared, key, url, response, mode, units))
                .await;
        }
        if next_url.is_some() {
            shared.update_progress(|p| p.pages_known += 1);
        }
        page_index += 1;
    }
    drop(pending);
    let _ = emitter.await;
}

async fn emit_joined(shared: &Shared, handle: Pending) {
    match handle.await {
        Ok(page) => shared.emit_page(page).await,
        Err(join_error) => {
            // Extraction never fails on bad HTML; a panic here is a bug, recorded loudly.
            shared
                .log(
                    LogLevel::Error,
                    format!("extraction task failed: {join_error}"),
                    json!({}),
                )
                .await;
        }
    }
}

async fn accept_next(
    shared: &Shared,
    next: NextPage,
    visited: &HashSet<String>,
    key: PageKey,
) -> Option<Url> {
    if next.stop {
        shared
            .log(
                LogLevel::Info,
                "stop selector matched; pagination ends".to_owned(),
                json!({"page": key.to_string()}),
            )
            .await;
        return None;
    }
    let url = next.url?;
    if visited.contains(&without_fragment(&url)) {
        shared
            .log(
                LogLevel::Info,
                "next link repeats a visited URL; pagination ends".to_owned(),
                json!({"page": key.to_string(), "url": url.as_str()}),
            )
            .await;
        return None;
    }
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some(url)
}

// Short-lived and moved once per page; boxing the response would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Fetched {
    Response {
        response: FetchResponse,
        mode: FetchMode,
        units: u64,
        /// Further snapshots from in-page pagination (browser mode), in order.
        in_page: Vec<FetchResponse>,
    },
    Failed(Box<PageResult>),
    Stopped,
}

fn fetch_request(task: &TaskSpec, url: &Url, session_key: Option<&String>) -> FetchRequest {
    FetchRequest {
        url: url.clone(),
        headers: task
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cookies: task
            .cookies
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        timeout: std::time::Duration::from_millis(task.timeout_ms),
        max_retries: task.max_retries,
        retry_delay: std::time::Duration::from_millis(task.retry_delay_ms),
        respect_robots_txt: task.respect_robots_txt,
        rate_limit: task.rate_limit.clone(),
        use_proxy: task.proxy.enabled,
        session_key: if task.proxy.sticky_session {
            session_key.cloned()
        } else {
            None
        },
        politeness_scope: session_key.cloned(),
        proxy_max_failures: Some(task.proxy.max_failures),
    }
}

/// Reserve compute units, fetch, and classify the result.
/// What the browser should do on the page: the task's `browser` section and, in browser
/// mode, in-page pagination (click a button, scroll) for up to `pages_left` snapshots.
fn render_options(spec: &ValidatedSpec, pages_left: u32) -> RenderOptions {
    let task = spec.spec();
    let limits = spec.limits();
    let css = |selector: &Option<String>, kind: Option<SelectorType>| match (selector, kind) {
        (Some(s), Some(SelectorType::Css)) => Some(s.clone()),
        (Some(s), None) if !(s.starts_with('/') || s.starts_with("./") || s.starts_with('(')) => {
            Some(s.clone())
        }
        _ => None,
    };
    let pagination = task.pagination.as_ref();
    RenderOptions {
        browser: task.browser.clone(),
        item_selector: css(&task.item_selector, task.item_selector_type),
        click_selector: pagination.and_then(|p| css(&p.next_selector, p.next_selector_type)),
        scroll: pagination.is_some_and(|p| p.scroll),
        max_pages: if pagination.is_some() {
            pages_left.min(limits.max_snapshots).max(1)
        } else {
            1
        },
        stop_selector: pagination.and_then(|p| css(&p.stop_selector, None)),
        max_snapshot_bytes: Some(limits.max_snapshot_bytes),
    }
}

/// Log the requests a rendered page made that the URL guard refused.
async fn report_blocked(shared: &Shared, key: PageKey, rendered: &Rendered) {
    if rendered.blocked_requests > 0 {
        shared
            .log(
                LogLevel::Warn,
                format!(
                    "the page made {} request(s) that the URL guard refused",
                    rendered.blocked_requests
                ),
                json!({"page": key.to_string(), "blocked_requests": rendered.blocked_requests, "blocked_urls": rendered.blocked_urls}),
            )
            .await;
    }
}

async fn fetch_page(shared: &Shared, key: PageKey, url: &Url, pages_left: u32) -> Fetched {
    let task = shared.task();
    let (fetcher, mode): (&Arc<dyn Fetcher>, FetchMode) = match (task.mode, &shared.options.browser)
    {
        (Mode::Browser, Some(browser)) => (browser, FetchMode::Browser),
        _ => (&shared.options.http, FetchMode::Http),
    };
    let rates = shared.options.rates;
    let units = match mode {
        FetchMode::Http => rates.http_page,
        FetchMode::Browser => rates.browser_page,
    } + if task.proxy.enabled {
        rates.proxy_page
    } else {
        0
    };
    if !shared.options.budget.try_reserve(units) {
        shared
            .budget_exhausted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        shared.stop.cancel();
        shared
            .log(
                LogLevel::Warn,
                "compute units exhausted; the run stops".to_owned(),
                json!({"page": key.to_string()}),
            )
            .await;
        return Fetched::Stopped;
    }
    let request = fetch_request(task, url, shared.options.session_key.as_ref());
    let started = Instant::now();
    let result = match mode {
        FetchMode::Http => fetcher
            .fetch(&request, &shared.stop)
            .await
            .map(|r| (r, Vec::new())),
        FetchMode::Browser => {
            let options = render_options(&shared.spec, pages_left);
            match fetcher.render(&request, &options, &shared.stop).await {
                Ok(rendered) => {
                    report_blocked(shared, key, &rendered).await;
                    let mut pages = rendered.pages.into_iter();
                    match pages.next() {
                        Some(first) => Ok((first, pages.collect())),
                        None => Err(FetchError::Body {
                            url: url.clone(),
                            message: "the browser returned no page".to_owned(),
                        }),
                    }
                }
                Err(error) => Err(error),
            }
        }
    };
    match result {
        Ok((response, in_page)) => Fetched::Response {
            response,
            mode,
            units,
            in_page,
        },
        Err(FetchError::Cancelled) => {
            shared.options.budget.refund(units);
            Fetched::Stopped
        }
        Err(error) => {
            shared.options.budget.refund(units);
            let class = error.class().to_owned();
            let message = error.to_string();
            shared
                .log(
                    LogLevel::Warn,
                    format!("page failed: {message}"),
                    json!({"page": key.to_string(), "url": url.as_str(), "class": class}),
                )
                .await;
            Fetched::Failed(Box::new(PageResult {
                key,
                url: url.clone(),
                final_url: None,
                status: None,
                outcome: PageOutcome::Error { class, message },
                records: Vec::new(),
                diagnostics: None,
                compute_units: 0,
                mode,
                via_proxy: false,
                attempts: 0,
                elapsed_ms: millis(started.elapsed()),
            }))
        }
    }
}

async fn find_next(shared: &Arc<Shared>, response: &FetchResponse) -> NextPage {
    let shared = shared.clone();
    let body = response.body.clone();
    let url = response.url.clone();
    let content_type = response.content_type.clone();
    let rendered = response.rendered;
    let joined = tokio::task::spawn_blocking(move || {
        shared.extractor.find_next(&Page {
            url: &url,
            body: &body,
            content_type: content_type.as_deref(),
            rendered,
        })
    })
    .await;
    joined.unwrap_or(NextPage {
        url: None,
        stop: true,
    })
}

fn spawn_extraction(
    shared: &Arc<Shared>,
    key: PageKey,
    requested: Url,
    response: FetchResponse,
    mode: FetchMode,
    units: u64,
) -> Pending {
    let shared = shared.clone();
    tokio::spawn(async move {
        let auto_fallback = shared.task().mode == Mode::Auto && shared.options.browser.is_some();
        let page = extract_response(&shared, key, requested.clone(), response, mode, units).await;
        if auto_fallback
            && page.outcome.is_ok()
            && needs_browser(&page)
            && let Fetched::Response {
                response,
                units: browser_units,
                ..
            } = fetch_with_browser(&shared, key, &requested).await
        {
            {
                let mut rendered = extract_response(
                    &shared,
                    key,
                    requested,
                    response,
                    FetchMode::Browser,
                    browser_units,
                )
                .await;
                rendered.compute_units += page.compute_units;
                return rendered;
            }
        }
        page
    })
}

/// Auto mode renders a page when plain HTTP yielded no records or dropped some for a
/// missing required field.
fn needs_browser(page: &PageResult) -> bool {
    page.records.is_empty()
        || page
            .diagnostics
            .as_ref()
            .is_some_and(|d| d.records_dropped_missing_required > 0)
}

async fn fetch_with_browser(shared: &Shared, key: PageKey, url: &Url) -> Fetched {
    let Some(browser) = shared.options.browser.clone() else {
        return Fetched::Stopped;
    };
    let task = shared.task();
    let rates = shared.options.rates;
    let units = rates.browser_page
        + if task.proxy.enabled {
            rates.proxy_page
        } else {
            0
        };
    if !shared.options.budget.try_reserve(units) {
        shared
            .budget_exhausted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        shared.stop.cancel();
        return Fetched::Stopped;
    }
    let request = fetch_request(task, url, shared.options.session_key.as_ref());
    // Auto mode renders the one page; in-page pagination belongs to browser mode.
    let options = render_options(&shared.spec, 1);
    let rendered = browser.render(&request, &options, &shared.stop).await;
    let first = rendered.and_then(|rendered| {
        let blocked = (rendered.blocked_requests, rendered.blocked_urls.clone());
        rendered
            .pages
            .into_iter()
            .next()
            .map(|page| (page, blocked))
            .ok_or_else(|| FetchError::Body {
                url: url.clone(),
                message: "the browser returned no page".to_owned(),
            })
    });
    match first {
        Ok((response, (blocked_requests, blocked_urls))) => {
            report_blocked(
                shared,
                key,
                &Rendered {
                    pages: Vec::new(),
                    blocked_requests,
                    blocked_urls,
                },
            )
            .await;
            Fetched::Response {
                response,
                mode: FetchMode::Browser,
                units,
                in_page: Vec::new(),
            }
        }
        Err(error) => {
            shared.options.budget.refund(units);
            shared
                .log(
                    LogLevel::Warn,
                    format!("auto mode: browser render failed, keeping the HTTP result: {error}"),
                    json!({"page": key.to_string(), "class": error.class()}),
                )
                .await;
            Fetched::Stopped
        }
    }
}

async fn extract_response(
    shared: &Arc<Shared>,
    key: PageKey,
    requested: Url,
    response: FetchResponse,
    mode: FetchMode,
    units: u64,
) -> PageResult {
    let status = response.status;
    let base = PageResult {
        key,
        url: requested,
        final_url: Some(response.url.clone()),
        status: Some(status),
        outcome: PageOutcome::Ok,
        records: Vec::new(),
        diagnostics: None,
        compute_units: units,
        mode,
        via_proxy: response.via_proxy,
        attempts: response.attempts,
        elapsed_ms: millis(response.elapsed),
    };
    if !(200..300).contains(&status) {
        shared
            .log(
                LogLevel::Warn,
                format!("page answered HTTP {status}"),
                json!({"page": key.to_string(), "url": response.url.as_str(), "status": status}),
            )
            .await;
        return PageResult {
            outcome: PageOutcome::HttpStatus { status },
            ..base
        };
    }
    let worker = shared.clone();
    let extraction: Result<Extraction, _> = tokio::task::spawn_blocking(move || {
        worker.extractor.extract(&Page {
            url: &response.url,
            body: &response.body,
            content_type: response.content_type.as_deref(),
            rendered: response.rendered,
        })
    })
    .await;
    match extraction {
        Ok(extraction) => {
            for message in &extraction.diagnostics.messages {
                shared
                    .log(
                        LogLevel::Debug,
                        message.clone(),
                        json!({"page": key.to_string()}),
                    )
                    .await;
            }
            PageResult {
                records: extraction.records,
                diagnostics: Some(extraction.diagnostics),
                ..base
            }
        }
        Err(join_error) => PageResult {
            outcome: PageOutcome::Error {
                class: "extract_panic".to_owned(),
                message: join_error.to_string(),
            },
            ..base
        },
    }
}

fn without_fragment(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.into()
}
