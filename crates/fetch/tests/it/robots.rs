//! robots.txt: honoured, cached per origin, opt-out, crawl-delay.

use std::time::Duration;

use selextract_fetch::{FetchError, HttpFetcher, HttpFetcherConfig, RobotsRules};
use selextract_testkit::{FixtureOptions, FixtureSite};
use url::Url;

use crate::support::{arrivals, config_for, fetch, fetcher_for, gaps, request};

async fn site_with_robots(robots: &str) -> FixtureSite {
    FixtureSite::start_with(FixtureOptions {
        robots_txt: Some(robots.to_owned()),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_disallowed_path_is_refused_without_being_requested() {
    let site = site_with_robots("User-agent: *\nDisallow: /private/\n").await;
    let fetcher = fetcher_for(&site);
    let err = fetch(&fetcher, &request(&site.url("/private/secret")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::RobotsDisallowed { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), "robots_disallowed");
    assert_eq!(site.hits("/private/secret"), 0);
    assert_eq!(
        fetch(&fetcher, &request(&site.url("/catalog")))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn rules_for_our_user_agent_take_precedence_over_the_wildcard() {
    let site =
        site_with_robots("User-agent: selextract\nDisallow: /catalog\n\nUser-agent: *\nAllow: /\n")
            .await;
    let fetcher = fetcher_for(&site);
    let err = fetch(&fetcher, &request(&site.url("/catalog?page=1")))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "robots_disallowed");
    assert_eq!(
        fetch(&fetcher, &request(&site.url("/item/1")))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn robots_txt_is_fetched_once_per_origin_even_under_concurrency() {
    let site = site_with_robots("User-agent: *\nDisallow: /private/\n").await;
    let fetcher = fetcher_for(&site);
    let requests: Vec<_> = (1..=5)
        .map(|page| request(&site.url(&format!("/catalog?page={page}"))))
        .collect();
    let results = futures::future::join_all(requests.iter().map(|req| fetch(&fetcher, req))).await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status == 200))
    );
    fetch(&fetcher, &request(&site.url("/item/3")))
        .await
        .unwrap();
    fetch(&fetcher, &request(&site.url("/private/x")))
        .await
        .unwrap_err();
    assert_eq!(site.hits("/robots.txt"), 1);
}

#[tokio::test]
async fn a_request_may_opt_out_of_robots_txt() {
    let site = site_with_robots("User-agent: *\nDisallow: /\n").await;
    let mut req = request(&site.url("/private/page"));
    req.respect_robots_txt = false;
    let response = fetch(&fetcher_for(&site), &req).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        site.hits("/robots.txt"),
        0,
        "robots.txt is not even fetched"
    );
}

#[tokio::test]
async fn the_operator_can_forbid_opting_out() {
    let site = site_with_robots("User-agent: *\nDisallow: /private/\n").await;
    let config = HttpFetcherConfig {
        allow_robots_txt_opt_out: false,
        ..config_for(&site)
    };
    let fetcher = HttpFetcher::new(config).unwrap();
    let mut req = request(&site.url("/private/page"));
    req.respect_robots_txt = false;
    let err = fetch(&fetcher, &req).await.unwrap_err();
    assert!(
        matches!(err, FetchError::RobotsDisallowed { .. }),
        "{err:?}"
    );
    assert_eq!(site.hits("/private/page"), 0);
}

#[tokio::test]
async fn crawl_delay_spaces_requests_to_the_host() {
    let site = site_with_robots("User-agent: *\nCrawl-delay: 1\n").await;
    let fetcher = fetcher_for(&site);
    let requests: Vec<_> = (1..=3)
        .map(|page| request(&site.url(&format!("/catalog?page={page}"))))
        .collect();
    for result in futures::future::join_all(requests.iter().map(|req| fetch(&fetcher, req))).await {
        assert_eq!(result.unwrap().status, 200);
    }
    let spacing = gaps(&arrivals(&site, "/catalog"));
    assert_eq!(spacing.len(), 2);
    // Arrival times carry a little scheduling noise; the fetcher itself spaces starts by 1 s.
    assert!(
        spacing.iter().all(|gap| *gap >= Duration::from_millis(950)),
        "{spacing:?}"
    );
}

#[test]
fn parsed_rules_answer_for_paths_and_report_the_crawl_delay() {
    let rules = RobotsRules::parse(
        "Selextract",
        b"User-agent: *\nDisallow: /private/\nAllow: /private/open\nCrawl-delay: 2.5\n",
    );
    let url = |path: &str| Url::parse(&format!("http://example.com{path}")).unwrap();
    assert!(!rules.allows(&url("/private/x?y=1")));
    assert!(rules.allows(&url("/private/open")));
    assert!(rules.allows(&url("/public")));
    assert_eq!(rules.crawl_delay(), Some(Duration::from_millis(2500)));
    assert!(RobotsRules::AllowAll.allows(&url("/private/x")));
}
