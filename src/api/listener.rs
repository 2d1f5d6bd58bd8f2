//! Accepting connections: hyper with explicit limits, and graceful shutdown.
//!
//! `axum::serve` has no knobs for slow clients, so connections are served here with
//! hyper-util directly: a header read timeout (slowloris), a bounded header buffer, and
//! a drain period on shutdown. Limits that can answer with Google's envelope (header
//! bytes and count, request timeout) are middleware in `limits.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// hyper's own hard cap on a request head. The configured (smaller) header limit is
/// enforced by middleware so that it can answer `431` with an envelope; this cap only
/// catches heads too large to parse at all.
const MAX_HEAD_BUFFER: usize = 256 * 1024;
/// hyper's cap on the number of headers; the configured limit is again middleware.
const MAX_HEADERS_PARSED: usize = 512;

pub struct ConnectionLimits {
    /// A client must finish sending its request head within this time.
    pub header_read_timeout: Duration,
    /// How long open connections may finish their requests at shutdown.
    pub drain: Duration,
}

/// Waits until the client has sent enough to tell HTTP/1 from HTTP/2, which hyper-util
/// reads before hyper's header read timeout starts: without this bound, a client that
/// connects and sends nothing (or part of the HTTP/2 preface) holds a socket forever.
/// `false` when the client closed first.
async fn protocol_known(stream: &tokio::net::TcpStream) -> bool {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut first = [0u8; 24];
    loop {
        match stream.peek(&mut first).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n == H2_PREFACE.len() || first[..n] != H2_PREFACE[..n] => return true,
            // A prefix of the preface: peek returns at once until more arrives.
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BUFFER)
        .max_headers(MAX_HEADERS_PARSED);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BUFFER as u32)
        // A peer that stops answering pings (a stalled client) is disconnected.
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let shutdown = shutdown.clone();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            tokio::select! {
                started = tokio::time::timeout(header_read_timeout, protocol_known(&stream)) => {
                    if !matches!(started, Ok(true)) {
                        return;
                    }
                }
                _ = shutdown.cancelled() => return,
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            // Client resets and timeouts end here; they concern that client only.
            let _ = watcher.watch(connection).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing them");
    }
}
