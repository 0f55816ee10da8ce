//! Helpers shared by the tests: a fetcher allowed to reach exactly one fixture site.

use std::time::{Duration, Instant};

use selextract_fetch::{
    FetchError, FetchRequest, FetchResponse, Fetcher, HttpFetcher, HttpFetcherConfig,
};
use selextract_testkit::FixtureSite;
use tokio_util::sync::CancellationToken;
use url::Url;

/// A configuration whose guard lets through exactly the fixture site's ip:port.
pub fn config_for(site: &FixtureSite) -> HttpFetcherConfig {
    HttpFetcherConfig {
        allowed_private_addrs: vec![site.addr()],
        ..Default::default()
    }
}

pub fn fetcher_for(site: &FixtureSite) -> HttpFetcher {
    HttpFetcher::new(config_for(site)).unwrap()
}

/// A request that fails fast: no retries unless a test asks for them.
pub fn request(url: &str) -> FetchRequest {
    FetchRequest {
        timeout: Duration::from_secs(20),
        max_retries: 0,
        retry_delay: Duration::from_millis(10),
        ..FetchRequest::new(Url::parse(url).unwrap())
    }
}

pub async fn fetch(fetcher: &HttpFetcher, req: &FetchRequest) -> Result<FetchResponse, FetchError> {
    fetcher.fetch(req, &CancellationToken::new()).await
}

/// Arrival times of the requests for `path` (query ignored), in order.
pub fn arrivals(site: &FixtureSite, path: &str) -> Vec<Instant> {
    site.request_log()
        .into_iter()
        .filter(|(seen, _)| seen.split('?').next() == Some(path))
        .map(|(_, at)| at)
        .collect()
}

/// Gaps between consecutive instants.
pub fn gaps(times: &[Instant]) -> Vec<Duration> {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Asserts that the `k`th arrival (in time order) came at least `k × interval` after the
/// first, less `slack`. Scheduling noise only ever delays an arrival, so unlike a bound on
/// each gap, one late request cannot make the next gap look short.
pub fn assert_spaced_at_least(times: &[Instant], interval: Duration, slack: Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let Some(first) = sorted.first().copied() else {
        return;
    };
    let offsets: Vec<Duration> = sorted.iter().map(|t| *t - first).collect();
    for (k, offset) in offsets.iter().enumerate() {
        let due = interval * u32::try_from(k).unwrap();
        assert!(
            *offset + slack >= due,
            "arrival {k} came {offset:?} after the first, expected at least {due:?}: {offsets:?}"
        );
    }
}
