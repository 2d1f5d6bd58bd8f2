//! Accepting connections: hyper with explicit limits, and graceful shutdown.
//!
//! `axum::serve` has no knobs for slow clients, so connections are served here with
//! hyper-util directly: a header read timeout (slowloris), a bounded header buffer, and
//! a drain period on shutdown. Limits that can answer with Google's envelope (header
//! bytes and count, request timeout) are middleware in `limits.rs`; requests hyper
//! cannot parse at all get the envelope from [`EnvelopeRefusals`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::{ApiError, CONTENT_TYPE};
use super::stream_connection;

/// hyper's own hard cap on a request head. The configured (smaller) header limit is
/// enforced by middleware so that it can answer `431` with an envelope; this cap only
/// catches heads too large to parse at all.
pub(super) const MAX_HEAD_BUFFER: usize = 256 * 1024;
/// The most headers `stream_connection.rs` reads in a head; the configured limit is
/// again middleware.
pub(super) const MAX_HEADERS_PARSED: usize = 512;
/// hyper's own cap on the number of headers when none is set. Setting any cap costs
/// every request room for that many headers made on the heap (4 k instructions a
/// request at 512, callgrind), so the configured limit is given to hyper only when it
/// is higher: a request over it then gets hyper's refusal (as the envelope, below)
/// rather than the middleware's, with the same status and reason.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

pub struct ConnectionLimits {
    /// A client must finish sending its request head within this time.
    pub header_read_timeout: Duration,
    /// How long open connections may finish their requests at shutdown.
    pub drain: Duration,
    /// The configured `--max-headers` (enforced by middleware, `limits.rs`).
    pub max_headers: usize,
}

/// Waits until the client has sent enough to tell HTTP/1 from HTTP/2 (which hyper-util
/// reads before hyper's header read timeout starts: without this bound, a client that
/// connects and sends nothing, or part of the HTTP/2 preface, holds a socket forever)
/// and a stream from other requests. `None` when the client closed first.
async fn opening(stream: &tokio::net::TcpStream) -> Option<Opening> {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut first = [0u8; 24];
    loop {
        let seen = match stream.peek(&mut first).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => &first[..n],
        };
        let part_of_preface = seen.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(seen);
        match stream_connection::asks_for_stream(seen) {
            _ if part_of_preface => {}
            Some(true) => return Some(Opening::Stream),
            Some(false) => return Some(Opening::Other),
            None => {}
        }
        // Not enough to tell: peek answers at once until more arrives.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a connection is, from its first bytes.
enum Opening {
    /// Its first request asks for an event stream: `stream_connection.rs` serves it.
    Stream,
    /// Anything else, HTTP/1 or HTTP/2: hyper serves it.
    Other,
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
        .max_buf_size(MAX_HEAD_BUFFER);
    if limits.max_headers > HYPER_DEFAULT_MAX_HEADERS {
        builder.http1().max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BUFFER as u32)
        // A peer that stops answering pings (a stalled client) is disconnected.
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    // Streams served by `stream_connection.rs`: they end themselves at shutdown (the
    // gateway's closing tells each stream to say goodbye), and the drain waits for them.
    let streams = TaskTracker::new();
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
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let shutdown = shutdown.clone();
        let header_read_timeout = limits.header_read_timeout;
        let streams = streams.clone();
        tokio::spawn(async move {
            let opening = tokio::select! {
                opened = tokio::time::timeout(header_read_timeout, opening(&stream)) => match opened {
                    Ok(Some(opening)) => opening,
                    _ => return,
                },
                _ = shutdown.cancelled() => return,
            };
            if let Opening::Stream = opening {
                // A task of its own, so that the stream's task is no larger than what
                // it holds (this one has room for a hyper connection).
                streams.spawn(stream_connection::serve(
                    stream,
                    router,
                    header_read_timeout,
                ));
                return;
            }
            let service = TowerToHyperService::new(router);
            let io = TokioIo::new(EnvelopeRefusals::new(stream));
            let connection = builder
                .serve_connection_with_upgrades(io, service)
                .into_owned();
            // Client resets and timeouts end here; they concern that client only.
            let _ = watcher.watch(connection).await;
        });
    }
    drop(listener);
    streams.close();
    if graceful.count() + streams.len() > 0 {
        tracing::info!(
            connections = graceful.count() + streams.len(),
            grace = ?limits.drain,
            "waiting for open connections to finish their requests"
        );
    }
    let drained = async {
        graceful.shutdown().await;
        streams.wait().await;
    };
    if tokio::time::timeout(limits.drain, drained).await.is_err() {
        tracing::warn!("connections still open after the drain period; closing them");
    }
}

/// hyper answers a request it cannot frame (a request line that is not HTTP, a header
/// it cannot parse, conflicting lengths, a head over its caps) by itself, before any
/// service runs: an empty `400`, `414` or `431`, after which it closes the connection.
/// No hyper option changes that answer, and it is written before the error reaches
/// this code. So every connection writes through this wrapper, which recognises that
/// answer at the end of a write ([`hyper_refusal`]) and sends Google's envelope in its
/// place (docs/api.md §14). Everything else passes through untouched.
struct EnvelopeRefusals<T> {
    inner: T,
    /// The envelope going out in place of hyper's answer, and how much of it has.
    replacing: Option<(Vec<u8>, usize)>,
}

impl<T> EnvelopeRefusals<T> {
    fn new(inner: T) -> Self {
        EnvelopeRefusals {
            inner,
            replacing: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EnvelopeRefusals<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EnvelopeRefusals<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            match hyper_refusal(buf) {
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
                // An earlier answer still in hyper's buffer goes out first, as it is.
                Some((start, _)) if start > 0 => {
                    return Pin::new(&mut this.inner).poll_write(cx, &buf[..start])
                }
                Some((_, envelope)) => this.replacing = Some((envelope, 0)),
            }
        }
        // hyper calls again with the same bytes until they are reported written.
        let (envelope, sent) = this.replacing.as_mut().expect("set above");
        while *sent < envelope.len() {
            match ready!(Pin::new(&mut this.inner).poll_write(cx, &envelope[*sent..]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => *sent += n,
            }
        }
        this.replacing = None;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's answer is a head alone: a single slice, which `poll_write` examines.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        match (filled.next(), filled.next()) {
            (Some(only), None) => self.poll_write(cx, only),
            _ => Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Where `written` ends with hyper's own answer to a request it could not parse, and
/// the envelope to send instead. That answer is a `400`, `414` or `431` head with
/// `connection: close`, `content-length: 0` and `date` and nothing more, which no
/// answer of the gateway's own ends with: its errors all carry the envelope, and none
/// of its bodies (JSON, event streams, Prometheus text) holds a CRLF.
fn hyper_refusal(written: &[u8]) -> Option<(usize, Vec<u8>)> {
    /// Longer than hyper's longest such head.
    const TAIL: usize = 160;
    const STATUS_LINE: &[u8] = b"HTTP/1.1 4";
    if !written.ends_with(b"\r\n\r\n") {
        return None;
    }
    let tail = written.len().saturating_sub(TAIL);
    let start = tail
        + written[tail..]
            .windows(STATUS_LINE.len())
            .rposition(|w| w == STATUS_LINE)?;
    let head = std::str::from_utf8(&written[start..]).ok()?;
    let mut lines = head.strip_suffix("\r\n\r\n")?.split("\r\n");
    let status: u16 = lines.next()?.get(9..12)?.parse().ok()?;
    let (mut empty, mut date) = (false, None);
    for line in lines {
        match line.split_once(": ")? {
            ("connection", "close") => {}
            ("content-length", "0") => empty = true,
            ("date", _) => date = Some(line),
            _ => return None,
        }
    }
    (empty && matches!(status, 400 | 414 | 431)).then(|| (start, envelope_answer(status, date)))
}

/// The whole answer, head and envelope, to a request hyper refused with `status`.
pub(super) fn envelope_answer(status: u16, date: Option<&str>) -> Vec<u8> {
    let error = if status == 400 {
        ApiError::invalid(
            "the request is not well-formed HTTP/1.1: its request line, a header, or its \
             Content-Length or Transfer-Encoding cannot be read",
        )
    } else {
        // A 414 too: the request line counts towards the head (docs/api.md §10.4).
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headersTooLarge",
            format!(
                "the request line and headers are too large to read (over {} KiB, or more \
                 headers than --max-headers allows); keep them within --max-header-bytes \
                 and --max-headers",
                MAX_HEAD_BUFFER / 1024,
            ),
        )
    };
    error_answer(&error, date)
}

/// The whole answer, head and envelope, for `error`, closing the connection.
pub(super) fn error_answer(error: &ApiError, date: Option<&str>) -> Vec<u8> {
    let body = error.body();
    let mut head = format!(
        "HTTP/1.1 {}\r\ncontent-type: {CONTENT_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n",
        error.status,
        body.len()
    );
    if let Some(date) = date {
        head.push_str(date);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    [head.into_bytes(), body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Mon, 30 Nov 2026 14:13:31 GMT";

    fn hyper_answer(status_line: &str) -> String {
        format!(
            "HTTP/1.1 {status_line}\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}\r\n\r\n"
        )
    }

    #[test]
    fn hypers_own_refusals_become_envelopes() {
        for (status_line, status, reason) in [
            ("400 Bad Request", 400, "invalid"),
            (
                "431 Request Header Fields Too Large",
                431,
                "headersTooLarge",
            ),
            ("414 URI Too Long", 431, "headersTooLarge"),
        ] {
            let (start, answer) = hyper_refusal(hyper_answer(status_line).as_bytes()).unwrap();
            assert_eq!(start, 0);
            let answer = String::from_utf8(answer).unwrap();
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(
                head.contains("content-type: application/json; charset=UTF-8"),
                "{head}"
            );
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{head}"
            );
            assert!(head.ends_with(DATE), "{head}");
            let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(envelope["error"]["code"], status);
            assert_eq!(envelope["error"]["errors"][0]["reason"], reason);
        }
    }

    #[test]
    fn an_answer_already_in_the_buffer_goes_out_first() {
        let earlier = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let written = format!("{earlier}{}", hyper_answer("400 Bad Request"));
        let (start, _) = hyper_refusal(written.as_bytes()).unwrap();
        assert_eq!(start, earlier.len());
    }

    #[test]
    fn the_gateways_own_answers_pass_untouched() {
        let envelope = envelope_answer(400, Some(DATE));
        for written in [
            envelope.as_slice(),
            &envelope[..envelope.len() - 10],
            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"0\r\n\r\n",
            b"",
        ] {
            assert!(
                hyper_refusal(written).is_none(),
                "{}",
                String::from_utf8_lossy(written)
            );
        }
    }
}
