//! What a hostile server controls stays bounded: decompressed size, time spent on a body
//! that drips, the size of a response head.

use std::time::Duration;

use selextract_fetch::{FetchError, HttpFetcher, HttpFetcherConfig};
use selextract_testkit::FixtureSite;

use crate::support::{config_for, fetch, request};

const MIB: u64 = 1024 * 1024;

fn capped_fetcher(site: &FixtureSite) -> HttpFetcher {
    HttpFetcher::new(HttpFetcherConfig {
        max_body_bytes: MIB,
        ..config_for(site)
    })
    .unwrap()
}

async fn assert_bomb_stops_at_the_cap(encoding: &str) {
    let site = FixtureSite::start().await;
    // 10 GiB of zeros: reading it to the end would take minutes and 10 GiB of memory.
    let err = fetch(
        &capped_fetcher(&site),
        &request(&site.url(&format!("/bomb/{encoding}"))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: MIB, .. }),
        "{encoding}: {err:?}"
    );
}

#[tokio::test]
async fn a_gzip_bomb_of_ten_gib_stops_at_the_body_cap() {
    assert_bomb_stops_at_the_cap("gzip").await;
}

#[tokio::test]
async fn a_deflate_bomb_of_ten_gib_stops_at_the_body_cap() {
    assert_bomb_stops_at_the_cap("deflate").await;
}

#[tokio::test]
async fn a_brotli_bomb_of_ten_gib_stops_at_the_body_cap() {
    assert_bomb_stops_at_the_cap("br").await;
}

#[tokio::test]
async fn a_bomb_that_fits_under_the_cap_is_decompressed_completely() {
    // The control for the tests above: the bombs are valid streams, refused for size only.
    let site = FixtureSite::start().await;
    let fetcher = HttpFetcher::new(HttpFetcherConfig {
        max_body_bytes: 3 * MIB,
        ..config_for(&site)
    })
    .unwrap();
    for encoding in ["gzip", "deflate", "br"] {
        let response = fetch(
            &fetcher,
            &request(&site.url(&format!("/bomb/{encoding}?mib=2"))),
        )
        .await
        .unwrap();
        assert_eq!(response.body.len() as u64, 2 * MIB, "{encoding}");
        assert!(response.body.iter().all(|b| *b == 0), "{encoding}");
    }
}

#[tokio::test]
async fn a_body_dripping_inside_the_read_timeout_ends_at_the_request_timeout() {
    let site = FixtureSite::start().await;
    let fetcher = HttpFetcher::new(HttpFetcherConfig {
        read_timeout: Duration::from_secs(5),
        ..config_for(&site)
    })
    .unwrap();
    let mut req = request(&site.url("/drip?ms=50"));
    req.timeout = Duration::from_secs(1);
    let err = fetch(&fetcher, &req).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Timeout { stage: "total", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_request_without_a_timeout_is_still_bounded_by_the_transfer_cap() {
    let site = FixtureSite::start().await;
    let fetcher = HttpFetcher::new(HttpFetcherConfig {
        read_timeout: Duration::from_secs(5),
        max_transfer_time: Duration::from_secs(1),
        ..config_for(&site)
    })
    .unwrap();
    let mut req = request(&site.url("/drip?ms=50"));
    req.timeout = Duration::ZERO;
    let err = fetch(&fetcher, &req).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Timeout { stage: "total", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_response_head_of_one_huge_header_is_refused() {
    let site = FixtureSite::start().await;
    let err = fetch(
        &capped_fetcher(&site),
        &request(&site.url("/huge-head?bytes=4194304")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), "head_too_large", "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_response_head_of_ten_thousand_headers_is_refused() {
    let site = FixtureSite::start().await;
    let err = fetch(
        &capped_fetcher(&site),
        &request(&site.url("/huge-head?n=10000&bytes=8")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), "head_too_large", "{err:?}");
    assert!(!err.is_retryable());
}
