//! The URL guard applied to every request a page makes, through CDP request interception.

use std::net::{IpAddr, SocketAddr};

use selextract_fetch::guard::{GuardPolicy, resolve_all_allowed};
use url::{Host, Url};

/// Decides whether the browser may make a request to `url`: `Ok` to continue it, `Err` with
/// the reason to fail it. Non-network schemes (`data:`, `blob:`, `about:`) are allowed;
/// schemes other than HTTP(S) and WebSocket are refused. A name is allowed only when every
/// address it resolves to is allowed, since Chromium picks the address itself.
pub async fn check_request_url(policy: &GuardPolicy, url: &str) -> Result<(), String> {
    let Ok(url) = Url::parse(url) else {
        return Err("unparsable URL".to_owned());
    };
    match url.scheme() {
        "data" | "blob" | "about" => return Ok(()),
        "http" | "https" | "ws" | "wss" => {}
        other => return Err(format!("scheme {other} is not allowed")),
    }
    if policy.allow_private_networks {
        return Ok(());
    }
    let Some(port) = url.port_or_known_default() else {
        return Err("no port".to_owned());
    };
    match url.host() {
        Some(Host::Ipv4(ip)) => check_ip(policy, IpAddr::V4(ip), port),
        Some(Host::Ipv6(ip)) => check_ip(policy, IpAddr::V6(ip), port),
        Some(Host::Domain(name)) => resolve_all_allowed(policy, name, port)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => Err("no host".to_owned()),
    }
}

fn check_ip(policy: &GuardPolicy, ip: IpAddr, port: u16) -> Result<(), String> {
    policy
        .check_addr(SocketAddr::new(ip, port))
        .map_err(|e| e.to_string())
}
