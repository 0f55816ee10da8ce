//! A task's headers and cookies go only to the rendered URL's origin, never to third-party
//! sub-resources.

use selextract_fetch::{Fetcher, RenderOptions};
use selextract_spec::{BrowserSpec, WaitCondition};
use selextract_testkit::FixtureSite;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::{self, require_chromium};

/// The JSON inside `<pre id="ID">…</pre>` (HTML-escaped by the page).
fn pre_json(body: &str, id: &str) -> Value {
    let open = format!("<pre id=\"{id}\">");
    let start = body.find(&open).expect("the pre element") + open.len();
    let end = body[start..].find("</pre>").expect("its end") + start;
    let text = body[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("#{id} is not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_headers_and_cookies_go_only_to_the_rendered_origin() {
    let chromium = require_chromium!();
    let first = FixtureSite::start().await;
    // The same host on another port: another origin, which a cookie jar would not tell apart.
    let third = FixtureSite::start().await;
    let pool = support::pool(&chromium, &first, |c| {
        c.guard.allowed_private_addrs.push(third.addr());
    })
    .await;
    let other = format!("http://{}", third.addr());
    let mut request = support::request(&first.url(&format!("/js/third-party?other={other}")));
    request
        .headers
        .push(("X-Api-Key".to_owned(), "task-secret-key".to_owned()));
    request
        .cookies
        .push(("session".to_owned(), "task-secret-cookie".to_owned()));
    let options = RenderOptions {
        browser: BrowserSpec {
            wait_conditions: vec![WaitCondition::Element {
                selector: "#done".to_owned(),
                timeout_ms: 10_000,
            }],
            load_images: true,
            ..BrowserSpec::default()
        },
        ..RenderOptions::default()
    };

    let rendered = pool
        .fetcher()
        .render(&request, &options, &CancellationToken::new())
        .await
        .expect("renders");

    let body = String::from_utf8_lossy(&rendered.pages[0].body).into_owned();
    for id in ["own", "same"] {
        let headers = pre_json(&body, id);
        assert_eq!(headers["x-api-key"], "task-secret-key", "#{id}: {headers}");
        assert!(
            headers["cookie"]
                .as_str()
                .is_some_and(|c| c.contains("session=task-secret-cookie")),
            "#{id}: {headers}"
        );
    }
    for id in ["cross", "script"] {
        let headers = pre_json(&body, id);
        assert!(headers.is_object(), "#{id} was requested: {headers}");
        let text = headers.to_string();
        assert!(!text.contains("task-secret"), "#{id} leaked: {text}");
    }
    assert!(third.hits("/img/a.png") >= 1, "{:?}", third.request_log());
    pool.shutdown_and_assert_no_leftovers(&[]).await;
}
