//! A scripted [`Fetcher`] for tests that need neither a network nor Chromium: each URL
//! answers what its [`Script`] says (status, body, content type, render snapshots, or an
//! error of a given class), after an optional delay on tokio's clock (so tests with paused
//! time control it), and every request is logged and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use selextract_fetch::{FetchError, FetchRequest, FetchResponse, Fetcher, RenderOptions, Rendered};
use tokio_util::sync::CancellationToken;
use url::Url;

/// What a scripted URL answers.
#[derive(Clone)]
pub struct Script {
    reply: Reply,
    delay: Duration,
}

#[derive(Clone)]
enum Reply {
    /// One response for `fetch`; up to `max_pages` of them, as snapshots, for `render`.
    Pages(Vec<ScriptedPage>),
    Error(Arc<dyn Fn(&Url) -> FetchError + Send + Sync>),
}

/// One scripted response (or render snapshot).
#[derive(Debug, Clone)]
pub struct ScriptedPage {
    pub status: u16,
    pub body: Bytes,
    pub content_type: Option<String>,
}

impl ScriptedPage {
    fn html(status: u16, body: impl Into<String>) -> ScriptedPage {
        ScriptedPage {
            status,
            body: Bytes::from(body.into()),
            content_type: Some("text/html; charset=utf-8".to_owned()),
        }
    }
}

impl Script {
    /// A 200 `text/html` answer.
    pub fn html(body: impl Into<String>) -> Script {
        Script::status(200, body)
    }

    /// An answer with `status` and an HTML body.
    pub fn status(status: u16, body: impl Into<String>) -> Script {
        Script::pages(vec![ScriptedPage::html(status, body)])
    }

    /// A render with in-page pagination: one 200 HTML snapshot per body, in order (a
    /// `render` returns at most its `max_pages` of them; a `fetch` the first).
    pub fn snapshots<B: Into<String>>(bodies: impl IntoIterator<Item = B>) -> Script {
        Script::pages(
            bodies
                .into_iter()
                .map(|body| ScriptedPage::html(200, body))
                .collect(),
        )
    }

    /// Answers exactly these pages.
    pub fn pages(pages: Vec<ScriptedPage>) -> Script {
        Script {
            reply: Reply::Pages(pages),
            delay: Duration::ZERO,
        }
    }

    /// Fails with a [`FetchError`] whose [`class`](FetchError::class) is `class`: one of
    /// `timeout`, `connect`, `body`, `tls`, `too_large`, `too_many_redirects`,
    /// `robots_disallowed`, `browser_crashed`, `proxy`, `invalid_url`, `cancelled`.
    ///
    /// # Panics
    /// On any other class: a mistake in the test, reported where it was made.
    pub fn error(class: &str) -> Script {
        let make: Arc<dyn Fn(&Url) -> FetchError + Send + Sync> = match class {
            "timeout" => Arc::new(|url| FetchError::Timeout {
                url: url.clone(),
                stage: "response",
            }),
            "connect" => Arc::new(|url| FetchError::Connect {
                url: url.clone(),
                message: "scripted connection failure".to_owned(),
            }),
            "body" => Arc::new(|url| FetchError::Body {
                url: url.clone(),
                message: "scripted body failure".to_owned(),
            }),
            "tls" => Arc::new(|url| FetchError::Tls {
                url: url.clone(),
                message: "scripted TLS failure".to_owned(),
            }),
            "too_large" => Arc::new(|url| FetchError::TooLarge {
                url: url.clone(),
                limit: 0,
            }),
            "too_many_redirects" => Arc::new(|url| FetchError::TooManyRedirects {
                url: url.clone(),
                limit: 0,
            }),
            "robots_disallowed" => {
                Arc::new(|url| FetchError::RobotsDisallowed { url: url.clone() })
            }
            "browser_crashed" => Arc::new(|url| FetchError::Crashed {
                url: url.clone(),
                message: "scripted crash".to_owned(),
            }),
            "proxy" => Arc::new(|_| FetchError::Proxy {
                proxy: "scripted-proxy".to_owned(),
                message: "scripted proxy failure".to_owned(),
            }),
            "invalid_url" => Arc::new(|url| FetchError::InvalidUrl {
                url: url.to_string(),
                reason: "scripted".to_owned(),
            }),
            "cancelled" => Arc::new(|_| FetchError::Cancelled),
            other => panic!("the fake fetcher has no scripted error of class {other:?}"),
        };
        Script {
            reply: Reply::Error(make),
            delay: Duration::ZERO,
        }
    }

    /// Fails with whatever `make` builds.
    pub fn failing(make: impl Fn(&Url) -> FetchError + Send + Sync + 'static) -> Script {
        Script {
            reply: Reply::Error(Arc::new(make)),
            delay: Duration::ZERO,
        }
    }

    /// Answers only after `delay` on tokio's clock; a cancel during the delay ends the
    /// request as [`FetchError::Cancelled`], as real fetchers do.
    pub fn with_delay(mut self, delay: Duration) -> Script {
        self.delay = delay;
        self
    }

    /// Sets the content type of every page of the answer.
    pub fn with_content_type(mut self, content_type: &str) -> Script {
        if let Reply::Pages(pages) = &mut self.reply {
            for page in pages {
                page.content_type = Some(content_type.to_owned());
            }
        }
        self
    }
}

/// How a request reached the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Fetch,
    /// A browser render asking for at most `max_pages` snapshots.
    Render {
        max_pages: u32,
    },
}

/// One request made to the fake, in arrival order.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    pub url: Url,
    pub kind: RequestKind,
    pub politeness_scope: Option<String>,
}

/// A [`Fetcher`] answering from scripts. URLs without a script answer 404.
#[derive(Default)]
pub struct FakeFetcher {
    scripts: Mutex<HashMap<String, Script>>,
    log: Mutex<Vec<FakeRequest>>,
    fetches: AtomicU64,
    renders: AtomicU64,
    snapshots: AtomicU64,
    cancelled: AtomicU64,
}

impl std::fmt::Debug for FakeFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFetcher")
            .field("fetches", &self.fetches())
            .field("renders", &self.renders())
            .finish_non_exhaustive()
    }
}

impl FakeFetcher {
    pub fn new() -> FakeFetcher {
        FakeFetcher::default()
    }

    /// Scripts what `url` answers from now on (replacing an earlier script).
    pub fn script(&self, url: &str, script: Script) -> &FakeFetcher {
        lock(&self.scripts).insert(url.to_owned(), script);
        self
    }

    /// Every request made so far, in arrival order.
    pub fn requests(&self) -> Vec<FakeRequest> {
        lock(&self.log).clone()
    }

    /// Calls of `fetch` so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Calls of `render` so far.
    pub fn renders(&self) -> u64 {
        self.renders.load(Ordering::SeqCst)
    }

    /// Snapshots returned by successful renders so far.
    pub fn snapshots_returned(&self) -> u64 {
        self.snapshots.load(Ordering::SeqCst)
    }

    /// Requests that were cancelled while waiting for their scripted delay.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn record(&self, req: &FetchRequest, kind: RequestKind) -> Script {
        lock(&self.log).push(FakeRequest {
            url: req.url.clone(),
            kind,
            politeness_scope: req.politeness_scope.clone(),
        });
        lock(&self.scripts)
            .get(req.url.as_str())
            .cloned()
            .unwrap_or_else(|| Script::status(404, "<html><body>not scripted</body></html>"))
    }

    /// Waits the script's delay and returns its pages (at most `max_pages`), or its error.
    async fn answer(
        &self,
        req: &FetchRequest,
        script: Script,
        max_pages: usize,
        rendered: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<FetchResponse>, FetchError> {
        if !script.delay.is_zero() {
            tokio::select! {
                () = cancel.cancelled() => {
                    self.cancelled.fetch_add(1, Ordering::SeqCst);
                    return Err(FetchError::Cancelled);
                }
                () = tokio::time::sleep(script.delay) => {}
            }
        } else if cancel.is_cancelled() {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
            return Err(FetchError::Cancelled);
        }
        match script.reply {
            Reply::Error(make) => Err(make(&req.url)),
            Reply::Pages(pages) => Ok(pages
                .into_iter()
                .take(max_pages.max(1))
                .map(|page| FetchResponse {
                    url: req.url.clone(),
                    status: page.status,
                    content_type: page.content_type,
                    body: page.body,
                    redirects: Vec::new(),
                    attempts: 1,
                    via_proxy: false,
                    elapsed: script.delay,
                    rendered,
                })
                .collect()),
        }
    }
}

#[async_trait::async_trait]
impl Fetcher for FakeFetcher {
    async fn fetch(
        &self,
        req: &FetchRequest,
        cancel: &CancellationToken,
    ) -> Result<FetchResponse, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let script = self.record(req, RequestKind::Fetch);
        let pages = self.answer(req, script, 1, false, cancel).await?;
        pages.into_iter().next().ok_or_else(|| FetchError::Body {
            url: req.url.clone(),
            message: "the script has no page".to_owned(),
        })
    }

    async fn render(
        &self,
        req: &FetchRequest,
        options: &RenderOptions,
        cancel: &CancellationToken,
    ) -> Result<Rendered, FetchError> {
        self.renders.fetch_add(1, Ordering::SeqCst);
        let script = self.record(
            req,
            RequestKind::Render {
                max_pages: options.max_pages,
            },
        );
        let max_pages = usize::try_from(options.max_pages).unwrap_or(usize::MAX);
        let pages = self.answer(req, script, max_pages, true, cancel).await?;
        self.snapshots
            .fetch_add(pages.len() as u64, Ordering::SeqCst);
        Ok(Rendered {
            pages,
            blocked_requests: 0,
            blocked_urls: Vec::new(),
        })
    }
}

/// The guarded value even if a panicking test thread poisoned the lock: the fake's state
/// is plain data that a panic cannot leave half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn request(url: &str) -> FetchRequest {
        FetchRequest::new(Url::parse(url).unwrap())
    }

    #[tokio::test]
    async fn a_render_returns_at_most_its_max_pages_and_a_fetch_the_first_snapshot() {
        let fake = FakeFetcher::new();
        fake.script(
            "https://a.example/",
            Script::snapshots(["one", "two", "three"]),
        );
        let options = RenderOptions {
            max_pages: 2,
            ..RenderOptions::default()
        };
        let cancel = CancellationToken::new();
        let rendered = fake
            .render(&request("https://a.example/"), &options, &cancel)
            .await
            .unwrap();
        let bodies: Vec<&[u8]> = rendered.pages.iter().map(|p| p.body.as_ref()).collect();
        assert_eq!(bodies, [b"one".as_slice(), b"two".as_slice()]);
        assert!(rendered.pages.iter().all(|p| p.rendered));
        let fetched = fake
            .fetch(&request("https://a.example/"), &cancel)
            .await
            .unwrap();
        assert_eq!(fetched.body.as_ref(), b"one");
        assert!(!fetched.rendered);
        let kinds: Vec<RequestKind> = fake.requests().iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [RequestKind::Render { max_pages: 2 }, RequestKind::Fetch]
        );
        assert_eq!(
            (fake.fetches(), fake.renders(), fake.snapshots_returned()),
            (1, 1, 2)
        );
    }

    #[tokio::test]
    async fn an_unscripted_url_answers_404_and_a_scripted_error_has_its_class() {
        let fake = FakeFetcher::new();
        fake.script("https://a.example/down", Script::error("timeout"));
        let cancel = CancellationToken::new();
        let missing = fake
            .fetch(&request("https://a.example/missing"), &cancel)
            .await
            .unwrap();
        assert_eq!(missing.status, 404);
        let error = fake
            .fetch(&request("https://a.example/down"), &cancel)
            .await
            .unwrap_err();
        assert_eq!(error.class(), "timeout");
    }

    #[tokio::test]
    async fn a_cancelled_request_ends_as_cancelled_instead_of_waiting_out_its_delay() {
        let fake = FakeFetcher::new();
        fake.script(
            "https://a.example/slow",
            Script::html("late").with_delay(Duration::from_secs(86_400)),
        );
        let cancel = CancellationToken::new();
        cancel.cancel();
        let error = fake
            .fetch(&request("https://a.example/slow"), &cancel)
            .await
            .unwrap_err();
        assert!(matches!(error, FetchError::Cancelled));
        assert_eq!(fake.cancelled(), 1);
    }
}
