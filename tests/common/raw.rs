//! A receiver on a bare TCP socket, for what an HTTP server library would hide or
//! cannot do: it keeps each request's exact bytes (a missing `Content-Length` shows),
//! answers plain text where TLS is expected, or takes a request and never answers.
//! One request per connection; the gateway's client opens a new one for the next.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How the receiver answers each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawAnswer {
    /// Reads the request and answers this status (and closes).
    Status(u16),
    /// Reads the request and never answers; the connection stays open.
    Silence,
    /// Answers whatever arrives with a plain-text HTTP error, as a server that does
    /// not speak TLS answers a TLS handshake (nothing is recorded).
    PlainText,
}

/// One request as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The request line and the header lines, exactly as sent.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// Every value of the header `name` (any letter case), in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).first().copied()
    }
}

pub struct RawReceiver {
    pub addr: SocketAddr,
    answer: Arc<Mutex<RawAnswer>>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<RawRequest>>,
}

impl RawReceiver {
    pub async fn start(answer: RawAnswer) -> RawReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let (tx, rx) = mpsc::unbounded_channel();
        let how = answer.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let answer = *how.lock().unwrap();
                tokio::spawn(serve(socket, answer, tx.clone()));
            }
        });
        RawReceiver {
            addr,
            answer,
            rx: tokio::sync::Mutex::new(rx),
        }
    }

    /// `http://…/hook` on this receiver.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Changes how later connections are answered.
    pub fn answer(&self, answer: RawAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// The next request, or a panic after `PATIENCE`.
    pub async fn next(&self) -> RawRequest {
        super::next_in_time(&self.rx).await
    }
}

async fn serve(mut socket: TcpStream, answer: RawAnswer, tx: mpsc::UnboundedSender<RawRequest>) {
    if answer == RawAnswer::PlainText {
        let mut hello = [0u8; 512];
        let _ = socket.read(&mut hello).await;
        let _ = socket
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    }
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let _ = tx.send(request);
    match answer {
        RawAnswer::Status(status) => {
            let answer = format!(
                "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
        // Held until the peer goes away.
        _ => {
            let mut rest = [0u8; 64];
            while matches!(socket.read(&mut rest).await, Ok(n) if n > 0) {}
        }
    }
}

/// Reads one request: the head up to the blank line, then as many body bytes as its
/// `Content-Length` says (none without one).
async fn read_request(socket: &mut TcpStream) -> Option<RawRequest> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = socket.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut request = RawRequest {
        head,
        body: bytes[head_end + 4..].to_vec(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        let n = socket.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        request.body.extend_from_slice(&chunk[..n]);
    }
    Some(request)
}
