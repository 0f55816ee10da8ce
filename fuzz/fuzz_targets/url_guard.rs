//! The fetch crate's URL guard on arbitrary URLs, without DNS: a URL whose host is an IP
//! address (in any spelling the URL parser accepts: decimal, octal, hex, IPv6, IPv4-mapped)
//! is checked as the fetcher checks it before sending. An address the guard lets through must
//! be a public one by the standard library's own classification, and `localhost` names are
//! always recognised.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use selextract_fetch::guard::{GuardPolicy, check_ip, is_localhost_name};
use url::{Host, Url};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(url) = Url::parse(&text) else {
        return;
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let policy = GuardPolicy::default();
    match url.host() {
        Some(Host::Ipv4(ip)) => check_address(&policy, IpAddr::V4(ip), port),
        Some(Host::Ipv6(ip)) => check_address(&policy, IpAddr::V6(ip), port),
        Some(Host::Domain(name)) => {
            // RFC 6761 names, with at most one trailing dot (`localhost..` is not a name).
            let bare = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            if bare == "localhost" || bare.ends_with(".localhost") {
                assert!(
                    is_localhost_name(name),
                    "{name} is not seen as this machine"
                );
            }
            // A special scheme's host that spells an IP address must come out of the URL
            // parser as an IP host, or the literal check above would be skipped.
            if url.is_special() && url.scheme() != "file" {
                assert!(
                    name.parse::<IpAddr>().is_err(),
                    "{name} is an IP address parsed as a domain"
                );
            }
        }
        None => {}
    }
});

fn check_address(policy: &GuardPolicy, ip: IpAddr, port: u16) {
    let verdict = policy.check_addr(SocketAddr::new(ip, port));
    assert_eq!(
        verdict.is_ok(),
        check_ip(ip).is_ok(),
        "the default policy and check_ip disagree on {ip}"
    );
    if verdict.is_ok() {
        assert!(!is_internal(ip), "the guard lets {ip} through");
    }
}

/// An independent oracle: addresses that reach this machine or a private network by the
/// standard library's classification (IPv6 forms that carry an IPv4 address included).
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded = v6.to_ipv4_mapped().or_else(|| {
                (segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(
                    || {
                        let [.., a, b, c, d] = v6.octets();
                        Ipv4Addr::new(a, b, c, d)
                    },
                )
            });
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || segments[0] & 0xfe00 == 0xfc00
                || segments[0] & 0xffc0 == 0xfe80
                || embedded.is_some_and(is_internal_v4)
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.octets()[0] == 0
}
