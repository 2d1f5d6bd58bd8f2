//! Event streams on HTTP/1.1 connections the gateway serves itself (docs/api.md §7).
//!
//! hyper keeps about 30 kB for each HTTP/1.1 connection for as long as it is open: a
//! read buffer of 8 KiB at least (it cannot be configured smaller), a write buffer
//! allocated up front, and its connection state. For a stream that stays open for hours
//! that is most of what the stream costs (BENCHMARKS.md, "SSE"). So a connection whose
//! first request is `GET /v1/watch` is served here instead: its head is read into a
//! buffer that is dropped once parsed, the request goes through the same router as any
//! other (every check, limit and middleware), and the answer is written as it comes,
//! event by event, with nothing kept between events. The stream is the connection's
//! last request (`connection: close`). Every other connection, and a stream asked for
//! on a connection already in use, is hyper's, as before.

use std::io::Write as _;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, Version};
use axum::Router;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_service::Service;

use super::error::ApiError;
use super::listener::{envelope_answer, error_answer, MAX_HEADERS_PARSED, MAX_HEAD_BUFFER};

/// The starts of a request line that asks for an event stream. `/v1/watchers` is
/// another route: the character after `watch` tells them apart.
const STREAM_REQUEST_LINES: [&[u8]; 2] = [b"GET /v1/watch?", b"GET /v1/watch "];
/// What a head is read into at first; it grows to [`MAX_HEAD_BUFFER`] when needed.
const FIRST_HEAD_BUFFER: usize = 1024;
/// Frames are copied into one buffer with their chunk framing, so that those waiting go
/// out in one write: up to about this much.
const BATCH_BYTES: usize = 4096;

/// Whether a connection's first request asks for an event stream, from its first
/// bytes: `None` while they are only the start of a stream's request line (more must
/// arrive to tell).
pub fn asks_for_stream(first: &[u8]) -> Option<bool> {
    if STREAM_REQUEST_LINES
        .iter()
        .any(|line| first.starts_with(line))
    {
        Some(true)
    } else if STREAM_REQUEST_LINES
        .iter()
        .any(|line| line.starts_with(first))
    {
        None
    } else {
        Some(false)
    }
}

/// Serves the one request of a connection that [`asks_for_stream`]: reads its head
/// within `header_read_timeout`, answers through `router`, and closes.
pub async fn serve(mut stream: TcpStream, mut router: Router, header_read_timeout: Duration) {
    // As hyper does with a slow head: the connection is closed without an answer.
    let Ok(head) = tokio::time::timeout(header_read_timeout, read_head(&mut stream)).await else {
        return;
    };
    let request = match head.and_then(|head| parse_head(&head)) {
        Ok(request) => request,
        Err(Refusal::Closed) => return,
        Err(Refusal::Answer(answer)) => {
            if stream.write_all(&answer).await.is_ok() {
                close(stream).await;
            }
            return;
        }
    };
    let chunked = request.version() == Version::HTTP_11;
    let response = match router.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if write_response(&mut stream, response, chunked).await.is_ok() {
        close(stream).await;
    }
}

/// Ends the connection once the answer is out. What the client sent and nobody read
/// (the rest of an oversized head, a body) is read first and dropped, for a while:
/// closing with it unread would reset the connection, and a reset can destroy the
/// answer before the client reads it.
async fn close(mut stream: TcpStream) {
    const LINGER: Duration = Duration::from_secs(1);
    const LINGER_BYTES: usize = 1 << 20;
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        // On the heap: an array here would be in every stream's task for its lifetime.
        let mut dropped = vec![0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut dropped).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Why a request is not served.
#[derive(Debug)]
enum Refusal {
    /// The client went away (or failed) before its head was complete.
    Closed,
    /// The whole answer to send before closing: Google's envelope.
    Answer(Vec<u8>),
}

impl Refusal {
    fn invalid(message: &str) -> Refusal {
        Refusal::Answer(error_answer(&ApiError::invalid(message), None))
    }
}

/// Reads until the blank line that ends the head. What the client may have sent after
/// it is read along and ignored: the connection serves one request.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Refusal> {
    let mut head = Vec::with_capacity(FIRST_HEAD_BUFFER);
    let mut searched = 0;
    loop {
        if head.len() == head.capacity() {
            if head.len() >= MAX_HEAD_BUFFER {
                return Err(Refusal::Answer(envelope_answer(431, None)));
            }
            head.reserve(head.len().min(MAX_HEAD_BUFFER - head.len()));
        }
        match stream.read_buf(&mut head).await {
            Ok(0) | Err(_) => return Err(Refusal::Closed),
            Ok(_) => {}
        }
        // The end may straddle two reads: look again from three bytes back.
        if let Some(end) = find_blank_line(&head[searched..]) {
            head.truncate(searched + end);
            return Ok(head);
        }
        searched = head.len().saturating_sub(3);
    }
}

/// Where the first `\r\n\r\n` ends.
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The request a complete head asks for, or the envelope hyper's refusals would have
/// become (listener.rs): `400` for what cannot be read, `431` for too many headers.
fn parse_head(head: &[u8]) -> Result<Request<Body>, Refusal> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS_PARSED];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::Answer(envelope_answer(431, None)))
        }
        Ok(httparse::Status::Partial) | Err(_) => {
            return Err(Refusal::Answer(envelope_answer(400, None)))
        }
    }
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let mut request = Request::builder()
        .method(Method::GET)
        .version(version)
        .uri(parsed.path.unwrap_or("/"))
        .body(Body::empty())
        .map_err(|_| Refusal::Answer(envelope_answer(400, None)))?;
    let map = request.headers_mut();
    map.reserve(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes());
        let value = HeaderValue::from_bytes(h.value);
        let (Ok(name), Ok(value)) = (name, value) else {
            return Err(Refusal::Answer(envelope_answer(400, None)));
        };
        map.append(name, value);
    }
    let has_body = map.contains_key(header::TRANSFER_ENCODING)
        || map
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|length| length.as_bytes() != b"0");
    if has_body {
        return Err(Refusal::invalid(
            "GET /v1/watch takes no request body; send the stream's options in the query",
        ));
    }
    Ok(request)
}

/// Writes `response`: its head, then its body as it comes, the frames waiting at once
/// in one write (chunked on HTTP/1.1, up to the close on HTTP/1.0). Stops when the body ends or the
/// client closes. As with hyper, a client that stops reading holds its connection
/// until it closes; its stream is cut off (`cutoff`) as soon as it falls behind.
async fn write_response(
    stream: &mut TcpStream,
    response: Response<Body>,
    chunked: bool,
) -> std::io::Result<()> {
    let (parts, body) = response.into_parts();
    let whole = axum::body::HttpBody::size_hint(&body).exact();
    let mut out = Vec::with_capacity(512);
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        if [
            header::CONNECTION,
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
        ]
        .contains(name)
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(date) = crate::protocol::httpdate::format_ms(crate::model::now_ms()) {
        let _ = write!(out, "date: {date}\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n");

    if let Some(length) = whole {
        // An answer of known length (an error, most often): sent whole.
        let body = body
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        let _ = write!(out, "content-length: {length}\r\n\r\n");
        out.extend_from_slice(&body);
        return stream.write_all(&out).await;
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    stream.write_all(&out).await?;
    drop(out);

    let mut body = std::pin::pin!(body);
    let (mut from_client, mut to_client) = stream.split();
    let mut ignored = [0u8; 64];
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            read = from_client.read(&mut ignored) => match read {
                Ok(0) | Err(_) => return Err(std::io::ErrorKind::ConnectionAborted.into()),
                // Anything more the client sends is not read as a request.
                Ok(_) => continue,
            },
        };
        let Some(Ok(first)) = frame else { break };
        // This frame and those already waiting go out in one write (a batch of events is
        // published at once), up to about a buffer's worth. The buffer is for this write
        // only: between events a stream holds none.
        let mut out = Vec::new();
        let mut frame = Some(first);
        let mut ended = false;
        while let Some(this) = frame.take() {
            if let Ok(data) = this.into_data() {
                frame_into(&mut out, &data, chunked);
            }
            if out.len() < BATCH_BYTES {
                match body.frame().now_or_never() {
                    Some(Some(Ok(next))) => frame = Some(next),
                    Some(None | Some(Err(_))) => ended = true,
                    None => {}
                }
            }
        }
        if !out.is_empty() {
            to_client.write_all(&out).await?;
        }
        if ended {
            break;
        }
    }
    if chunked {
        to_client.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// Appends `data` as it goes on the wire: a chunk on HTTP/1.1, as it is on HTTP/1.0.
fn frame_into(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if data.is_empty() {
        // An empty chunk would end the body.
        return;
    }
    if chunked {
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_told_from_other_requests_by_its_first_bytes() {
        assert_eq!(
            asks_for_stream(b"GET /v1/watch?resource=/a HTTP/1.1"),
            Some(true)
        );
        assert_eq!(asks_for_stream(b"GET /v1/watch HTTP/1.1"), Some(true));
        assert_eq!(asks_for_stream(b"GET /v1/wa"), None, "not enough to tell");
        assert_eq!(
            asks_for_stream(b"GET /v1/watch"),
            None,
            "nor `/v1/watchers`"
        );
        assert_eq!(asks_for_stream(b"GET /v1/watchers HTTP/1.1"), Some(false));
        assert_eq!(asks_for_stream(b"POST /v1/events"), Some(false));
        assert_eq!(asks_for_stream(b"PRI * HTTP/2.0"), Some(false));
    }

    #[test]
    fn the_end_of_a_head_is_found_wherever_it_falls() {
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(
            find_blank_line(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest"),
            Some(27)
        );
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    }

    #[test]
    fn a_stream_request_becomes_the_routers_request() {
        let request = parse_head(
            b"GET /v1/watch?resource=/a&since=x HTTP/1.1\r\nHost: gw\r\nX-Two: 1\r\nx-two: 2\r\n\r\n",
        )
        .unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.uri().path(), "/v1/watch");
        assert_eq!(request.uri().query(), Some("resource=/a&since=x"));
        let twos: Vec<_> = request.headers().get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"], "repeated headers stay, in order");
        let old = parse_head(b"GET /v1/watch?resource=/a HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(old.version(), Version::HTTP_10);
    }

    fn refusal_status(head: &[u8]) -> (u16, String) {
        let Err(Refusal::Answer(answer)) = parse_head(head) else {
            panic!("{} was not refused", String::from_utf8_lossy(head))
        };
        let answer = String::from_utf8(answer).unwrap();
        let (status_line, _) = answer.split_once("\r\n").unwrap();
        let status = status_line[9..12].parse().unwrap();
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(envelope["error"]["code"], status, "{answer}");
        (
            status,
            envelope["error"]["message"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn heads_hyper_would_refuse_get_the_envelope() {
        assert_eq!(
            refusal_status(b"GET /v1/watch?x HTTP/1.1\r\nbad header\r\n\r\n").0,
            400
        );
        assert_eq!(refusal_status(b"GET /v1/watch?x HTTP/9.9\r\n\r\n").0, 400);
        let many: String = (0..MAX_HEADERS_PARSED + 1)
            .map(|i| format!("h{i}: v\r\n"))
            .collect();
        let head = format!("GET /v1/watch?x HTTP/1.1\r\n{many}\r\n");
        assert_eq!(refusal_status(head.as_bytes()).0, 431);
    }

    #[test]
    fn a_stream_request_with_a_body_is_refused_by_name() {
        for framing in ["content-length: 5", "transfer-encoding: chunked"] {
            let head = format!("GET /v1/watch?x HTTP/1.1\r\n{framing}\r\n\r\n");
            let (status, message) = refusal_status(head.as_bytes());
            assert_eq!(status, 400);
            assert!(message.contains("no request body"), "{message}");
        }
        assert!(parse_head(b"GET /v1/watch?x HTTP/1.1\r\ncontent-length: 0\r\n\r\n").is_ok());
    }

    #[test]
    fn frames_are_chunks_on_http_1_1_and_bare_on_http_1_0() {
        let mut out = Vec::new();
        frame_into(&mut out, b"data: {}\n\n", true);
        assert_eq!(out, b"a\r\ndata: {}\n\n\r\n");
        out.clear();
        frame_into(&mut out, b"data: {}\n\n", false);
        assert_eq!(out, b"data: {}\n\n");
    }
}
