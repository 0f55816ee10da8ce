//! A minimal SOCKS5 proxy on 127.0.0.1:0 (no authentication, CONNECT only) that records the
//! targets it was asked for and relays only to loopback IP addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running SOCKS5 proxy; dropping it stops accepting connections.
#[derive(Debug)]
pub struct Socks5Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Socks5Server {
    /// `socks5://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("socks5://{}", self.addr)
    }

    /// Every CONNECT target asked for, as `ip:port` or `name:port`, in arrival order.
    pub fn targets(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Socks5Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the proxy on the current tokio runtime. Names and non-loopback addresses are
/// recorded and refused (reply 2, "not allowed by ruleset").
pub async fn start_socks5_proxy() -> Socks5Server {
    let listener = match TcpListener::bind(("127.0.0.1", 0)).await {
        Ok(listener) => listener,
        Err(err) => panic!("testkit: cannot bind the SOCKS5 proxy on 127.0.0.1:0: {err}"),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => panic!("testkit: bound SOCKS5 listener has no address: {err}"),
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let task_log = Arc::clone(&log);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = Arc::clone(&task_log);
            tokio::spawn(async move {
                // A client that breaks the protocol just loses its connection.
                let _ = relay(stream, log).await;
            });
        }
    });
    Socks5Server { addr, log, task }
}

async fn relay(mut client: TcpStream, log: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods).await?;
    if greeting[0] != 5 || !methods.contains(&0) {
        client.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[5, 0]).await?;
    let mut head = [0u8; 4];
    client.read_exact(&mut head).await?;
    let host = match head[3] {
        1 => {
            let mut octets = [0u8; 4];
            client.read_exact(&mut octets).await?;
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        4 => {
            let mut octets = [0u8; 16];
            client.read_exact(&mut octets).await?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    };
    let name = if head[3] == 3 {
        let mut len = [0u8; 1];
        client.read_exact(&mut len).await?;
        let mut name = vec![0u8; usize::from(len[0])];
        client.read_exact(&mut name).await?;
        Some(String::from_utf8_lossy(&name).into_owned())
    } else {
        None
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);
    let shown = match (&host, &name) {
        (Some(ip), _) => SocketAddr::new(*ip, port).to_string(),
        (None, Some(name)) => format!("{name}:{port}"),
        (None, None) => format!("?:{port}"),
    };
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(shown);
    let reply_refused = [5, 2, 0, 1, 0, 0, 0, 0, 0, 0];
    let target = match host {
        Some(ip) if head[1] == 1 && ip.is_loopback() => SocketAddr::new(ip, port),
        _ => {
            client.write_all(&reply_refused).await?;
            return Ok(());
        }
    };
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    };
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}
