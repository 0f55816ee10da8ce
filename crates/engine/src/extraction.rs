//! Extracting fetched pages on blocking threads: the full extraction of a page, the cheap
//! next-link pass, and auto mode's fallback to a browser render when plain HTTP found
//! nothing.

use std::sync::Arc;

use selextract_extract::{Extraction, NextPage, Page};
use selextract_fetch::FetchResponse;
use selextract_spec::Mode;
use serde_json::json;
use tokio::task::JoinHandle;
use url::Url;

use crate::fetching::render_for_auto;
use crate::run::Shared;
use crate::{FetchMode, LogLevel, PageKey, PageOutcome, PageResult, millis};

/// A page fetched and waiting for (or undergoing) extraction.
pub(crate) type Pending = JoinHandle<PageResult>;

/// The error class of a page whose records exceed the size limits.
const RECORDS_TOO_LARGE: &str = "records_too_large";

/// The error class of a page that needs more work than `limits.max_extraction_steps`.
const EXTRACTION_TOO_COSTLY: &str = "extraction_too_costly";

/// Extracts `response` on its own task; in auto mode, renders the page in the browser when
/// plain HTTP yielded nothing, and keeps whichever result is better.
pub(crate) fn spawn_extraction(
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
            && let Some((response, browser_units)) = render_for_auto(&shared, key, &requested).await
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
            // Both fetches happened; each is charged once, on the page that is kept.
            rendered.compute_units += page.compute_units;
            return rendered;
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

/// The cheap pass over a page that finds only the next link, so the chain's next request
/// goes out while the full extraction runs.
pub(crate) async fn find_next(shared: &Arc<Shared>, response: &FetchResponse) -> NextPage {
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
    let extraction = match extraction {
        Ok(extraction) => extraction,
        Err(join_error) => {
            return PageResult {
                outcome: PageOutcome::Error {
                    class: "extract_panic".to_owned(),
                    message: join_error.to_string(),
                },
                ..base
            };
        }
    };
    for message in &extraction.diagnostics.messages {
        shared
            .log(
                LogLevel::Debug,
                message.clone(),
                json!({"page": key.to_string()}),
            )
            .await;
    }
    let failure = match (extraction.too_large, extraction.too_costly) {
        (Some(message), _) => Some((RECORDS_TOO_LARGE, message)),
        (None, Some(message)) => Some((EXTRACTION_TOO_COSTLY, message)),
        (None, None) => None,
    };
    if let Some((class, message)) = failure {
        // The page was fetched (and is charged), but its records are beyond what one page
        // may hold, or extracting them is beyond the work one page may cost: it fails on
        // its own and the run goes on with the other pages.
        shared
            .log(
                LogLevel::Warn,
                format!("page failed: {message}"),
                json!({"page": key.to_string(), "class": class}),
            )
            .await;
        return PageResult {
            outcome: PageOutcome::Error {
                class: class.to_owned(),
                message,
            },
            diagnostics: Some(extraction.diagnostics),
            ..base
        };
    }
    PageResult {
        records: extraction.records,
        diagnostics: Some(extraction.diagnostics),
        ..base
    }
}
