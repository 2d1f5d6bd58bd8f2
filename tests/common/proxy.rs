//! A TCP proxy a test can break in two ways, between one gateway and its database: a
//! network partition that leaves the other gateways connected.
//!
//! - **Cut**: the connections through it close at once and new ones are refused until
//!   it is healed: the partition the gateway hears about.
//! - **Black hole**: nothing is forwarded either way and nothing is closed: open
//!   connections go silent, new ones are accepted and get nothing, as when a link drops
//!   every packet without a reset. It ends with [`Proxy::restore`]: the connections it
//!   held either go on where they stopped (the link came back in time) or stay silent
//!   for good (a firewall or NAT on the way forgot them), while new ones work.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub port: u16,
    links: Arc<Mutex<Links>>,
    accepting: JoinHandle<()>,
}

/// What becomes of the connections a black hole held when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// They go on where they stopped: what was sent meanwhile arrives now.
    Resume,
    /// They stay silent for good; only new connections work.
    Lost,
}

/// The proxy's state, changed under one lock with the list of connections, so that a
/// connection accepted while it changes gets the new state.
#[derive(Default)]
struct Links {
    cut: bool,
    silent: bool,
    connections: Vec<Link>,
}

/// One connection through the proxy.
struct Link {
    forwarding: JoinHandle<()>,
    /// Whether bytes may pass, either way.
    flowing: watch::Sender<bool>,
    /// Black-holed for good (see [`Held::Lost`]).
    lost: bool,
}

impl Proxy {
    /// Forwards `127.0.0.1:<port>` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links: Arc<Mutex<Links>> = Arc::default();
        let accepting = {
            let links = links.clone();
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let mut links = links.lock().unwrap();
                    if links.cut {
                        continue; // Dropped: refused.
                    }
                    let (flowing, open) = watch::channel(!links.silent);
                    let forwarding = tokio::spawn(forward(inbound, upstream, open));
                    links.connections.retain(|c| !c.forwarding.is_finished());
                    links.connections.push(Link {
                        forwarding,
                        flowing,
                        lost: false,
                    });
                }
            })
        };
        Proxy {
            port,
            links,
            accepting,
        }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        let mut links = self.links.lock().unwrap();
        links.cut = true;
        for connection in links.connections.drain(..) {
            connection.forwarding.abort();
        }
    }

    /// Forwards new connections again.
    pub fn heal(&self) {
        self.links.lock().unwrap().cut = false;
    }

    /// Stops forwarding anything, either way, on every connection and on the new ones
    /// it accepts; closes nothing.
    pub fn black_hole(&self) {
        let mut links = self.links.lock().unwrap();
        links.silent = true;
        for connection in &links.connections {
            connection.flowing.send_replace(false);
        }
    }

    /// Ends a black hole: new connections work; those it held go on or stay silent,
    /// as `held` says.
    pub fn restore(&self, held: Held) {
        let mut links = self.links.lock().unwrap();
        links.silent = false;
        for connection in &mut links.connections {
            connection.lost |= held == Held::Lost && !*connection.flowing.borrow();
            if !connection.lost {
                connection.flowing.send_replace(true);
            }
        }
    }
}

/// Forwards one connection both ways while `open` says so. Its upstream connection is
/// opened once bytes may flow: a connection accepted inside a black hole reaches
/// nothing.
async fn forward(inbound: TcpStream, upstream: SocketAddr, mut open: watch::Receiver<bool>) {
    if open.wait_for(|open| *open).await.is_err() {
        return;
    }
    let Ok(outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    let (from_client, to_client) = inbound.into_split();
    let (from_server, to_server) = outbound.into_split();
    tokio::join!(
        pump(from_client, to_server, open.clone()),
        pump(from_server, to_client, open),
    );
}

/// Copies one direction while `open` says so; what it read just before the flow
/// stopped waits for it to start again. Shuts its writing side down at the end.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut open: watch::Receiver<bool>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = open.wait_for(|open| !*open) => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        for connection in self.links.lock().unwrap().connections.drain(..) {
            connection.forwarding.abort();
        }
    }
}
