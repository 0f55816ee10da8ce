//! The upstream proxy a proxied task's render is chained to, behind its guarding proxy:
//! `http://` (tunnels by `CONNECT`, plain requests forwarded in absolute form) or
//! `socks5://` / `socks5h://` (a SOCKS5 tunnel for both; `socks5` is given the address the
//! guard vetted, `socks5h` the name).

use std::net::{IpAddr, SocketAddr};

use http::header;
use http::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::{Body, CONNECT_TIMEOUT, RESPONSE_HEAD_TIMEOUT, Stream, empty, timed_connect};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    /// `remote_dns`: the proxy resolves names (`socks5h`).
    Socks5 {
        remote_dns: bool,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    kind: Kind,
    host: String,
    port: u16,
}

impl Upstream {
    /// Parses `http://host:port`, `socks5://host:port` or `socks5h://host:port`
    /// (credentials are not supported).
    pub(crate) fn parse(proxy: &str) -> Result<Upstream, String> {
        let url = url::Url::parse(proxy).map_err(|e| e.to_string())?;
        let kind = match url.scheme() {
            "http" => Kind::Http,
            "socks5" => Kind::Socks5 { remote_dns: false },
            "socks5h" => Kind::Socks5 { remote_dns: true },
            other => {
                return Err(format!(
                    "browser renders chain to http://, socks5:// or socks5h:// proxies, not {other}://"
                ));
            }
        };
        let host = url.host_str().ok_or("no host")?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let default_port = if kind == Kind::Http { 80 } else { 1080 };
        Ok(Upstream {
            kind,
            host,
            port: url.port().unwrap_or(default_port),
        })
    }

    /// Whether the upstream resolves target names itself, so that every address a name
    /// resolves to must be allowed (not just one).
    pub(crate) fn resolves_names(&self) -> bool {
        matches!(self.kind, Kind::Http | Kind::Socks5 { remote_dns: true })
    }

    /// Whether plain requests go to the upstream in absolute form (an HTTP proxy) rather
    /// than through a tunnel.
    pub(crate) fn forwards_absolute_form(&self) -> bool {
        self.kind == Kind::Http
    }

    /// The operator chose the upstream, so its own address is not guarded.
    pub(crate) async fn connect(&self) -> std::io::Result<TcpStream> {
        timed_connect(TcpStream::connect((self.host.as_str(), self.port))).await
    }

    /// A tunnel to `host:port` through the upstream; `vetted` are the addresses the guard
    /// allowed for it.
    pub(crate) async fn tunnel(
        &self,
        host: &str,
        port: u16,
        vetted: &[SocketAddr],
    ) -> Result<Box<dyn Stream>, String> {
        match self.kind {
            Kind::Http => self.http_tunnel(&format!("{host}:{port}")).await,
            Kind::Socks5 { remote_dns: true } => {
                let literal = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                let target = match literal.parse::<IpAddr>() {
                    Ok(ip) => SocksTarget::Addr(SocketAddr::new(ip, port)),
                    Err(_) => SocksTarget::Name(literal, port),
                };
                self.socks_tunnel(target).await
            }
            Kind::Socks5 { remote_dns: false } => {
                let mut last = "no vetted address".to_owned();
                for addr in vetted {
                    match self.socks_tunnel(SocksTarget::Addr(*addr)).await {
                        Ok(stream) => return Ok(stream),
                        Err(error) => last = error,
                    }
                }
                Err(last)
            }
        }
    }

    /// `CONNECT authority` to an HTTP upstream (the name is sent: the guard checked every
    /// address it resolves to).
    async fn http_tunnel(&self, authority: &str) -> Result<Box<dyn Stream>, String> {
        let stream = self.connect().await.map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        let request = Request::builder()
            .method(Method::CONNECT)
            .uri(authority)
            .header(header::HOST, authority)
            .body(empty())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| "the upstream proxy did not answer".to_owned())?
            .map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("the upstream proxy answered {}", response.status()));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Box::new(TokioIo::new(upgraded)))
    }

    async fn socks_tunnel(&self, target: SocksTarget<'_>) -> Result<Box<dyn Stream>, String> {
        let handshake = async {
            let mut stream = self.connect().await?;
            socks5_connect(&mut stream, target).await?;
            Ok::<_, std::io::Error>(stream)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the SOCKS5 proxy did not answer".to_owned()),
        }
    }
}

enum SocksTarget<'a> {
    Addr(SocketAddr),
    Name(&'a str, u16),
}

/// RFC 1928 without authentication: greeting, then CONNECT.
async fn socks5_connect(stream: &mut TcpStream, target: SocksTarget<'_>) -> std::io::Result<()> {
    let refused = |what: String| std::io::Error::other(format!("SOCKS5 proxy: {what}"));
    stream.write_all(&[5, 1, 0]).await?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await?;
    if choice != [5, 0] {
        return Err(refused("requires authentication".to_owned()));
    }
    let mut request = vec![5, 1, 0];
    let port = match target {
        SocksTarget::Addr(addr) => {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    request.push(1);
                    request.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    request.push(4);
                    request.extend_from_slice(&ip.octets());
                }
            }
            addr.port()
        }
        SocksTarget::Name(name, port) => {
            let len = u8::try_from(name.len()).map_err(|_| refused("name too long".to_owned()))?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(name.as_bytes());
            port
        }
    };
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    if head[0] != 5 || head[1] != 0 {
        return Err(refused(format!("CONNECT failed with reply {}", head[1])));
    }
    // The bound address, unused.
    let skip = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await?;
            usize::from(len[0]) + 2
        }
        other => return Err(refused(format!("unknown address type {other}"))),
    };
    let mut bound = vec![0u8; skip];
    stream.read_exact(&mut bound).await?;
    Ok(())
}
