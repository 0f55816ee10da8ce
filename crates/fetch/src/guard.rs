//! URL safety guard: refuses addresses a fetch must never reach (loopback, private networks,
//! cloud metadata, …), decided on resolved IP addresses.
//!
//! The decision is made on the addresses a connection will actually use: IP-literal hosts are
//! checked before sending, and names are resolved by [`GuardedResolver`], which hands reqwest
//! only addresses that passed the check (so there is no window between checking and
//! connecting in which DNS could answer differently).
//!
//! Name resolution is pluggable ([`NameResolver`], the system resolver by default) so that
//! tests can script DNS answers (rebinding), and operators can allow chosen networks
//! ([`GuardPolicy::allowed_networks`], e.g. an intranet range) without lifting the guard.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

pub use ipnet::IpNet;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("{0} is a loopback address")]
    Loopback(IpAddr),
    #[error("{0} is a private-network address")]
    Private(IpAddr),
    #[error("{0} is a link-local address")]
    LinkLocal(IpAddr),
    #[error("{0} is in the shared (carrier-grade NAT) address space")]
    SharedAddressSpace(IpAddr),
    #[error("{0} is a multicast address")]
    Multicast(IpAddr),
    #[error("{0} is the unspecified address")]
    Unspecified(IpAddr),
    #[error("{0} is the broadcast address")]
    Broadcast(IpAddr),
    #[error("{0} is a reserved or special-purpose address")]
    Reserved(IpAddr),
    #[error("{0} is a cloud metadata address")]
    CloudMetadata(IpAddr),
}

impl GuardError {
    /// The refused address, as it was given (an IPv4-mapped address stays IPv6).
    pub fn ip(&self) -> IpAddr {
        match *self {
            GuardError::Loopback(ip)
            | GuardError::Private(ip)
            | GuardError::LinkLocal(ip)
            | GuardError::SharedAddressSpace(ip)
            | GuardError::Multicast(ip)
            | GuardError::Unspecified(ip)
            | GuardError::Broadcast(ip)
            | GuardError::Reserved(ip)
            | GuardError::CloudMetadata(ip) => ip,
        }
    }
}

/// Checks one address against the fixed refusal list; `Ok` means it is a public address.
pub fn check_ip(ip: IpAddr) -> Result<(), GuardError> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map_or(Ok(()), |refuse| Err(refuse(ip))),
        IpAddr::V6(v6) => classify_v6(v6).map_or(Ok(()), |refuse| Err(refuse(ip))),
    }
}

type Refusal = fn(IpAddr) -> GuardError;

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    // Metadata first: 169.254.169.254 is also link-local, but the specific reason is clearer.
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        return Some(GuardError::CloudMetadata);
    }
    if ip.is_unspecified() {
        return Some(GuardError::Unspecified);
    }
    if ip.is_broadcast() {
        return Some(GuardError::Broadcast);
    }
    if ip.is_loopback() {
        return Some(GuardError::Loopback);
    }
    if ip.is_private() {
        return Some(GuardError::Private);
    }
    if ip.is_link_local() {
        return Some(GuardError::LinkLocal);
    }
    if a == 100 && (64..128).contains(&b) {
        return Some(GuardError::SharedAddressSpace);
    }
    if ip.is_multicast() {
        return Some(GuardError::Multicast);
    }
    let reserved = a == 0                                   // "this network" 0/8
        || a >= 240                                         // 240/4, future use
        || (a == 192 && b == 0 && c == 0)                   // 192.0.0/24 protocol assignments
        || (a == 192 && b == 0 && c == 2)                   // documentation
        || (a == 198 && b == 51 && c == 100)                // documentation
        || (a == 203 && b == 0 && c == 113)                 // documentation
        || (a == 198 && (b == 18 || b == 19))               // 198.18/15 benchmarking
        || (a == 192 && b == 88 && c == 99); // 6to4 relay anycast (deprecated)
    reserved.then_some(GuardError::Reserved as Refusal)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let segments = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some(GuardError::CloudMetadata);
    }
    if ip.is_unspecified() {
        return Some(GuardError::Unspecified);
    }
    if ip.is_loopback() {
        return Some(GuardError::Loopback);
    }
    // Addresses that embed an IPv4 address are judged by it: a refused IPv4 address must not
    // become reachable by writing it as IPv6.
    if let Some(embedded) = embedded_v4(ip) {
        return classify_v4(embedded);
    }
    if segments[0] & 0xfe00 == 0xfc00 {
        return Some(GuardError::Private); // fc00::/7 unique local
    }
    if segments[0] & 0xffc0 == 0xfe80 {
        return Some(GuardError::LinkLocal);
    }
    if segments[0] & 0xffc0 == 0xfec0 {
        return Some(GuardError::Private); // fec0::/10 deprecated site-local
    }
    if ip.is_multicast() {
        return Some(GuardError::Multicast);
    }
    if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        return Some(GuardError::Reserved); // documentation
    }
    // Only 2000::/3 is assigned for global unicast; everything else is special-purpose
    // (including 64:ff9b:1::/48 local NAT64 and 100::/64 discard).
    if segments[0] & 0xe000 != 0x2000 {
        return Some(GuardError::Reserved);
    }
    None
}

/// The IPv4 address carried by IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`) and Teredo (`2001::/32`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low32 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return Some(low32(s[6], s[7])); // IPv4-compatible (:: and ::1 were handled before)
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low32(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(low32(s[1], s[2]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        // Teredo stores the client's public address with every bit inverted.
        return Some(low32(!s[6], !s[7]));
    }
    None
}

/// The names that always mean this machine (RFC 6761): `localhost`, `*.localhost`, with or
/// without the trailing dot. They are answered without DNS, so that checking them never
/// sends a query anywhere.
pub fn is_localhost_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Turns a host name into addresses. Every name the guard vets is resolved through the
/// policy's resolver, and only there, so that what was checked is what is connected to.
#[async_trait::async_trait]
pub trait NameResolver: Send + Sync + std::fmt::Debug {
    /// The addresses of `host` (a name, never an IP literal), in preference order.
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo` through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl NameResolver for SystemResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        let addrs = tokio::net::lookup_host((host, 0)).await?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// The operator's choices that relax the guard, and the resolver it vets names with.
#[derive(Debug, Clone)]
pub struct GuardPolicy {
    /// Lifts every refusal.
    pub allow_private_networks: bool,
    /// Exact `ip:port` pairs that are allowed although their address would be refused.
    pub allowed_private_addrs: Vec<SocketAddr>,
    /// Networks the operator allows although the guard would refuse them (an intranet
    /// range, a test address), any port. The cloud metadata addresses stay refused unless a
    /// network names them exactly (a `/32` or `/128`), so a broad range such as
    /// `169.254.0.0/16` cannot open them by accident.
    pub allowed_networks: Vec<IpNet>,
    /// Resolves every name the guard vets.
    pub resolver: Arc<dyn NameResolver>,
}

impl Default for GuardPolicy {
    fn default() -> Self {
        GuardPolicy {
            allow_private_networks: false,
            allowed_private_addrs: Vec::new(),
            allowed_networks: Vec::new(),
            resolver: Arc::new(SystemResolver),
        }
    }
}

impl GuardPolicy {
    /// Checks the address a connection would go to, honouring the exceptions.
    pub fn check_addr(&self, addr: SocketAddr) -> Result<(), GuardError> {
        if self.allow_private_networks {
            return Ok(());
        }
        check_ip(addr.ip()).or_else(|refusal| {
            let ip = addr.ip().to_canonical();
            let excepted = self
                .allowed_private_addrs
                .iter()
                .any(|a| a.ip().to_canonical() == ip && a.port() == addr.port());
            if excepted || self.network_allows(ip, refusal) {
                Ok(())
            } else {
                Err(refusal)
            }
        })
    }

    /// Checks an address whose port is unknown (inside the DNS resolver): an exception for
    /// any port of that IP lets it through, and the caller must check the port itself.
    fn check_ip_any_port(&self, ip: IpAddr) -> Result<(), GuardError> {
        if self.allow_private_networks {
            return Ok(());
        }
        check_ip(ip).or_else(|refusal| {
            let canonical = ip.to_canonical();
            let excepted = self
                .allowed_private_addrs
                .iter()
                .any(|a| a.ip().to_canonical() == canonical);
            if excepted || self.network_allows(canonical, refusal) {
                Ok(())
            } else {
                Err(refusal)
            }
        })
    }

    /// Whether an operator-allowed network contains `ip` (canonical form).
    fn network_allows(&self, ip: IpAddr, refusal: GuardError) -> bool {
        self.allowed_networks.iter().any(|net| {
            let exact = net.prefix_len() == net.max_prefix_len();
            net.contains(&ip) && (exact || !matches!(refusal, GuardError::CloudMetadata(_)))
        })
    }

    fn has_exceptions(&self) -> bool {
        !self.allow_private_networks && !self.allowed_private_addrs.is_empty()
    }

    /// Resolves `host` through the policy's resolver (`localhost` names without DNS). The
    /// answer is not checked: see [`GuardPolicy::vet_addrs`].
    pub async fn resolve_name(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if is_localhost_name(host) {
            // IPv4 first: happy-eyeballs tries the first family first, and most local
            // servers listen on 127.0.0.1.
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        let addrs = self
            .resolver
            .lookup(host)
            .await
            .map_err(|err| ResolveError::Lookup {
                host: host.to_owned(),
                message: err.to_string(),
            })?;
        if addrs.is_empty() {
            return Err(ResolveError::Lookup {
                host: host.to_owned(),
                message: "no addresses".to_owned(),
            });
        }
        Ok(addrs)
    }

    /// The addresses of a resolved name that a connection to `port` may use, in the
    /// resolver's order. With `all`, any refused address refuses the name (for a proxy that
    /// resolves the name again and may pick any of them); otherwise only an answer with no
    /// allowed address is refused, and the first refusal is reported.
    pub fn vet_addrs(
        &self,
        host: &str,
        resolved: &[IpAddr],
        port: u16,
        all: bool,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let mut first_refusal = None;
        let mut allowed = Vec::new();
        for &ip in resolved {
            let addr = SocketAddr::new(ip, port);
            match self.check_addr(addr) {
                Ok(()) => allowed.push(addr),
                Err(refusal) if all => return Err(ResolveError::Refused(refusal)),
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        match (allowed.is_empty(), first_refusal) {
            (true, Some(refusal)) => Err(ResolveError::Refused(refusal)),
            (true, None) => Err(ResolveError::Lookup {
                host: host.to_owned(),
                message: "no addresses".to_owned(),
            }),
            (false, _) => Ok(allowed),
        }
    }
}

/// Why a name could not be resolved to an allowed address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Every address the name resolved to is refused; the first refusal is reported.
    #[error(transparent)]
    Refused(#[from] GuardError),
    #[error("cannot resolve {host}: {message}")]
    Lookup { host: String, message: String },
}

/// Resolves `host` (a name, not an IP literal) and returns the allowed addresses, in the
/// resolver's order. Refuses only when no address is allowed.
pub async fn resolve_allowed(
    policy: &GuardPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let resolved = policy.resolve_name(host).await?;
    policy.vet_addrs(host, &resolved, port, false)
}

/// Resolves `host` and refuses if any of its addresses is refused. Used when a proxy will
/// resolve the name itself and may pick any of them.
pub async fn resolve_all_allowed(
    policy: &GuardPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let resolved = policy.resolve_name(host).await?;
    policy.vet_addrs(host, &resolved, port, true)
}

/// The DNS resolver installed in every reqwest client: it resolves, runs the guard on each
/// address, and returns only the allowed ones, so reqwest connects only to checked
/// addresses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: GuardPolicy,
    /// Host names of configured proxies: the operator chose them, so they are not guarded.
    exempt_names: Vec<String>,
}

impl GuardedResolver {
    pub fn new(policy: GuardPolicy, exempt_names: Vec<String>) -> Self {
        GuardedResolver {
            policy,
            exempt_names,
        }
    }

    /// Whether requests to `host` need their port checked before sending: the resolver does
    /// not know the port, so an `ip:port` exception can only be matched by IP here.
    pub(crate) fn needs_port_check(&self) -> bool {
        self.policy.has_exceptions()
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let policy = self.policy.clone();
        let exempt = self
            .exempt_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            // Port 0: reqwest replaces it with the URL's port.
            let resolved: Vec<SocketAddr> = policy
                .resolve_name(&host)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if exempt {
                return Ok(Box::new(resolved.into_iter()) as reqwest::dns::Addrs);
            }
            let mut first_refusal = None;
            let mut allowed = Vec::new();
            for addr in resolved {
                match policy.check_ip_any_port(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(refusal) => {
                        first_refusal.get_or_insert(refusal);
                    }
                }
            }
            if allowed.is_empty() {
                let error: Box<dyn std::error::Error + Send + Sync> = match first_refusal {
                    Some(refusal) => Box::new(refusal),
                    None => Box::new(ResolveError::Lookup {
                        host,
                        message: "no addresses".to_owned(),
                    }),
                };
                return Err(error);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
