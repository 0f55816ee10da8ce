//! The URL guard: refused address classes, host spellings of loopback, and redirects into
//! refused addresses.

use std::net::{IpAddr, SocketAddr};

use selextract_fetch::guard::{GuardPolicy, GuardedResolver, check_ip, is_localhost_name};
use selextract_fetch::{FetchError, GuardError, HttpFetcher, HttpFetcherConfig};
use selextract_testkit::FixtureSite;

use crate::support::{fetch, fetcher_for, request};

/// An address and the refusal it must get.
type Case = (&'static str, fn(IpAddr) -> GuardError);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn check_ip_refuses_every_special_purpose_address_class() {
    let cases: &[Case] = &[
        ("127.0.0.1", GuardError::Loopback),
        ("127.255.0.7", GuardError::Loopback),
        ("::1", GuardError::Loopback),
        ("10.1.2.3", GuardError::Private),
        ("172.16.0.1", GuardError::Private),
        ("172.31.255.255", GuardError::Private),
        ("192.168.1.1", GuardError::Private),
        ("fc00::1", GuardError::Private),
        ("fd12:3456::1", GuardError::Private),
        ("169.254.169.254", GuardError::CloudMetadata),
        ("fd00:ec2::254", GuardError::CloudMetadata),
        ("169.254.1.1", GuardError::LinkLocal),
        ("fe80::1", GuardError::LinkLocal),
        ("100.64.0.1", GuardError::SharedAddressSpace),
        ("100.127.255.254", GuardError::SharedAddressSpace),
        ("224.0.0.1", GuardError::Multicast),
        ("239.255.255.250", GuardError::Multicast),
        ("ff02::1", GuardError::Multicast),
        ("0.0.0.0", GuardError::Unspecified),
        ("::", GuardError::Unspecified),
        ("255.255.255.255", GuardError::Broadcast),
        ("240.0.0.1", GuardError::Reserved),
        ("0.1.2.3", GuardError::Reserved),
        ("192.0.2.1", GuardError::Reserved),
        ("2001:db8::1", GuardError::Reserved),
    ];
    for (text, expected) in cases {
        assert_eq!(check_ip(ip(text)), Err(expected(ip(text))), "{text}");
    }
}

#[test]
fn check_ip_judges_ipv6_addresses_by_the_ipv4_address_they_embed() {
    let cases: &[Case] = &[
        ("::ffff:127.0.0.1", GuardError::Loopback),
        ("::ffff:169.254.169.254", GuardError::CloudMetadata),
        ("::ffff:10.0.0.1", GuardError::Private),
        ("::127.0.0.1", GuardError::Loopback),
        ("64:ff9b::a9fe:a9fe", GuardError::CloudMetadata),
        ("64:ff9b::c0a8:101", GuardError::Private),
        ("2002:7f00:1::1", GuardError::Loopback),
        ("2002:a00:1::", GuardError::Private),
    ];
    for (text, expected) in cases {
        assert_eq!(check_ip(ip(text)), Err(expected(ip(text))), "{text}");
    }
}

#[test]
fn check_ip_allows_public_addresses_next_to_refused_ranges() {
    for text in [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "172.15.255.255",
        "100.128.0.1",
        "100.63.255.255",
        "192.169.0.1",
        "169.255.0.1",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
    ] {
        assert_eq!(check_ip(ip(text)), Ok(()), "{text}");
    }
}

#[test]
fn exceptions_allow_exactly_their_ip_and_port() {
    let allowed: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let policy = GuardPolicy {
        allow_private_networks: false,
        allowed_private_addrs: vec![allowed],
        ..GuardPolicy::default()
    };
    assert_eq!(policy.check_addr(allowed), Ok(()));
    assert_eq!(
        policy.check_addr("[::ffff:127.0.0.1]:8080".parse().unwrap()),
        Ok(()),
        "mapped spelling"
    );
    assert!(
        policy
            .check_addr("127.0.0.1:8081".parse().unwrap())
            .is_err(),
        "other port"
    );
    assert!(
        policy
            .check_addr("127.0.0.2:8080".parse().unwrap())
            .is_err(),
        "other ip"
    );
    assert!(policy.check_addr("10.0.0.1:8080".parse().unwrap()).is_err());

    let open = GuardPolicy {
        allow_private_networks: true,
        ..GuardPolicy::default()
    };
    assert_eq!(
        open.check_addr("169.254.169.254:80".parse().unwrap()),
        Ok(())
    );
}

#[test]
fn allowed_networks_open_their_range_on_every_port_but_not_the_metadata_address_by_accident() {
    let policy = GuardPolicy {
        allowed_networks: vec![
            "10.20.0.0/16".parse().unwrap(),
            "169.254.0.0/16".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ],
        ..GuardPolicy::default()
    };
    let check = |addr: &str| policy.check_addr(addr.parse().unwrap());
    assert_eq!(check("10.20.3.4:80"), Ok(()));
    assert_eq!(check("10.20.255.255:6379"), Ok(()));
    assert_eq!(check("[::ffff:10.20.3.4]:443"), Ok(()), "mapped spelling");
    assert_eq!(check("169.254.1.1:80"), Ok(()));
    assert!(check("10.21.0.1:80").is_err(), "next range");
    assert!(check("127.0.0.1:80").is_err());
    // A broad range never opens the cloud metadata endpoints, IPv4 or IPv6.
    assert!(matches!(
        check("169.254.169.254:80"),
        Err(GuardError::CloudMetadata(_))
    ));
    assert!(matches!(
        check("[fd00:ec2::254]:80"),
        Err(GuardError::CloudMetadata(_))
    ));

    let exact = GuardPolicy {
        allowed_networks: vec!["169.254.169.254/32".parse().unwrap()],
        ..GuardPolicy::default()
    };
    assert_eq!(
        exact.check_addr("169.254.169.254:80".parse().unwrap()),
        Ok(()),
        "named exactly, the operator meant it"
    );
}

#[test]
fn localhost_names_are_recognised_in_every_spelling() {
    for name in [
        "localhost",
        "localhost.",
        "LOCALHOST",
        "app.localhost",
        "a.b.localhost.",
    ] {
        assert!(is_localhost_name(name), "{name}");
    }
    for name in ["localhost.example", "mylocalhost", "example.com"] {
        assert!(!is_localhost_name(name), "{name}");
    }
}

/// The spellings of the fixture's loopback address that must all be recognised.
fn loopback_spellings(port: u16) -> Vec<String> {
    [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "[::ffff:127.0.0.1]",
        "localhost.",
        "localhost",
    ]
    .iter()
    .map(|host| format!("http://{host}:{port}/catalog?page=1"))
    .collect()
}

#[tokio::test]
async fn every_spelling_of_loopback_is_refused_before_any_request_is_sent() {
    let site = FixtureSite::start().await;
    let fetcher = HttpFetcher::new(HttpFetcherConfig::default()).unwrap();
    for url in loopback_spellings(site.addr().port()) {
        match fetch(&fetcher, &request(&url)).await {
            Err(FetchError::Blocked {
                reason: GuardError::Loopback(_),
                ..
            }) => {}
            other => panic!("{url}: expected a loopback refusal, got {other:?}"),
        }
    }
    assert!(
        site.request_log().is_empty(),
        "nothing may reach the site: {:?}",
        site.request_log()
    );
}

#[tokio::test]
async fn every_spelling_of_loopback_is_fetched_when_private_networks_are_allowed() {
    let site = FixtureSite::start().await;
    let config = HttpFetcherConfig {
        allow_private_networks: true,
        ..Default::default()
    };
    let fetcher = HttpFetcher::new(config).unwrap();
    for url in loopback_spellings(site.addr().port()) {
        let response = fetch(&fetcher, &request(&url))
            .await
            .unwrap_or_else(|err| panic!("{url}: {err}"));
        assert_eq!(response.status, 200, "{url}");
    }
    assert_eq!(site.hits("/catalog"), 6);
}

#[tokio::test]
async fn an_exception_allows_the_fixture_but_not_another_port_of_the_same_address() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    assert_eq!(
        fetch(&fetcher, &request(&site.url("/catalog")))
            .await
            .unwrap()
            .status,
        200
    );
    let localhost = format!("http://localhost:{}/catalog", site.addr().port());
    assert_eq!(
        fetch(&fetcher, &request(&localhost)).await.unwrap().status,
        200,
        "a name resolving to the exception"
    );
    for url in ["http://127.0.0.1:1/", "http://localhost:1/"] {
        let err = fetch(&fetcher, &request(url)).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Blocked {
                    reason: GuardError::Loopback(_),
                    ..
                }
            ),
            "{url}: {err:?}"
        );
        assert_eq!(err.class(), "blocked_address");
    }
}

#[tokio::test]
async fn a_redirect_into_a_refused_address_is_refused_mid_chain() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    for target in [
        "http%3A%2F%2F127.0.0.1%3A1%2Fadmin",
        "http%3A%2F%2Flocalhost%3A1%2Fadmin",
        "http%3A%2F%2F%5B%3A%3Affff%3A127.0.0.1%5D%3A1%2F",
    ] {
        let url = site.url(&format!("/redirect/to?url={target}"));
        let err = fetch(&fetcher, &request(&url)).await.unwrap_err();
        match err {
            FetchError::Blocked {
                url,
                reason: GuardError::Loopback(_),
            } => assert_eq!(url.port(), Some(1)),
            other => panic!("{target}: expected Blocked, got {other:?}"),
        }
    }
    assert_eq!(
        site.hits("/redirect/to"),
        3,
        "the allowed first hop was fetched"
    );
}

#[tokio::test]
async fn only_http_and_https_urls_are_fetched() {
    let site = FixtureSite::start().await;
    let fetcher = fetcher_for(&site);
    let err = fetch(&fetcher, &request("file:///etc/passwd"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "invalid_url");
    let url = site.url("/redirect/to?url=file%3A%2F%2F%2Fetc%2Fpasswd");
    let err = fetch(&fetcher, &request(&url)).await.unwrap_err();
    assert_eq!(err.class(), "invalid_url");
}

async fn resolve(
    resolver: &GuardedResolver,
    name: &str,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    use reqwest::dns::Resolve as _;
    resolver
        .resolve(name.parse().unwrap())
        .await
        .map(Iterator::collect)
}

#[tokio::test]
async fn the_resolver_returns_only_addresses_that_pass_the_guard() {
    let refusing = GuardedResolver::new(GuardPolicy::default(), Vec::new());
    let err = resolve(&refusing, "localhost").await.unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<GuardError>(),
            Some(GuardError::Loopback(_))
        ),
        "{err}"
    );

    let exception = GuardPolicy {
        allow_private_networks: false,
        allowed_private_addrs: vec!["127.0.0.1:8080".parse().unwrap()],
        ..GuardPolicy::default()
    };
    let addrs = resolve(&GuardedResolver::new(exception, Vec::new()), "localhost")
        .await
        .unwrap();
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    assert_eq!(
        ips,
        vec![ip("127.0.0.1")],
        "::1 is not excepted and is left out"
    );

    let exempt = GuardedResolver::new(GuardPolicy::default(), vec!["localhost".to_owned()]);
    assert_eq!(
        resolve(&exempt, "localhost").await.unwrap().len(),
        2,
        "proxy host names are not guarded"
    );
}

#[tokio::test]
async fn a_refusal_by_the_resolver_reaches_the_caller_as_a_guard_error() {
    // A client with only the resolver as protection (no pre-check): the refusal must surface
    // in the error chain, which is how the fetcher reports it as `Blocked`.
    let resolver = std::sync::Arc::new(GuardedResolver::new(GuardPolicy::default(), Vec::new()));
    let client = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(resolver)
        .build()
        .unwrap();
    let err = client.get("http://localhost:1/").send().await.unwrap_err();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut found = None;
    while let Some(error) = source {
        found = found.or(error.downcast_ref::<GuardError>().copied());
        source = error.source();
    }
    assert!(matches!(found, Some(GuardError::Loopback(_))), "{err:?}");
}
