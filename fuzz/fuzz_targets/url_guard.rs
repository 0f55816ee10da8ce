//! The fetch crate's URL guard on arbitrary URLs, without DNS. A URL whose host is an IP
//! address (in any spelling the URL parser accepts: decimal, octal, hex, IPv6, IPv4-mapped)
//! is checked as the fetcher checks it before sending; a name is resolved by a fake resolver
//! whose answer (public, loopback, private, metadata, IPv6 forms of those) is derived from
//! the name, and vetted as the fetcher and the browser's guarding proxy vet it. Whatever the
//! guard lets through must be allowed by an independent reading of the policy: a public
//! address by the standard library's classification, or one the operator allowed.
#![no_main]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use selextract_fetch::guard::{
    GuardPolicy, IpNet, NameResolver, check_ip, is_localhost_name, resolve_all_allowed,
    resolve_allowed,
};
use url::{Host, Url};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(url) = Url::parse(&text) else {
        return;
    };
    let port = url.port_or_known_default().unwrap_or(80);
    for policy in [default_policy(), operator_policy()] {
        match url.host() {
            Some(Host::Ipv4(ip)) => check_address(&policy, IpAddr::V4(ip), port),
            Some(Host::Ipv6(ip)) => check_address(&policy, IpAddr::V6(ip), port),
            Some(Host::Domain(name)) => check_name(&policy, &url, name, port),
            None => {}
        }
    }
});

fn check_address(policy: &GuardPolicy, ip: IpAddr, port: u16) {
    let addr = SocketAddr::new(ip, port);
    let verdict = policy.check_addr(addr);
    if policy.allowed_networks.is_empty() && policy.allowed_private_addrs.is_empty() {
        assert_eq!(
            verdict.is_ok(),
            check_ip(ip).is_ok(),
            "the default policy and check_ip disagree on {ip}"
        );
    }
    if verdict.is_ok() {
        assert!(allowed_by(policy, addr), "the guard lets {addr} through");
    }
}

fn check_name(policy: &GuardPolicy, url: &Url, name: &str, port: u16) {
    // RFC 6761 names, with at most one trailing dot (`localhost..` is not a name).
    let bare = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if bare == "localhost" || bare.ends_with(".localhost") {
        assert!(
            is_localhost_name(name),
            "{name} is not seen as this machine"
        );
    }
    // A special scheme's host that spells an IP address must come out of the URL parser
    // as an IP host, or the literal check would be skipped.
    if url.is_special() && url.scheme() != "file" {
        assert!(
            name.parse::<IpAddr>().is_err(),
            "{name} is an IP address parsed as a domain"
        );
    }
    if let Ok(addrs) = ready(resolve_allowed(policy, name, port)) {
        assert!(!addrs.is_empty(), "{name} allowed with no address");
        for addr in addrs {
            assert!(allowed_by(policy, addr), "{name} lets {addr} through");
            assert_eq!(addr.port(), port, "{name} resolved to another port");
        }
    }
    if ready(resolve_all_allowed(policy, name, port)).is_ok() {
        for ip in fake_answer(name) {
            let addr = SocketAddr::new(ip, port);
            assert!(
                allowed_by(policy, addr) || is_localhost_name(name),
                "{name} is allowed through a proxy although it resolves to {addr}"
            );
        }
    }
}

/// The guard with no exceptions.
fn default_policy() -> GuardPolicy {
    GuardPolicy {
        resolver: Arc::new(FakeResolver),
        ..GuardPolicy::default()
    }
}

/// The guard with the kinds of exceptions an operator configures: one test fixture's
/// `ip:port`, an intranet range and the whole link-local range (which must still not open
/// the cloud metadata address).
fn operator_policy() -> GuardPolicy {
    GuardPolicy {
        allowed_private_addrs: vec![FIXTURE],
        allowed_networks: vec![net("10.0.0.0/8"), net("169.254.0.0/16"), net("fd00::/8")],
        ..default_policy()
    }
}

const FIXTURE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

fn net(text: &str) -> IpNet {
    text.parse()
        .unwrap_or_else(|_| unreachable!("a constant network"))
}

/// Whether `policy` may let `addr` through, read independently of the guard's code: a
/// public address; with the operator's exceptions also the fixture, or an address in an
/// allowed network except the metadata addresses.
fn allowed_by(policy: &GuardPolicy, addr: SocketAddr) -> bool {
    if policy.allowed_networks.is_empty() && policy.allowed_private_addrs.is_empty() {
        return !is_internal(addr.ip());
    }
    let ip = canonical(addr.ip());
    let metadata = ip == IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254))
        || ip == IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254));
    let in_allowed_network = ["10.0.0.0/8", "169.254.0.0/16", "fd00::/8"]
        .iter()
        .any(|text| net(text).contains(&ip));
    !is_internal(addr.ip())
        || (addr.ip().to_canonical() == FIXTURE.ip() && addr.port() == FIXTURE.port())
        || (in_allowed_network && !metadata)
}

/// The IPv4 address an IPv6 address carries (mapped, compatible, NAT64), else itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = v6.segments();
    v6.to_ipv4_mapped().or_else(|| {
        let carries = (segments[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified())
            || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
        carries.then(|| {
            let [.., a, b, c, d] = v6.octets();
            Ipv4Addr::new(a, b, c, d)
        })
    })
}

/// Addresses that reach this machine or a private network by the standard library's
/// classification (IPv6 forms that carry an IPv4 address included).
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || segments[0] & 0xfe00 == 0xfc00
                || segments[0] & 0xffc0 == 0xfe80
                || embedded_v4(v6).is_some_and(is_internal_v4)
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
        || (ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]))
}

/// Answers every name from a table, chosen by a hash of the name, without any network.
#[derive(Debug)]
struct FakeResolver;

#[async_trait::async_trait]
impl NameResolver for FakeResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(fake_answer(host))
    }
}

/// One to three addresses for `host`: public ones and every kind the guard must refuse.
fn fake_answer(host: &str) -> Vec<IpAddr> {
    const TABLE: [IpAddr; 12] = [
        IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
        IpAddr::V4(Ipv4Addr::new(169, 254, 1, 1)),
        IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1)),
        IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xa9fe, 0xa9fe)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
        IpAddr::V6(Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111)),
        IpAddr::V4(Ipv4Addr::new(100, 64, 0, 1)),
    ];
    let hash = host.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let count = 1 + (hash % 3) as usize;
    (0..count)
        .map(|i| TABLE[((hash >> (8 * (i + 1))) % TABLE.len() as u64) as usize])
        .collect()
}

/// The output of a future that never waits (the fake resolver answers at once).
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the guard waited for something other than the fake resolver"),
    }
}
