//! Redirects are followed by hand: recorded, counted and bounded.

use selextract_fetch::{FetchError, HttpFetcher, HttpFetcherConfig};
use selextract_testkit::FixtureSite;

use crate::support::{config_for, fetch, fetcher_for, request};

#[tokio::test]
async fn a_redirect_chain_is_followed_and_every_hop_recorded() {
    let site = FixtureSite::start().await;
    let response = fetch(
        &fetcher_for(&site),
        &request(&site.url("/redirect/chain/2")),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.url.as_str(), site.url("/catalog?page=1"));
    let hops: Vec<String> = response.redirects.iter().map(|u| u.to_string()).collect();
    assert_eq!(
        hops,
        vec![
            site.url("/redirect/chain/1"),
            site.url("/redirect/chain/0"),
            site.url("/catalog?page=1")
        ]
    );
    assert!(String::from_utf8_lossy(&response.body).contains("Product 1"));
}

#[tokio::test]
async fn exactly_max_redirects_hops_are_allowed() {
    let site = FixtureSite::start().await;
    let config = HttpFetcherConfig {
        max_redirects: 4,
        ..config_for(&site)
    };
    let fetcher = HttpFetcher::new(config).unwrap();
    // chain/3 needs 4 redirects, chain/4 needs 5.
    let response = fetch(&fetcher, &request(&site.url("/redirect/chain/3")))
        .await
        .unwrap();
    assert_eq!(response.redirects.len(), 4);
    let err = fetch(&fetcher, &request(&site.url("/redirect/chain/4")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { limit: 4, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_redirect_loop_ends_with_too_many_redirects() {
    let site = FixtureSite::start().await;
    let config = HttpFetcherConfig {
        max_redirects: 5,
        ..config_for(&site)
    };
    let fetcher = HttpFetcher::new(config).unwrap();
    let err = fetch(&fetcher, &request(&site.url("/redirect/loop")))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "too_many_redirects");
    assert_eq!(
        site.hits("/redirect/loop"),
        6,
        "the first request and five redirects"
    );
}

#[tokio::test]
async fn a_redirect_status_without_location_is_returned_as_the_response() {
    let site = FixtureSite::start().await;
    let response = fetch(&fetcher_for(&site), &request(&site.url("/status/302")))
        .await
        .unwrap();
    assert_eq!(response.status, 302);
    assert!(response.redirects.is_empty());
}
