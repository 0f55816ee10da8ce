//! A minimal HTTP proxy on 127.0.0.1:0 (absolute-URI forwarding and CONNECT) that counts what
//! it relays, plus an address where no proxy listens.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the proxy relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// `GET http://127.0.0.1:PORT/path` or `CONNECT 127.0.0.1:PORT`.
    pub request_line: String,
    /// The `Proxy-Authorization` header the client sent, if any.
    pub proxy_authorization: Option<String>,
}

/// A running proxy; dropping it stops accepting connections.
#[derive(Debug)]
pub struct ProxyServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<ProxiedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Number of requests relayed (each CONNECT tunnel counts once).
    pub fn requests(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn request_log(&self) -> Vec<ProxiedRequest> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the proxy on the current tokio runtime. It only relays to loopback targets (so a
/// test can never make it send packets elsewhere) and answers 502 for anything else.
pub async fn start_http_proxy() -> ProxyServer {
    let listener = match TcpListener::bind(("127.0.0.1", 0)).await {
        Ok(listener) => listener,
        Err(err) => panic!("testkit: cannot bind the proxy on 127.0.0.1:0: {err}"),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => panic!("testkit: bound proxy listener has no address: {err}"),
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let task_log = Arc::clone(&log);
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let log = Arc::clone(&task_log);
            tokio::spawn(async move {
                // A failed relay just closes the client connection, as a real proxy would.
                let _ = relay(client, log).await;
            });
        }
    });
    ProxyServer { addr, log, task }
}

/// An address on 127.0.0.1 where nothing listens: the port was bound and released, so
/// connections are refused (a dead proxy).
pub fn dead_proxy_addr() -> SocketAddr {
    let listener = match std::net::TcpListener::bind(("127.0.0.1", 0)) {
        Ok(listener) => listener,
        Err(err) => panic!("testkit: cannot bind 127.0.0.1:0: {err}"),
    };
    match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => panic!("testkit: bound listener has no address: {err}"),
    }
}

const MAX_HEAD: usize = 64 * 1024;

async fn relay(mut client: TcpStream, log: Arc<Mutex<Vec<ProxiedRequest>>>) -> std::io::Result<()> {
    let (head, leftover) = read_head(&mut client).await?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let proxy_authorization = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.clone());
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(ProxiedRequest {
            request_line: request_line.clone(),
            proxy_authorization,
        });

    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method.eq_ignore_ascii_case("CONNECT") {
        let Some(mut upstream) = connect_loopback(target).await else {
            return client
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await;
        };
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        upstream.write_all(&leftover).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }

    let Some((authority, path)) = split_absolute_uri(target) else {
        return client
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
    };
    let Some(mut upstream) = connect_loopback(authority).await else {
        return client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
    };
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in &headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("proxy-") || lower == "connection" || lower == "keep-alive" {
            continue;
        }
        forwarded.push_str(&format!("{name}: {value}\r\n"));
    }
    // One request per connection keeps the relay a plain byte copy: the origin closes after
    // answering, and the client learns from `Connection: close` not to reuse the socket.
    forwarded.push_str("Connection: close\r\n\r\n");
    upstream.write_all(forwarded.as_bytes()).await?;
    upstream.write_all(&leftover).await?;
    tokio::io::copy(&mut upstream, &mut client).await?;
    client.shutdown().await
}

/// Reads up to the blank line that ends the request head; returns it and any bytes after it.
async fn read_head(client: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            return Ok((head, buffer[end + 4..].to_vec()));
        }
        if buffer.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "client closed",
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Splits `http://host:port/path?q` into `host:port` and `/path?q`.
fn split_absolute_uri(target: &str) -> Option<(&str, &str)> {
    let rest = target.strip_prefix("http://")?;
    Some(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    })
}

/// Connects to `authority` only when it names a loopback address.
async fn connect_loopback(authority: &str) -> Option<TcpStream> {
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr: SocketAddr = authority.parse().ok()?;
    if !addr.ip().is_loopback() {
        return None;
    }
    TcpStream::connect(addr).await.ok()
}
