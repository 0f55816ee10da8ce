//! Response bodies and request headers: size cap, decompression, headers and cookies.

use selextract_fetch::{FetchError, HttpFetcher, HttpFetcherConfig};
use selextract_testkit::{FixtureSite, GZIP_TEXT};

use crate::support::{config_for, fetch, fetcher_for, request};

const MIB: u64 = 1024 * 1024;

fn capped_fetcher(site: &FixtureSite, max_body_bytes: u64) -> HttpFetcher {
    HttpFetcher::new(HttpFetcherConfig {
        max_body_bytes,
        ..config_for(site)
    })
    .unwrap()
}

#[tokio::test]
async fn a_streamed_body_past_the_cap_is_too_large() {
    let site = FixtureSite::start().await;
    let err = fetch(
        &capped_fetcher(&site, MIB),
        &request(&site.url("/big?mb=3")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: MIB, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), "too_large");
}

#[tokio::test]
async fn a_declared_length_past_the_cap_is_too_large() {
    let site = FixtureSite::start().await;
    let err = fetch(
        &capped_fetcher(&site, MIB),
        &request(&site.url("/big-declared?mb=2")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: MIB, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_body_within_the_cap_is_read_completely() {
    let site = FixtureSite::start().await;
    let response = fetch(
        &capped_fetcher(&site, 2 * MIB),
        &request(&site.url("/big?mb=1")),
    )
    .await
    .unwrap();
    assert_eq!(response.body.len() as u64, MIB);
}

#[tokio::test]
async fn a_gzip_response_is_decompressed() {
    let site = FixtureSite::start().await;
    let response = fetch(&fetcher_for(&site), &request(&site.url("/gzip")))
        .await
        .unwrap();
    assert!(
        !response.body.starts_with(&[0x1f, 0x8b]),
        "still gzip-compressed"
    );
    assert!(String::from_utf8_lossy(&response.body).contains(GZIP_TEXT));
    assert_eq!(
        response.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
}

async fn echoed_headers(
    site: &FixtureSite,
    req: &selextract_fetch::FetchRequest,
) -> serde_json::Value {
    let response = fetch(&fetcher_for(site), req).await.unwrap();
    serde_json::from_slice(&response.body).unwrap()
}

#[tokio::test]
async fn the_default_user_agent_and_accept_headers_are_sent() {
    let site = FixtureSite::start().await;
    let headers = echoed_headers(&site, &request(&site.url("/headers"))).await;
    let user_agent = headers["user-agent"].as_str().unwrap();
    assert_eq!(
        user_agent,
        format!("Selextract/{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(headers["accept"].as_str().unwrap().starts_with("text/html"));
    assert!(headers.get("cookie").is_none());
}

#[tokio::test]
async fn custom_headers_and_cookies_arrive() {
    let site = FixtureSite::start().await;
    let mut req = request(&site.url("/headers"));
    req.headers = vec![
        ("X-Test".into(), "yes".into()),
        ("User-Agent".into(), "Custom/1.0".into()),
    ];
    req.cookies = vec![
        ("session".into(), "abc".into()),
        ("theme".into(), "dark".into()),
    ];
    let headers = echoed_headers(&site, &req).await;
    assert_eq!(headers["x-test"], "yes");
    assert_eq!(
        headers["user-agent"], "Custom/1.0",
        "the custom value replaces the default"
    );
    assert_eq!(headers["cookie"], "session=abc; theme=dark");
}

#[tokio::test]
async fn an_invalid_header_is_an_error_that_does_not_reveal_the_value() {
    let site = FixtureSite::start().await;
    let mut req = request(&site.url("/headers"));
    req.headers = vec![("X-Token".into(), "secret\nvalue".into())];
    let err = fetch(&fetcher_for(&site), &req).await.unwrap_err();
    assert_eq!(err.class(), "invalid_header");
    assert!(!err.to_string().contains("secret"));
    assert!(
        !format!("{req:?}").contains("secret"),
        "Debug of a request hides header values"
    );
}
