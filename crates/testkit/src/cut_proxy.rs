//! A TCP proxy on 127.0.0.1:0 that can cut every connection at once and refuse new ones
//! until restored: puts a database (or any TCP server) "down" and "up" again under a test
//! without touching the server itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy to `target`; dropping it stops accepting and cuts every connection.
#[derive(Debug)]
pub struct TcpCutProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    cut: AtomicBool,
    /// Bumped by every `cut()`; each relayed connection ends when it changes.
    generation: watch::Sender<u64>,
    accepted: AtomicU64,
}

impl TcpCutProxy {
    /// Starts relaying connections made to [`TcpCutProxy::addr`] to `target`. Must be
    /// called inside a tokio runtime.
    pub async fn start(target: SocketAddr) -> std::io::Result<TcpCutProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (generation, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            target,
            cut: AtomicBool::new(false),
            generation,
            accepted: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_connections(listener, shared.clone()));
        Ok(TcpCutProxy { addr, shared, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every relayed connection (both sides) and closes each new connection at once,
    /// as an unreachable server would look to a client, until [`TcpCutProxy::restore`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared
            .generation
            .send_modify(|generation| *generation += 1);
    }

    /// Relays new connections again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Connections accepted and relayed so far (connections refused while cut excluded).
    pub fn relayed_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpCutProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.shared
            .generation
            .send_modify(|generation| *generation += 1);
    }
}

async fn accept_connections(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if shared.cut.load(Ordering::SeqCst) {
            // Closing at once is what a client sees of a server that is down.
            drop(client);
            continue;
        }
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let generation = shared.generation.subscribe();
        tokio::spawn(relay(client, shared.target, generation));
    }
}

/// Copies bytes both ways until either side closes or the proxy is cut.
async fn relay(mut client: TcpStream, target: SocketAddr, mut generation: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = generation.changed() => {}
    }
    // Dropping both streams closes them: the cut is visible to both ends.
}
