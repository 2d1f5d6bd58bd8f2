//! Malformed requests (docs/api.md §10 Errors): each one gets a 4xx in Google's envelope with
//! the right reason, never a 5xx, and the gateway keeps working afterwards.

use crate::common::input::*;
use crate::common::*;
use axum::http::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WATCH: &str = "/calendars/primary/events/watch";
const STOP: &str = "/channels/stop";
const PUBLISH: &str = "/v1/events";
/// Every endpoint that reads a JSON body.
const JSON_ENDPOINTS: [&str; 3] = [WATCH, STOP, PUBLISH];

/// One request and what it must get. Every probe goes out verbatim on its own
/// connection, so that nothing normalises its target or fixes its framing.
struct Probe {
    what: String,
    request: Request,
    want: Expect,
}

/// What a probe sends.
enum Request {
    /// A request line, `Host`, `Connection: close`, these headers, and the body framed
    /// as `Body` says.
    Http {
        method: Method,
        path: String,
        headers: Vec<(&'static str, String)>,
        body: Body,
    },
    /// These bytes and nothing else: for requests that no well-formed head can carry.
    Raw(Vec<u8>),
}

/// How a request body travels.
enum Body {
    /// With a `Content-Length` that tells the truth.
    Sized(Vec<u8>),
    /// `Transfer-Encoding: chunked`, these bytes verbatim after the head.
    Chunked(Vec<u8>),
    /// A `Content-Length` of `declared` but only `sent` bytes.
    CutShort { declared: usize, sent: Vec<u8> },
    /// This body, then the client closes its half of the connection.
    ThenClosed(Box<Body>),
}

/// What a probe must get, beyond what every answer must be (see `check`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// This success or this error.
    Exactly(Want),
    /// Any 4xx.
    Refused,
    /// A well-formed request: a 2xx or 3xx is right, and so is the 4xx its endpoint's
    /// own rules give (`/v1/changeset` without `resource`, a deleted watcher's id).
    Answered,
}

impl From<Want> for Expect {
    fn from(want: Want) -> Expect {
        Expect::Exactly(want)
    }
}

fn probe(
    what: impl Into<String>,
    method: Method,
    path: &str,
    body: impl Into<Vec<u8>>,
    want: impl Into<Expect>,
) -> Probe {
    http_probe(what, method, path, Body::Sized(body.into()), want)
}

fn http_probe(
    what: impl Into<String>,
    method: Method,
    path: &str,
    body: Body,
    want: impl Into<Expect>,
) -> Probe {
    Probe {
        what: what.into(),
        request: Request::Http {
            method,
            path: path.to_string(),
            headers: Vec::new(),
            body,
        },
        want: want.into(),
    }
}

impl Probe {
    fn with_header(mut self, name: &'static str, value: &str) -> Probe {
        if let Request::Http { headers, .. } = &mut self.request {
            headers.push((name, value.to_string()));
        }
        self
    }

    /// The whole, well-framed JSON object it sends, if it sends one.
    fn body_object(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match &self.request {
            Request::Http {
                body: Body::Sized(bytes),
                ..
            } => match serde_json::from_slice(bytes) {
                Ok(serde_json::Value::Object(fields)) => Some(fields),
                _ => None,
            },
            _ => None,
        }
    }

    fn is_head(&self) -> bool {
        matches!(&self.request, Request::Http { method, .. } if method == Method::HEAD)
    }

    /// How a failure names the probe: what it is, its method and (the start of) its target.
    fn name(&self) -> String {
        match &self.request {
            Request::Http { method, path, .. } => {
                let short: String = path.chars().take(100).collect();
                let cut = if short.len() < path.len() { "…" } else { "" };
                format!("{method} {short}{cut} ({})", self.what)
            }
            Request::Raw(_) => self.what.clone(),
        }
    }
}

impl Request {
    /// The bytes to send, and whether the client then closes its half of the connection.
    fn wire(&self) -> (Vec<u8>, bool) {
        let (method, path, headers, body) = match self {
            Request::Raw(bytes) => return (bytes.clone(), false),
            Request::Http {
                method,
                path,
                headers,
                body,
            } => (method, path, headers, body),
        };
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let (body, half_close) = match body {
            Body::ThenClosed(body) => (&**body, true),
            body => (body, false),
        };
        let (framing, bytes) = match body {
            Body::Sized(bytes) => (format!("Content-Length: {}", bytes.len()), bytes),
            Body::Chunked(bytes) => ("Transfer-Encoding: chunked".to_string(), bytes),
            Body::CutShort { declared, sent } => (format!("Content-Length: {declared}"), sent),
            Body::ThenClosed(_) => unreachable!("one close is enough"),
        };
        head.push_str(&format!("{framing}\r\n\r\n"));
        ([head.as_bytes(), bytes].concat(), half_close)
    }
}

/// Sends a request on a new connection and reads the answer until the gateway closes
/// the connection (or, for an event stream, which never ends, its head). `Err` says
/// what went wrong when there is no answer: a close without a word, or a hang.
async fn exchange(gw: &Gateway, request: &Request) -> Result<Reply, String> {
    let (bytes, half_close) = request.wire();
    let stream = TcpStream::connect(gw.authority()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The gateway may answer before it has read everything (a 413 on the declared
    // length): the answer is read while the request is still going out. The write half
    // is handed back rather than dropped, which would close it.
    let sending = tokio::spawn(async move {
        if writer.write_all(&bytes).await.is_ok() && half_close {
            let _ = writer.shutdown().await;
        }
        writer
    });
    let mut answer = Vec::new();
    let reading = async {
        let mut buf = vec![0u8; 64 * 1024];
        while !is_event_stream(&answer) {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    let finished = tokio::time::timeout(PATIENCE, reading).await.is_ok();
    sending.abort();
    match (finished, parse_response(&answer)) {
        (false, _) => Err(format!(
            "no end to the answer after {PATIENCE:?}: {:?}",
            String::from_utf8_lossy(&answer)
        )),
        (true, None) => Err("the connection closed without an answer".to_string()),
        (true, Some(reply)) => Ok(reply),
    }
}

/// Whether `answer` holds the whole head of an event stream.
fn is_event_stream(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer).to_ascii_lowercase();
    text.split_once("\r\n\r\n")
        .is_some_and(|(head, _)| head.contains("content-type: text/event-stream"))
}

/// What every answer must be, and then what this probe expects: never a 5xx or a
/// dropped connection; every 4xx Google's envelope (docs/api.md §14), as JSON, whose
/// code is the status, with a reason and a message a person can act on. `HEAD` answers
/// carry no body, so only their status is checked. `Some(why)` when the answer is wrong.
fn check(p: &Probe, answer: Result<Reply, String>) -> Option<String> {
    let reply = match answer {
        Ok(reply) => reply,
        Err(why) => return Some(format!("{}: {why}", p.name())),
    };
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let error = reply.status >= 400 && !p.is_head();
    let problem = if reply.status >= 500 {
        Some("a 5xx for a client's request".to_string())
    } else if error && !content_type.starts_with("application/json") {
        Some(format!("content type {content_type:?}, not JSON"))
    } else if error {
        envelope_problem(&reply)
    } else {
        None
    };
    let problem = problem.or(match p.want {
        Expect::Exactly(Want::Ok) if !(200..300).contains(&reply.status) => {
            Some("wanted a 2xx".into())
        }
        Expect::Exactly(Want::Err(status, reason))
            if reply.status != status
                || !(p.is_head() || reason_of(&reply).as_deref() == Some(reason)) =>
        {
            Some(format!("wanted {status} {reason}"))
        }
        Expect::Refused if !(400..500).contains(&reply.status) => Some("wanted a 4xx".into()),
        _ => None,
    });
    problem.map(|why| {
        let text: String = reply.text.chars().take(300).collect();
        format!("{}: {why}; got {} {text}", p.name(), reply.status)
    })
}

/// Sends every probe; reports every wrong answer at once, each naming its probe.
async fn run_probes(gw: &Gateway, probes: Vec<Probe>) {
    let mut failures = Vec::new();
    for p in probes {
        let answer = exchange(gw, &p.request).await;
        failures.extend(check(&p, answer));
    }
    assert_no_failures(failures);
}

/// Malformed JSON in every shape a broken client or a fuzzer produces.
fn broken_json() -> Vec<(&'static str, Vec<u8>)> {
    let deep =
        |open: &str, close: &str, n| format!("{}1{}", open.repeat(n), close.repeat(n)).into_bytes();
    vec![
        ("truncated", br#"{"id": "a", "type": "web_h"#.to_vec()),
        ("trailing garbage", br#"{"id": "a"} x"#.to_vec()),
        ("two objects", b"{}{}".to_vec()),
        (
            "invalid UTF-8",
            b"{\"id\": \"\xff\xfe\", \"resource\": \"/a\xc3\"}".to_vec(),
        ),
        ("a lone surrogate escape", br#"{"id": "\ud800"}"#.to_vec()),
        ("single quotes", b"{'id': 'a'}".to_vec()),
        ("a comment", b"{/* note */}".to_vec()),
        ("NaN", br#"{"expiration": NaN}"#.to_vec()),
        ("10000 unclosed [", b"[".repeat(10_000)),
        ("10000 nested arrays", deep("[", "]", 10_000)),
        ("10000 nested objects", deep("{\"a\":", "}", 10_000)),
        ("a bare word", b"hello".to_vec()),
    ]
}

#[tokio::test]
async fn malformed_json_is_a_parse_error() {
    let gw = Gateway::start().await;
    let mut probes = Vec::new();
    for path in JSON_ENDPOINTS {
        for (what, body) in broken_json() {
            probes.push(probe(what, Method::POST, path, body, bad("parseError")));
        }
        for (what, body) in [("an empty body", ""), ("a blank body", " \r\n\t")] {
            probes.push(probe(what, Method::POST, path, body, bad("parseError")));
        }
    }
    run_probes(&gw, probes).await;
}

#[tokio::test]
async fn json_of_the_wrong_type_is_invalid() {
    let gw = Gateway::start().await;
    let mut probes = Vec::new();
    for path in JSON_ENDPOINTS {
        for body in [json!("text"), json!(5), json!(null), json!(true)] {
            probes.push(probe(
                format!("top-level {body}"),
                Method::POST,
                path,
                body.to_string(),
                bad("invalid"),
            ));
        }
    }
    for body in [
        json!([]),
        json!([{"id": "a", "type": "web_hook", "address": "http://127.0.0.1:9/"}]),
    ] {
        probes.push(probe(
            format!("an array {body}"),
            Method::POST,
            WATCH,
            body.to_string(),
            bad("invalid"),
        ));
        probes.push(probe(
            format!("an array {body}"),
            Method::POST,
            STOP,
            body.to_string(),
            bad("invalid"),
        ));
    }
    run_probes(&gw, probes).await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods() {
    let gw = Gateway::start().await;
    let not_found = Want::Err(404, "notFound");
    let not_allowed = Want::Err(405, "httpMethodNotAllowed");
    #[rustfmt::skip]
    let probes = vec![
        probe("root", Method::GET, "/", "", not_found),
        probe("unknown", Method::GET, "/nope", "", not_found),
        probe("unknown", Method::POST, "/nope", "{}", not_found),
        probe("under /v1", Method::GET, "/v1/nope", "", not_found),
        probe("below publish", Method::POST, "/v1/events/x", "{}", not_found),
        probe("watch with a trailing slash", Method::POST, "/calendars/primary/events/watch/", "{}", not_found),
        probe("stop with a suffix", Method::POST, "/channels/stopped", "{}", not_found),
        probe("publish", Method::GET, PUBLISH, "", not_allowed),
        probe("publish", Method::PUT, PUBLISH, "{}", not_allowed),
        probe("publish", Method::DELETE, PUBLISH, "", not_allowed),
        probe("watch", Method::GET, "/x/watch", "", not_allowed),
        probe("watch", Method::PUT, WATCH, "{}", not_allowed),
        probe("stop", Method::PUT, STOP, "{}", not_allowed),
        probe("stop", Method::GET, "/admin/reports_v1/channels/stop", "", not_allowed),
        probe("healthz", Method::DELETE, "/healthz", "", not_allowed),
        probe("healthz", Method::POST, "/healthz", "{}", not_allowed),
        probe("metrics", Method::POST, "/metrics", "{}", not_allowed),
    ];
    run_probes(&gw, probes).await;

    // A 405 says what is allowed (RFC 9110 §15.5.6).
    for (method, path, allowed) in [
        (Method::GET, PUBLISH, "POST"),
        (Method::GET, WATCH, "POST"),
        (Method::PUT, STOP, "POST"),
        (Method::DELETE, "/healthz", "GET"),
    ] {
        let reply = gw.send(method.clone(), path, "").await;
        let allow = reply
            .headers
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(
            allow.split(',').any(|m| m.trim() == allowed),
            "{method} {path}: Allow {allow:?} should list {allowed}"
        );
    }
}

/// `len` bytes that start like a valid request body (so only the size is wrong).
fn padded_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"resource": "/big", "state": "exists"}"#.to_vec();
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn bodies_over_the_limit_are_too_large() {
    let too_large = Want::Err(413, "requestTooLarge");
    let gw = Gateway::start().await;
    let over = (1 << 20) + 1;
    let probes = JSON_ENDPOINTS.iter().flat_map(|path| {
        [
            probe(
                "1 MiB + 1 of JSON",
                Method::POST,
                path,
                padded_body(over),
                too_large,
            ),
            probe(
                "1 MiB + 1 of garbage",
                Method::POST,
                path,
                vec![b'['; over],
                too_large,
            ),
        ]
    });
    run_probes(&gw, probes.collect()).await;
    // Exactly 1 MiB is allowed.
    gw.post_raw(PUBLISH, padded_body(1 << 20)).await.expect(200);

    let small = Gateway::start_with(|a| a.max_body_bytes = 1000).await;
    let probes = JSON_ENDPOINTS.iter().map(|path| {
        probe(
            "1001 bytes",
            Method::POST,
            path,
            padded_body(1001),
            too_large,
        )
    });
    run_probes(&small, probes.collect()).await;
    // Exactly the limit is allowed.
    small.post_raw(PUBLISH, padded_body(1000)).await.expect(200);
    // Without a Content-Length the limit holds too.
    let chunk = String::from_utf8(padded_body(1500)).unwrap();
    let chunked = format!("POST {PUBLISH} HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len());
    let reply = raw_http(&small, chunked.as_bytes()).await;
    assert_reply(
        "a chunked body over the limit",
        &reply,
        Want::Err(413, "requestTooLarge"),
    );
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 bytes"),
        "the message states the limit: {}",
        reply.text
    );
}

#[tokio::test]
async fn stop_needs_both_fields_and_a_matching_channel() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let channel = gw
        .watch("/calendars/primary/events", "live", &rx.url())
        .await;
    let resource_id = channel["resourceId"].as_str().unwrap();
    let not_found = Want::Err(404, "notFound");
    #[rustfmt::skip]
    let cases = [
        ("no fields", json!({}), bad("required")),
        ("no id", json!({"resourceId": resource_id}), bad("required")),
        ("no resourceId", json!({"id": "live"}), bad("required")),
        ("null id", json!({"id": null, "resourceId": resource_id}), bad("required")),
        ("empty id", json!({"id": "", "resourceId": resource_id}), bad("invalid")),
        ("numeric id", json!({"id": 5, "resourceId": resource_id}), bad("invalid")),
        ("object resourceId", json!({"id": "live", "resourceId": {}}), bad("invalid")),
        ("unknown id", json!({"id": "ghost", "resourceId": resource_id}), not_found),
        ("wrong resourceId", json!({"id": "live", "resourceId": "not-the-resource-id"}), not_found),
        ("resourceId of another resource", json!({"id": "live", "resourceId": gw.watch("/other", "other", &rx.url()).await["resourceId"]}), not_found),
    ];
    run_probes(
        &gw,
        cases
            .into_iter()
            .map(|(what, body, want)| probe(what, Method::POST, STOP, body.to_string(), want))
            .collect(),
    )
    .await;
    assert_eq!(
        gw.stop("live", resource_id).await,
        204,
        "the failed stops left the channel alone"
    );
    let again = gw
        .post(STOP, &json!({"id": "live", "resourceId": resource_id}))
        .await;
    assert_reply(
        "a stopped channel is gone",
        &again,
        Want::Err(404, "notFound"),
    );
}

#[tokio::test]
async fn stopping_another_owners_channel_is_not_found() {
    let gw = Gateway::start_with(|a| a.api_keys = vec!["mine".into(), "theirs".into()]).await;
    let rx = Receiver::start().await;
    let mine = gw.key("mine");
    let created = mine
        .post(
            WATCH,
            &json!({"id": "private", "type": "web_hook", "address": rx.url()}),
        )
        .await
        .expect(200);
    let stop = json!({"id": "private", "resourceId": created.json["resourceId"]});
    let theirs = gw.key("theirs").post(STOP, &stop).await;
    assert_reply("another key's stop", &theirs, Want::Err(404, "notFound"));
    assert_eq!(
        mine.post(STOP, &stop).await.status,
        204,
        "the owner's channel survived the other key's stop"
    );
}

#[tokio::test]
async fn the_gateway_keeps_working_after_a_barrage() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/survivor", "survivor", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");

    let mut probes = Vec::new();
    for path in JSON_ENDPOINTS {
        for (what, body) in broken_json() {
            probes.push(probe(what, Method::POST, path, body, bad("parseError")));
        }
        for (what, body) in [
            ("NUL bytes", vec![0u8; 4096]),
            ("binary", b"\x00\x01{\"".to_vec()),
        ] {
            probes.push(probe(what, Method::POST, path, body, bad("parseError")));
        }
        let too_large = Want::Err(413, "requestTooLarge");
        probes.push(probe(
            "over 1 MiB",
            Method::POST,
            path,
            padded_body((1 << 20) + 10),
            too_large,
        ));
        probes.push(probe(
            "wrong method",
            Method::DELETE,
            path,
            "",
            Want::Err(405, "httpMethodNotAllowed"),
        ));
    }
    run_probes(&gw, probes).await;

    gw.get("/healthz").await.expect(200);
    gw.publish(json!({"resource": "/survivor/x", "state": "exists", "data": {"still": "here"}}))
        .await;
    let got = rx.next().await;
    assert_eq!(
        (got.state(), got.body_json()),
        ("exists", json!({"still": "here"}))
    );
}

// ---- the walk: every route × every method × malformed paths, queries and bodies --------
//
// docs/api.md §14: every 4xx and 5xx of every route is Google's envelope, including the
// answers of extractors and of the HTTP layer, and bad input is never a 5xx. The routes
// come from the router (`route_templates`), so a new route is walked without being
// listed here; their methods come from the `Allow` header of a `405`.

/// Every method is tried on every route; `FOO` stands for the methods no route knows.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FOO",
];

/// Google's open-ended paths (`google_style` in src/api/mod.rs), with `{id}` where a
/// resource or a service path goes.
const OPEN_TEMPLATES: [&str; 2] = ["/calendars/{id}/watch", "/{id}/channels/stop"];

/// POST routes that read no field of their body: any JSON object is accepted.
const OBJECT_BODY_POSTS: [&str; 1] = ["/v1/channels/{id}/enable"];

/// POST routes whose every field is optional: `{}` is accepted (renew reads
/// `expiration` and `ttl`, which `every field a number` holds, and refuses those).
const OPTIONAL_FIELD_POSTS: [&str; 1] = ["/v1/channels/{id}/renew"];

/// The body limit of the walked gateways (the default, `--max-body-bytes`).
const MAX_BODY: usize = 1 << 20;

/// A route as the walk sees it.
struct Route {
    template: &'static str,
    /// The template with a real id: a well-formed path.
    path: String,
    /// What the `Allow` header of a `405` lists, and `HEAD` wherever `GET` is.
    allowed: Vec<String>,
}

impl Route {
    fn allows(&self, method: &str) -> bool {
        self.allowed.iter().any(|m| m == method)
    }

    /// `/v1` endpoints read their query strictly; the others ignore what they do not know.
    fn strict_query(&self) -> bool {
        self.template.starts_with("/v1/")
    }

    /// What a well-formed request with `method` gets.
    fn baseline(&self, method: &str) -> Expect {
        if self.allows(method) {
            Expect::Answered
        } else {
            Want::Err(405, "httpMethodNotAllowed").into()
        }
    }
}

/// Every route of the router and the open paths, each with a well-formed path (`{id}`
/// replaced by the id `real_id` gives) and the methods it takes, read from the `Allow`
/// header of its answer to `FOO` (sent with `key`, if any).
async fn routes(gw: &Gateway, key: Option<&str>, real_id: impl Fn(&str) -> String) -> Vec<Route> {
    let mut routes = Vec::new();
    for template in watchwire::api::route_templates()
        .into_iter()
        .chain(OPEN_TEMPLATES)
    {
        let path = template.replace("{id}", &real_id(template));
        let unknown = Method::from_bytes(b"FOO").unwrap();
        let mut probe = probe(
            "its methods",
            unknown,
            &path,
            "",
            Want::Err(405, "httpMethodNotAllowed"),
        );
        if let Some(key) = key {
            probe = probe.with_header("authorization", &format!("Bearer {key}"));
        }
        let answer = exchange(gw, &probe.request).await;
        let allow = answer
            .as_ref()
            .ok()
            .and_then(|reply| reply.headers.get("allow"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{template}: a 405 with an Allow header, got {answer:?}"));
        let mut allowed: Vec<String> = allow.split(',').map(|m| m.trim().to_string()).collect();
        if allowed.iter().any(|m| m == "GET") && !allowed.iter().any(|m| m == "HEAD") {
            allowed.push("HEAD".into());
        }
        routes.push(Route {
            template,
            path,
            allowed,
        });
    }
    routes
}

/// Ids that cannot name anything, as they appear in a request target.
fn malformed_ids() -> Vec<(&'static str, String)> {
    vec![
        ("%ff, not UTF-8", "%ff".into()),
        ("a lone %", "%".into()),
        ("a bad escape", "%zz".into()),
        ("an escaped NUL", "%00".into()),
        ("an id of 10 000 bytes", "i".repeat(10_000)),
        ("a dot-dot segment", "..".into()),
    ]
}

/// A well-formed path, broken in the ways a sloppy client or a scanner breaks paths.
fn mangled_paths(path: &str) -> Vec<(&'static str, String)> {
    // The second slash doubled: `/v1//events`, `/healthz` unchanged (no second slash).
    let inner = path[1..]
        .find('/')
        .map(|i| format!("{}/{}", &path[..=i], &path[i + 1..]));
    let mut paths = vec![
        ("a trailing slash", format!("{path}/")),
        ("a leading double slash", format!("/{path}")),
        ("a dot-dot segment before it", format!("/x/..{path}")),
        ("a dot segment after it", format!("{path}/.")),
        ("%ff after it", format!("{path}%ff")),
    ];
    paths.extend(inner.map(|inner| ("a double slash inside", inner)));
    paths
}

/// Query strings a broken client sends, and whether a strict endpoint refuses them.
fn malformed_queries() -> Vec<(&'static str, String, bool)> {
    vec![
        ("a name that is not UTF-8", "?%ff=1".into(), true),
        ("a value that is not UTF-8", "?a=%ff".into(), true),
        ("an empty name", "?=".into(), true),
        // Only separators: there is no parameter to refuse.
        ("empty pairs", "?&&".into(), false),
        (
            "an unknown parameter",
            "?sinse=0000000000000000".into(),
            true,
        ),
        (
            "a repeated parameter",
            "?maxResults=5&maxResults=5".into(),
            true,
        ),
    ]
}

/// Broken bodies posted to `path`, and what a route that reads its body must answer.
fn malformed_bodies(path: &str) -> Vec<Probe> {
    let sized = |bytes: &[u8]| Body::Sized(bytes.to_vec());
    let chunked = |bytes: &[u8]| Body::Chunked(bytes.to_vec());
    let closed = |body: Body| Body::ThenClosed(Box::new(body));
    let post =
        |what: &str, body: Body, want: Expect| http_probe(what, Method::POST, path, body, want);
    let wrong_types = json!({"id": 5, "type": 5, "address": 5, "resourceId": 5, "resource": 5,
        "state": 5, "since": 5, "pattern": 5, "endpoint": 5, "expiration": 5, "ttl": 5});
    let mut over_limit = br#"{"resource": "/big", "state": "exists"}"#.to_vec();
    over_limit.resize(MAX_BODY + 1, b' ');
    let chunked_over_limit = [
        format!("{:x}\r\n", over_limit.len()).as_bytes(),
        &over_limit,
        b"\r\n0\r\n\r\n",
    ]
    .concat();
    let (parse, unreadable) = (bad("parseError").into(), bad("invalid").into());
    let too_large = Want::Err(413, "requestTooLarge").into();
    let cut_short = Body::CutShort {
        declared: 100,
        sent: br#"{"id": "#.to_vec(),
    };
    #[rustfmt::skip]
    let probes = vec![
        post("invalid UTF-8", sized(b"{\"id\": \"\xff\xfe\"}"), parse),
        post("truncated JSON", sized(br#"{"id": "a", "type": "web_h"#), parse),
        // Each route says what it wanted instead (`invalid` or `required`).
        post("an array", sized(b"[]"), Expect::Refused),
        post("a string", sized(br#""text""#), Expect::Refused),
        post("a number", sized(b"5"), Expect::Refused),
        post("null", sized(b"null"), Expect::Refused),
        post("every field a number", Body::Sized(wrong_types.to_string().into_bytes()), Expect::Refused),
        // The content type is not checked (docs/api.md §14): the refusal is about the
        // object, which lacks every required field.
        post("{} as text/plain", sized(b"{}"), bad("required").into()).with_header("content-type", "text/plain"),
        post("a Content-Length longer than the body, then closed", closed(cut_short), unreadable),
        post("a chunk size that is not hex", chunked(b"zz\r\n{}\r\n0\r\n\r\n"), unreadable),
        post("a chunk longer than its size", chunked(b"1\r\n{}\r\n0\r\n\r\n"), unreadable),
        post("a chunked body cut short, then closed", closed(chunked(b"10\r\n{}")), unreadable),
        post("1 MiB + 1", Body::Sized(over_limit), too_large),
        post("1 MiB + 1, chunked", Body::Chunked(chunked_over_limit), too_large),
    ];
    probes
}

/// Every probe of the walk on these routes.
fn walk(routes: &[Route]) -> Vec<Probe> {
    let mut probes = Vec::new();
    let method = |m: &str| Method::from_bytes(m.as_bytes()).unwrap();
    for route in routes {
        for m in METHODS {
            let baseline = route.baseline(m);
            probes.push(probe("well-formed", method(m), &route.path, "", baseline));
            if route.template.contains("{id}") {
                for (what, id) in malformed_ids() {
                    let path = route.template.replace("{id}", &id);
                    probes.push(probe(what, method(m), &path, "", Expect::Refused));
                }
            }
            for (what, path) in mangled_paths(&route.path) {
                probes.push(probe(what, method(m), &path, "", Expect::Refused));
            }
            for (what, query, strict) in malformed_queries() {
                // A strict endpoint reads its query before its body, so the refusal
                // names the parameter even when the (empty) body is wrong too.
                let want = match (strict && route.strict_query(), route.allows(m)) {
                    (true, true) => Want::Err(400, "invalidParameter").into(),
                    (true, false) => Expect::Refused,
                    (false, _) => baseline,
                };
                let path = format!("{}{query}", route.path);
                probes.push(probe(what, method(m), &path, "", want));
            }
            // Over --max-header-bytes (16 KiB): refused before anything is read.
            let huge = format!("{}?q={}", route.path, "q".repeat(20_000));
            let too_large = Want::Err(431, "headersTooLarge");
            probes.push(probe("a 20 KB query", method(m), &huge, "", too_large));
        }
        if route.allows("POST") {
            for mut p in malformed_bodies(&route.path) {
                // An object with wrong or missing fields is fine where no field is
                // read: enable takes an empty body or any object. An empty object is
                // fine where every field is optional.
                let object = p.body_object();
                let fine = if OBJECT_BODY_POSTS.contains(&route.template) {
                    object.is_some()
                } else {
                    OPTIONAL_FIELD_POSTS.contains(&route.template)
                        && object.is_some_and(|fields| fields.is_empty())
                };
                if fine {
                    p.want = Expect::Answered;
                }
                probes.push(p);
            }
        }
    }
    probes
}

#[tokio::test]
async fn every_route_answers_malformed_requests_with_the_envelope() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/walk", "walk", &rx.url()).await;
    let watcher = gw
        .post(
            "/v1/watchers",
            &json!({"pattern": "/walkers", "endpoint": rx.url()}),
        )
        .await
        .expect(201);
    let watcher_id = watcher.json["id"].as_str().unwrap().to_string();
    let routes = routes(&gw, None, |template| {
        if template.starts_with("/v1/watchers/") {
            watcher_id.clone()
        } else {
            "walk".into()
        }
    })
    .await;
    let probes = walk(&routes);
    assert!(
        probes.len() > 2000,
        "the walk holds {} probes",
        probes.len()
    );
    run_probes(&gw, probes).await;
    // The gateway is fine after the walk.
    gw.get("/healthz").await.expect(200);
}

#[tokio::test]
async fn without_a_key_every_call_but_healthz_the_api_document_and_the_console_is_unauthorized() {
    let gw = Gateway::keyed(|_| {}).await;
    let routes = routes(&gw, Some(keys::ROOT), |_| "walk".into()).await;
    let no_key = Want::Err(401, "required");
    let probes: Vec<Probe> = walk(&routes)
        .into_iter()
        .map(|mut p| {
            let Request::Http { path, .. } = &p.request else {
                unreachable!("the walk sends HTTP requests")
            };
            // The health check, the API document and the console's files (which hold
            // no data) need no key.
            let route = path.split('?').next().unwrap_or_default();
            let exempt = matches!(route, "/healthz" | "/v1/openapi.json" | "/console")
                || route.starts_with("/console/");
            // A head over the limit is refused before anything in it is read, the key
            // included.
            let oversized = p.want == Want::Err(431, "headersTooLarge").into();
            if !exempt && !oversized {
                p.want = no_key.into();
            }
            p
        })
        .collect();
    run_probes(&gw, probes).await;
}

// ---- requests hyper cannot frame --------------------------------------------------------

/// Requests the HTTP layer refuses before any route runs: hyper answers them itself,
/// and `src/api/listener.rs` puts the envelope in place of hyper's empty answer. Each is
/// answered and then the connection is closed (`exchange` reads until it is).
fn unframable_requests() -> Vec<Probe> {
    let get = |extra: &str| format!("GET /healthz HTTP/1.1\r\nHost: g\r\n{extra}\r\n");
    let post = |extra: &str| format!("POST /v1/events HTTP/1.1\r\nHost: g\r\n{extra}\r\n{{}}");
    let many = (0..600)
        .map(|i| format!("x-h{i}: v\r\n"))
        .collect::<String>();
    let raw = |what: &str, bytes: &[u8], want: Want| Probe {
        what: what.to_string(),
        request: Request::Raw(bytes.to_vec()),
        want: want.into(),
    };
    let invalid = bad("invalid");
    let too_large = Want::Err(431, "headersTooLarge");
    #[rustfmt::skip]
    let probes = vec![
        raw("a request line that is not HTTP", b"HELLO\r\n\r\n", invalid),
        raw("a TLS handshake", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", invalid),
        raw("an unsupported HTTP version", b"GET /healthz HTTP/3.7\r\nHost: g\r\n\r\n", invalid),
        raw("an invalid method token", b"G@T /healthz HTTP/1.1\r\nHost: g\r\n\r\n", invalid),
        raw("a space in the target", b"GET /a b HTTP/1.1\r\nHost: g\r\n\r\n", invalid),
        raw("a header line without a colon", get("broken\r\n").as_bytes(), invalid),
        raw("a space in a header name", get("bad header: x\r\n").as_bytes(), invalid),
        raw("a folded header", get("x-fold: a\r\n b\r\n").as_bytes(), invalid),
        raw("a NUL in a header value", get("x-nul: a\0b\r\n").as_bytes(), invalid),
        raw("two different Content-Lengths", post("Content-Length: 2\r\nContent-Length: 3\r\n").as_bytes(), invalid),
        raw("a negative Content-Length", post("Content-Length: -2\r\n").as_bytes(), invalid),
        raw("an unknown Transfer-Encoding", post("Transfer-Encoding: gzip\r\n").as_bytes(), invalid),
        raw("600 headers", get(&many).as_bytes(), too_large),
        raw("a head over hyper's 256 KiB buffer", get(&format!("x-big: {}\r\n", "b".repeat(300_000))).as_bytes(), too_large),
        // hyper's own answer would be 414; the request line counts towards the head's
        // limit (docs/api.md §10.4), as it does below hyper's caps.
        raw("a target over 64 KiB", format!("GET /healthz?{} HTTP/1.1\r\nHost: g\r\n\r\n", "q".repeat(70_000)).as_bytes(), too_large),
    ];
    probes
}

#[tokio::test]
async fn requests_hyper_cannot_frame_get_the_envelope_too() {
    let gw = Gateway::start().await;
    run_probes(&gw, unframable_requests()).await;
    // Behind a request already answered on the same connection, too.
    let pipelined = b"GET /healthz HTTP/1.1\r\nHost: g\r\n\r\nG@T /healthz HTTP/1.1\r\n\r\n";
    let answer = raw_exchange(&gw, pipelined).await.expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    let second = answer.text.split_once("}").map_or("", |(_, rest)| rest);
    let second = parse_response(second.as_bytes()).expect("a second answer");
    assert_eq!(reason_of(&second).as_deref(), Some("invalid"), "{second:?}");
    // hyper keeps serving: the gateway is fine.
    gw.get("/healthz").await.expect(200);
}

/// An `owner` with a control character names nobody: `400`, on every store (PostgreSQL
/// cannot even compare a NUL), never a `503`.
#[tokio::test]
async fn an_owner_with_a_control_character_is_refused() {
    let gw = Gateway::keyed(|_| {}).await;
    let admin = gw.key(keys::ROOT);
    for path in [
        "/v1/channels/c?owner=a%00b",
        "/v1/channels?owner=%01",
        "/v1/watchers?owner=x%0A",
    ] {
        admin.get(path).await.assert_error(400, "invalidParameter");
    }
    admin
        .post("/v1/channels/c/renew?owner=%00", &serde_json::json!({}))
        .await
        .assert_error(400, "invalidParameter");
}
