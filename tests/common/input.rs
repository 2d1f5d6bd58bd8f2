//! Helpers of the input-validation suites (watch_validation, publish_validation,
//! bad_input, hostile, client_fixtures): raw HTTP for request targets an URL library
//! would normalise and framing it would fix, and table-driven checks of the answers.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Gateway, Reply, PATIENCE};

/// Writes `request` verbatim on a new connection and reads the answer until the
/// gateway closes it. For request targets that `reqwest` would normalise (`/a/../b`)
/// and bodies it cannot frame (chunked without a length). Send `Connection: close`.
pub async fn raw_http(gw: &Gateway, request: &[u8]) -> Reply {
    let addr = gw.authority();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer));
    read.await.expect("the gateway answers in time").unwrap();
    let answer = String::from_utf8(answer).expect("a UTF-8 answer");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .expect("a complete HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    Reply::new(status, HeaderMap::new(), body.to_string())
}

/// A `POST` with a JSON body, as raw HTTP/1.1 bytes.
pub fn raw_post(path: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// Milliseconds since the Unix epoch, as the gateway counts them.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The reason of a Google error envelope, checking the envelope on the way (see
/// `envelope_problem`). `None` for a success.
pub fn reason_of(reply: &Reply) -> Option<String> {
    if reply.status < 400 {
        return None;
    }
    envelope_problem(reply).or_else(|| {
        reply.json["error"]["errors"][0]["reason"]
            .as_str()
            .map(str::to_string)
    })
}

/// What is wrong with an error answer's envelope, if anything: its code must be the
/// status, its one error item `global` with a reason, and its message one a person can
/// act on (longer than 10 characters, the same in the item).
pub fn envelope_problem(reply: &Reply) -> Option<String> {
    let error = &reply.json["error"];
    let problems = [
        (error["code"] != reply.status).then_some("code differs from the status"),
        (error["errors"][0]["domain"] != "global").then_some("domain is not global"),
        (error["errors"][0]["reason"]
            .as_str()
            .is_none_or(str::is_empty))
        .then_some("no reason"),
        (error["message"].as_str().is_none_or(|m| m.len() <= 10)).then_some("no helpful message"),
        (error["errors"][0]["message"] != error["message"]).then_some("item message differs"),
    ];
    let problem = problems.into_iter().flatten().next()?;
    Some(format!("malformed envelope ({problem}): {}", reply.text))
}

/// What a case expects: success, or an error with this status and reason.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Want {
    Ok,
    Err(u16, &'static str),
}

/// Bad request with this reason.
pub const fn bad(reason: &'static str) -> Want {
    Want::Err(400, reason)
}

/// Compares an answer with a case's expectation; `Some(description)` when it differs.
pub fn mismatch(what: &str, reply: &Reply, want: Want) -> Option<String> {
    let got_ok = (200..300).contains(&reply.status);
    let ok = match want {
        Want::Ok => got_ok,
        Want::Err(status, reason) => {
            reply.status == status && reason_of(reply).as_deref() == Some(reason)
        }
    };
    (!ok).then(|| {
        format!(
            "{what}: wanted {want:?}, got {} {}",
            reply.status, reply.text
        )
    })
}

/// Asserts one answer: success, or this error status and reason in a well-formed envelope.
#[track_caller]
pub fn assert_reply(what: &str, reply: &Reply, want: Want) {
    if let Some(problem) = mismatch(what, reply, want) {
        panic!("{problem}");
    }
}

/// Panics with every failed case at once, so one run shows the whole picture.
pub fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Writes `request` verbatim on a new connection and reads until the gateway closes it
/// (send `Connection: close`). `None` when it closed without answering; an answer that
/// arrives before the gateway stops reading (an early `431`, say) still counts, as a
/// client sees it. Panics if the connection is still open after `PATIENCE`.
pub async fn raw_exchange(gw: &Gateway, request: &[u8]) -> Option<Reply> {
    let addr = gw.authority();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The gateway may answer and close before it has read everything: not an error here.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read_all)
        .await
        .expect("the gateway answers or closes in time");
    parse_response(&answer)
}

/// Parses one HTTP/1.1 response with a `Content-Length` (or none); `None` when empty.
pub fn parse_response(bytes: &[u8]) -> Option<Reply> {
    if bytes.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a complete HTTP response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_str(value.trim()),
            ) {
                headers.append(name, value);
            }
        }
    }
    Some(Reply::new(status, headers, body.to_string()))
}
