//! One start URL's pagination chain: fetch a page, hand it to extraction, find the next
//! link with the cheap pass, and repeat; an emitter hands finished extractions out in page
//! order while the chain runs ahead.

use std::collections::HashSet;
use std::sync::Arc;

use selextract_extract::NextPage;
use serde_json::json;
use tokio::sync::mpsc;
use url::Url;

use crate::extraction::{Pending, find_next, spawn_extraction};
use crate::fetching::{Fetched, Snapshots, fetch_page};
use crate::reservation::stop_for_budget;
use crate::run::Shared;
use crate::{LogLevel, PageKey};

/// Follow one start URL's pagination chain to its end.
pub(crate) async fn run_chain(shared: Arc<Shared>, start_index: u32, start_url: Url) {
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
        if !shared.may_fetch().await {
            break;
        }
        visited.insert(without_fragment(&url));
        let key = PageKey {
            start_index,
            page_index,
        };
        let pages_left = max_pages.saturating_sub(page_index);
        let Snapshots {
            pages,
            mode,
            unit,
            budget_capped,
        } = match fetch_page(&shared, key, &url, pages_left).await {
            Fetched::Response(snapshots) => snapshots,
            Fetched::Failed(page) => {
                let _ = pending.send(tokio::spawn(async move { *page })).await;
                break;
            }
            Fetched::Stopped => break,
        };
        // In-page pagination (a clicked button, scrolling) produced more snapshots of the
        // same URL: each is a page of its own, paid for before the render; the last one
        // continues the chain as usual.
        let mut pages = pages.into_iter();
        let Some(mut response) = pages.next() else {
            break;
        };
        for snapshot in pages {
            let earlier = std::mem::replace(&mut response, snapshot);
            let key = PageKey {
                start_index,
                page_index,
            };
            let _ = pending
                .send(spawn_extraction(
                    &shared,
                    key,
                    url.clone(),
                    earlier,
                    mode,
                    unit,
                ))
                .await;
            page_index += 1;
            shared.update_progress(|p| p.pages_known += 1);
        }
        let key = PageKey {
            start_index,
            page_index,
        };
        if budget_capped {
            // The render stopped where the budget did; nothing further can be paid for.
            stop_for_budget(&shared, key).await;
        }

        let more_allowed = !budget_capped && paginates && page_index + 1 < max_pages;
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
                .send(spawn_extraction(&shared, key, url, response, mode, unit))
                .await;
            next_url = accept_next(&shared, next, &visited, key).await;
        } else {
            let _ = pending
                .send(spawn_extraction(&shared, key, url, response, mode, unit))
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

fn without_fragment(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.into()
}
