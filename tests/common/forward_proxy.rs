//! A forward proxy on 127.0.0.1:0 that records what it is asked: `CONNECT` tunnels
//! (`"CONNECT 127.0.0.1:4431"`) and requests in absolute form (`"POST
//! http://127.0.0.1:8080/hook host=localhost:8080"`), one entry per connection (the
//! first request on it; later ones on a kept-alive connection pass unrecorded, to the
//! same place). A test can make it hang on a target: it then never answers a `CONNECT`
//! to it, as a proxy does whose upstream black-holes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct ForwardProxy {
    pub addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    hanging: Arc<Mutex<HashSet<String>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl ForwardProxy {
    pub async fn start() -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let hanging: Arc<Mutex<HashSet<String>>> = Arc::default();
        let accepting = {
            let (asked, hanging) = (asked.clone(), hanging.clone());
            tokio::spawn(async move {
                let mut held = tokio::task::JoinSet::new();
                while let Ok((client, _)) = listener.accept().await {
                    held.spawn(serve(client, asked.clone(), hanging.clone()));
                }
            })
        };
        ForwardProxy {
            addr,
            asked,
            hanging,
            accepting,
        }
    }

    /// `http://127.0.0.1:PORT`, as `--egress-proxy` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it was asked, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// Never answers a `CONNECT` to `target` (`host:port`, as asked).
    pub fn hang_on(&self, target: &str) {
        self.hanging.lock().unwrap().insert(target.to_string());
    }
}

/// One client connection: reads its first request head, records it, and joins the
/// client to where it asked to go.
async fn serve(
    mut client: TcpStream,
    asked: Arc<Mutex<Vec<String>>>,
    hanging: Arc<Mutex<HashSet<String>>>,
) {
    let mut head = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 1024];
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).to_string();
    let mut request_line = text.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (
        request_line.next().unwrap_or_default().to_string(),
        request_line.next().unwrap_or_default().to_string(),
    );
    if method == "CONNECT" {
        asked.lock().unwrap().push(format!("CONNECT {target}"));
        if hanging.lock().unwrap().contains(&target) {
            // Held open and never answered, until the client gives up.
            let _ = client.read(&mut [0u8; 1]).await;
            return;
        }
        let Ok(mut upstream) = TcpStream::connect(&target).await else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }
    let host = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("host")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    asked
        .lock()
        .unwrap()
        .push(format!("{method} {target} host={host}"));
    let Some(authority) = target
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
    else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(authority).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    // Passed on as it came, absolute form and all: the receivers accept it.
    if upstream.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
