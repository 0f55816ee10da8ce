//! Fetching one page: the request and render options from the spec, the reservation before
//! the fetch or render starts, and the classification of what came back.

use std::sync::Arc;

use selextract_fetch::{FetchError, FetchRequest, FetchResponse, Fetcher, RenderOptions, Rendered};
use selextract_spec::{Mode, SelectorType, TaskSpec, ValidatedSpec, selector_is_xpath};
use serde_json::json;
use tokio::time::Instant;
use url::Url;

use crate::reservation::reserve;
use crate::run::Shared;
use crate::{FetchMode, LogLevel, PageKey, PageOutcome, PageResult, millis};

/// What fetching a page produced.
pub(crate) enum Fetched {
    Response(Snapshots),
    /// No response; the page is failed (and was not charged).
    Failed(Box<PageResult>),
    /// The run stopped (cancel, budget, time limit) before or during the fetch.
    Stopped,
}

/// The responses of one fetch: one for HTTP, one per snapshot for a browser render with
/// in-page pagination (a clicked button, scrolling). Each costs `unit` compute units,
/// reserved before the fetch started.
pub(crate) struct Snapshots {
    pub(crate) pages: Vec<FetchResponse>,
    pub(crate) mode: FetchMode,
    pub(crate) unit: u64,
    /// The budget granted fewer snapshots than the render could have taken and the render
    /// used them all: the run stops after these pages, as out of compute units.
    pub(crate) budget_capped: bool,
}

pub(crate) fn fetch_request(
    task: &TaskSpec,
    url: &Url,
    session_key: Option<&String>,
    politeness_scope: &str,
) -> FetchRequest {
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
        politeness_scope: Some(politeness_scope.to_owned()),
        proxy_max_failures: Some(task.proxy.max_failures),
    }
}

/// What the browser should do on the page: the task's `browser` section and, in browser
/// mode, in-page pagination (click a button, scroll) for up to `pages_left` snapshots
/// (and `limits.max_snapshots`).
pub(crate) fn render_options(spec: &ValidatedSpec, pages_left: u32) -> RenderOptions {
    let task = spec.spec();
    let limits = spec.limits();
    // The browser's in-page pagination takes CSS only; an XPath control is followed as a
    // link by the chain instead.
    let css = |selector: &Option<String>, kind: Option<SelectorType>| {
        selector
            .as_ref()
            .filter(|s| !selector_is_xpath(s, kind))
            .cloned()
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

/// Fetches the page at `key` in the spec's mode, reserving before it starts: one page for
/// HTTP; in browser mode one per snapshot the render may return (at most `pages_left`),
/// with the render capped to what the budget granted and the unused rest refunded.
pub(crate) async fn fetch_page(
    shared: &Shared,
    key: PageKey,
    url: &Url,
    pages_left: u32,
) -> Fetched {
    let task = shared.task();
    let (fetcher, mode): (&Arc<dyn Fetcher>, FetchMode) = match (task.mode, &shared.options.browser)
    {
        (Mode::Browser, Some(browser)) => (browser, FetchMode::Browser),
        _ => (&shared.options.http, FetchMode::Http),
    };
    let render = match mode {
        FetchMode::Http => None,
        FetchMode::Browser => Some(render_options(&shared.spec, pages_left)),
    };
    let wanted = render
        .as_ref()
        .map_or(1, |options| options.max_pages.max(1));
    let Some(reservation) = reserve(shared, key, mode, wanted).await else {
        return Fetched::Stopped;
    };
    let request = fetch_request(
        task,
        url,
        shared.options.session_key.as_ref(),
        &shared.politeness_scope,
    );
    let started = Instant::now();
    let result = match render {
        None => fetcher.fetch(&request, &shared.stop).await.map(|r| vec![r]),
        Some(mut options) => {
            // Never more snapshots than the budget granted.
            options.max_pages = reservation.pages;
            match fetcher.render(&request, &options, &shared.stop).await {
                Ok(rendered) => {
                    report_blocked(shared, key, &rendered).await;
                    Ok(rendered.pages)
                }
                Err(error) => Err(error),
            }
        }
    };
    let result = result.and_then(|mut pages| {
        // A fetcher that returns more than it was asked for is not paid for the extra.
        pages.truncate(reservation.pages as usize);
        if pages.is_empty() {
            return Err(FetchError::Body {
                url: url.clone(),
                message: "the browser returned no page".to_owned(),
            });
        }
        Ok(pages)
    });
    match result {
        Ok(pages) => {
            let used = u32::try_from(pages.len()).unwrap_or(u32::MAX);
            let budget_capped = reservation.pages < wanted && used == reservation.pages;
            let unit = reservation.unit;
            reservation.settle(shared, used);
            Fetched::Response(Snapshots {
                pages,
                mode,
                unit,
                budget_capped,
            })
        }
        Err(FetchError::Cancelled) => {
            reservation.settle(shared, 0);
            Fetched::Stopped
        }
        Err(error) => {
            reservation.settle(shared, 0);
            Fetched::Failed(Box::new(
                failed_page(shared, key, url, mode, &error, started).await,
            ))
        }
    }
}

/// Auto mode's second try: renders the one page in the browser (no in-page pagination),
/// reserving one browser page before the render starts. `None` when the run stopped, the
/// budget refused, or the render failed (logged; the caller keeps the HTTP result).
pub(crate) async fn render_for_auto(
    shared: &Shared,
    key: PageKey,
    url: &Url,
) -> Option<(FetchResponse, u64)> {
    let browser = shared.options.browser.clone()?;
    if !shared.may_fetch().await {
        return None;
    }
    let reservation = reserve(shared, key, FetchMode::Browser, 1).await?;
    let request = fetch_request(
        shared.task(),
        url,
        shared.options.session_key.as_ref(),
        &shared.politeness_scope,
    );
    let options = render_options(&shared.spec, 1);
    let first = match browser.render(&request, &options, &shared.stop).await {
        Ok(rendered) => {
            report_blocked(shared, key, &rendered).await;
            rendered
                .pages
                .into_iter()
                .next()
                .ok_or_else(|| FetchError::Body {
                    url: url.clone(),
                    message: "the browser returned no page".to_owned(),
                })
        }
        Err(error) => Err(error),
    };
    match first {
        Ok(response) => {
            let unit = reservation.unit;
            reservation.settle(shared, 1);
            Some((response, unit))
        }
        Err(error) => {
            reservation.settle(shared, 0);
            if !matches!(error, FetchError::Cancelled) {
                shared
                    .log(
                        LogLevel::Warn,
                        format!(
                            "auto mode: browser render failed, keeping the HTTP result: {error}"
                        ),
                        json!({"page": key.to_string(), "class": error.class()}),
                    )
                    .await;
            }
            None
        }
    }
}

/// A page with no response, logged with its error class; never charged.
async fn failed_page(
    shared: &Shared,
    key: PageKey,
    url: &Url,
    mode: FetchMode,
    error: &FetchError,
    started: Instant,
) -> PageResult {
    let class = error.class().to_owned();
    let message = error.to_string();
    shared
        .log(
            LogLevel::Warn,
            format!("page failed: {message}"),
            json!({"page": key.to_string(), "url": url.as_str(), "class": class}),
        )
        .await;
    PageResult {
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
