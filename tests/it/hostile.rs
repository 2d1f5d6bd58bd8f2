//! The hostile-input suite (docs/api.md §10): hundreds of malformed or malicious
//! requests over real sockets against a gateway with API keys (not `--dev`). Each gets
//! the right 4xx in Google's envelope (HTTP framing that hyper refuses itself too),
//! `/healthz` stays 200 throughout, stalled connections block
//! nobody, and a channel created before the barrage receives every event published
//! after it, in order, verified by the receiver library, and nothing else.
//!
//! Keys (`common::keys`): `app` may subscribe under /victim, `backend` may publish under
//! /victim, `intruder` may do both under /intruder only, `ops` is configured by its
//! SHA-256. The allow-list holds 127.0.0.1/32 alone, so the test's receiver is reachable
//! and every other private or reserved address must be refused.

use std::time::Duration;

use crate::common::input::*;
use crate::common::keys::*;
use crate::common::*;
use axum::http::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use watchwire::receiver::{Channel, Tracker};

const VICTIM_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VICTIM_TOKEN: &str = "victim-token";
const MAX_BODY: usize = 64 * 1024;
const MAX_BATCH: usize = 10;
/// Stalled connections are cut off after this (head and whole request alike).
const CLIENT_TIMEOUT: Duration = Duration::from_millis(800);

/// What a probe must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This status and reason in a well-formed Google envelope.
    Api(u16, &'static str),
    /// A `405` for `HEAD`, which has no body to carry an envelope.
    Head405,
}

enum Request {
    Http {
        method: Method,
        path: String,
        headers: Headers,
        body: Vec<u8>,
    },
    /// Bytes written verbatim on a fresh connection.
    Raw(Vec<u8>),
}

struct Probe {
    what: String,
    request: Request,
    expect: Expect,
}

/// Request headers, as name and value.
type Headers = Vec<(String, String)>;

fn bearer(key: &str) -> Headers {
    vec![("authorization".into(), format!("Bearer {key}"))]
}

fn http(
    what: impl Into<String>,
    method: Method,
    path: &str,
    headers: Headers,
    body: impl Into<Vec<u8>>,
    expect: Expect,
) -> Probe {
    Probe {
        what: what.into(),
        request: Request::Http {
            method,
            path: path.into(),
            headers,
            body: body.into(),
        },
        expect,
    }
}

fn raw(what: impl Into<String>, bytes: impl Into<Vec<u8>>, expect: Expect) -> Probe {
    Probe {
        what: what.into(),
        request: Request::Raw(bytes.into()),
        expect,
    }
}

/// A raw request with an API key, a body and its length, closing the connection after.
fn raw_request(method: &str, target: &str, key: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const fn api(status: u16, reason: &'static str) -> Expect {
    Expect::Api(status, reason)
}
const INVALID: Expect = api(400, "invalid");
const REQUIRED: Expect = api(400, "required");
const PARSE: Expect = api(400, "parseError");
const BAD_TARGET: Expect = api(400, "pushWebhookBadDomain");
const NO_KEY: Expect = api(401, "required");
const BAD_KEY: Expect = api(401, "authError");
const FORBIDDEN: Expect = api(403, "forbidden");
const NOT_FOUND: Expect = api(404, "notFound");
const NOT_ALLOWED: Expect = api(405, "httpMethodNotAllowed");
const TOO_LARGE: Expect = api(413, "requestTooLarge");
const HEADERS_TOO_LARGE: Expect = api(431, "headersTooLarge");

/// Sends one probe; `Some(description)` when the answer is not the expected one.
async fn run_probe(gw: &Gateway, probe: Probe) -> Option<String> {
    let reply = match probe.request {
        Request::Http {
            method,
            path,
            headers,
            body,
        } => {
            let api = headers
                .iter()
                .fold(gw.api.clone(), |api, (name, value)| api.header(name, value));
            Some(api.send(method, &path, body).await)
        }
        Request::Raw(bytes) => raw_exchange(gw, &bytes).await,
    };
    let Some(reply) = reply else {
        return Some(format!(
            "{}: the connection closed without an answer",
            probe.what
        ));
    };
    let ok = match probe.expect {
        Expect::Api(status, reason) => {
            mismatch(&probe.what, &reply, Want::Err(status, reason)).is_none()
        }
        Expect::Head405 => reply.status == 405 && reply.text.is_empty(),
    };
    (!ok).then(|| {
        format!(
            "{}: wanted {:?}, got {} {}",
            probe.what,
            probe.expect,
            reply.status,
            reply.text.chars().take(300).collect::<String>()
        )
    })
}

// ---- the probes, by kind ---------------------------------------------------------------

/// Missing, empty and forged keys, and keys where the gateway does not look.
fn key_probes() -> Vec<Probe> {
    let watch =
        json!({"id": "k", "type": "web_hook", "address": "https://example.com/h"}).to_string();
    let event = json!({"resource": "/victim/x", "state": "exists"}).to_string();
    let stop = json!({"id": "victim", "resourceId": "x"}).to_string();
    let h = |pairs: &[(&str, &str)]| -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut probes = Vec::new();
    for (path, body) in [
        ("/victim/watch", &watch),
        ("/v1/events", &event),
        ("/channels/stop", &stop),
    ] {
        #[rustfmt::skip]
        let cases: Vec<(&str, String, Headers, Expect)> = vec![
            ("no key", path.into(), vec![], NO_KEY),
            ("an empty Bearer", path.into(), h(&[("authorization", "Bearer ")]), NO_KEY),
            ("Bearer without a key", path.into(), h(&[("authorization", "Bearer")]), NO_KEY),
            ("an empty ?key=", format!("{path}?key="), vec![], BAD_KEY),
            ("a wrong key", path.into(), bearer("not-a-key"), BAD_KEY),
            ("the key in upper case", path.into(), bearer(&APP.to_uppercase()), BAD_KEY),
            ("a prefix of the key", path.into(), bearer(&APP[..APP.len() - 1]), BAD_KEY),
            ("the key plus a byte", path.into(), bearer(&format!("{APP}x")), BAD_KEY),
            ("the key with a NUL", format!("{path}?key={APP}%00"), vec![], BAD_KEY),
            ("the key as Basic credentials", path.into(), h(&[("authorization", "Basic YXBwLWtleTo=")]), NO_KEY),
            ("the key under another scheme", path.into(), h(&[("authorization", &format!("Token {APP}"))]), NO_KEY),
            ("the key in X-Api-Key", path.into(), h(&[("x-api-key", APP)]), NO_KEY),
            ("the key in a cookie", path.into(), h(&[("cookie", &format!("key={APP}"))]), NO_KEY),
            ("a forged key before the real one", format!("{path}?key=forged&key={APP}"), vec![], BAD_KEY),
            ("a configured key's SHA-256 as the key", path.into(), bearer(&ops_digest()), BAD_KEY),
            ("a 10 KB key", path.into(), bearer(&"k".repeat(10_000)), BAD_KEY),
        ];
        for (what, target, headers, expect) in cases {
            probes.push(http(
                format!("POST {path} with {what}"),
                Method::POST,
                &target,
                headers,
                body.as_bytes(),
                expect,
            ));
        }
    }
    probes.push(http(
        "a key in the JSON body",
        Method::POST,
        "/v1/events",
        vec![],
        json!({"key": BACKEND, "resource": "/victim/x", "state": "exists"}).to_string(),
        NO_KEY,
    ));
    probes.push(http(
        "a key as a path segment",
        Method::POST,
        &format!("/{APP}/watch"),
        vec![],
        watch.clone(),
        NO_KEY,
    ));
    probes.push(raw(
        "two Authorization headers, a forged one first",
        format!("POST /v1/events HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer forged\r\nAuthorization: Bearer {BACKEND}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{event}", event.len()),
        BAD_KEY,
    ));
    probes.push(raw(
        "a Bearer value with a non-ASCII letter",
        format!("POST /v1/events HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer \u{e9}{BACKEND}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{event}", event.len()),
        NO_KEY,
    ));
    for (method, path) in [
        (Method::GET, "/metrics"),
        (Method::GET, "/v1/channels"),
        (Method::GET, "/v1/watchers"),
        (Method::GET, "/v1/changes"),
        (Method::GET, "/v1/changeset?resource=/victim&_expected=1"),
        (Method::GET, "/v1/watch?resource=/victim"),
        (Method::GET, "/v1/channels/victim"),
        (Method::POST, "/v1/channels/victim/replay"),
        (Method::POST, "/v1/channels/victim/enable"),
        (Method::DELETE, "/v1/watchers/anything"),
    ] {
        probes.push(http(
            format!("{method} {path} without a key"),
            method,
            path,
            vec![],
            "",
            NO_KEY,
        ));
    }
    probes
}

/// Keys used beyond their scopes, prefixes and ownership.
fn access_probes(victim_resource_id: &str) -> Vec<Probe> {
    let watch = |id: &str| {
        json!({"id": id, "type": "web_hook", "address": "https://example.com/h"}).to_string()
    };
    let event = |resource: &str| json!({"resource": resource, "state": "exists"}).to_string();
    let stop_victim = json!({"id": "victim", "resourceId": victim_resource_id}).to_string();
    #[rustfmt::skip]
    let probes = vec![
        http("the publisher subscribing", Method::POST, "/victim/watch", bearer(BACKEND), watch("p"), FORBIDDEN),
        http("the subscriber publishing", Method::POST, "/v1/events", bearer(APP), event("/victim/x"), FORBIDDEN),
        http("the intruder watching the victim", Method::POST, "/victim/watch", bearer(INTRUDER), watch("i"), FORBIDDEN),
        http("the intruder watching a string-prefix sibling", Method::POST, "/intruderX/watch", bearer(INTRUDER), watch("i"), FORBIDDEN),
        http("the intruder watching the victim through a service prefix", Method::POST, "/storage/v1/victim/watch", bearer(INTRUDER), watch("i"), FORBIDDEN),
        http("the intruder watching the victim with an encoded name", Method::POST, "/%76ictim/watch", bearer(INTRUDER), watch("i"), FORBIDDEN),
        http("the intruder publishing on the victim", Method::POST, "/v1/events", bearer(INTRUDER), event("/victim/x"), FORBIDDEN),
        http("the intruder publishing through a service prefix", Method::POST, "/v1/events", bearer(INTRUDER), event("/calendar/v3/victim"), FORBIDDEN),
        http("the intruder publishing with an encoded name", Method::POST, "/v1/events", bearer(INTRUDER), event("/%76ictim"), FORBIDDEN),
        http("the intruder publishing by traversal", Method::POST, "/v1/events", bearer(INTRUDER), event("/intruder/../victim"), INVALID),
        http("the intruder publishing by encoded traversal", Method::POST, "/v1/events", bearer(INTRUDER), event("/intruder/%2e%2E/victim"), INVALID),
        http("the intruder smuggling a victim event into its batch", Method::POST, "/v1/events", bearer(INTRUDER),
            json!([{"resource": "/intruder/a", "state": "exists"}, {"resource": "/victim/x", "state": "exists"}]).to_string(), FORBIDDEN),
        http("the intruder stopping the victim", Method::POST, "/channels/stop", bearer(INTRUDER), stop_victim.clone(), NOT_FOUND),
        http("the intruder stopping the victim on a Google path", Method::POST, "/admin/reports_v1/channels/stop", bearer(INTRUDER), stop_victim.clone(), NOT_FOUND),
        http("the publisher stopping the victim", Method::POST, "/channels/stop", bearer(BACKEND), stop_victim, FORBIDDEN),
        http("the owner stopping with a wrong resourceId", Method::POST, "/channels/stop", bearer(APP), json!({"id": "victim", "resourceId": "guess"}).to_string(), NOT_FOUND),
        http("the owner re-creating the victim to redirect it", Method::POST, "/victim/watch", bearer(APP), watch("victim"), api(400, "channelIdNotUnique")),
        http("the intruder reading the victim's channel", Method::GET, "/v1/channels/victim", bearer(INTRUDER), "", NOT_FOUND),
        http("the intruder reading the victim's delivery log", Method::GET, "/v1/channels/victim/notifications", bearer(INTRUDER), "", NOT_FOUND),
        http("the intruder replaying the victim", Method::POST, "/v1/channels/victim/replay", bearer(INTRUDER), json!({"since": "0000000000000000"}).to_string(), NOT_FOUND),
        http("the intruder enabling the victim", Method::POST, "/v1/channels/victim/enable", bearer(INTRUDER), "", NOT_FOUND),
        http("the intruder polling the victim's changes", Method::GET, "/v1/changeset?resource=/victim&_expected=1", bearer(INTRUDER), "", FORBIDDEN),
        http("the intruder streaming the victim", Method::GET, "/v1/watch?resource=/victim", bearer(INTRUDER), "", FORBIDDEN),
        http("the intruder registering a watcher on the victim", Method::POST, "/v1/watchers", bearer(INTRUDER),
            json!({"pattern": "/victim", "endpoint": "https://example.com/h"}).to_string(), FORBIDDEN),
        http("the intruder deleting a watcher it does not own", Method::DELETE, "/v1/watchers/victim", bearer(INTRUDER), "", NOT_FOUND),
        http("the intruder reading metrics", Method::GET, "/metrics", bearer(INTRUDER), "", FORBIDDEN),
    ];
    probes
}

/// Channel addresses that must never be accepted: every private or reserved range,
/// in every spelling a URL parser takes, and other schemes.
fn ssrf_probes() -> Vec<Probe> {
    #[rustfmt::skip]
    let addresses = [
        // loopback (127.0.0.1 itself is on this gateway's allow-list)
        "https://127.0.0.2/", "https://127.255.255.254/", "https://[::1]/", "https://localhost@127.0.0.2/",
        // IPv4 spellings of 127.0.0.2 and 169.254.169.254
        "https://2130706434/", "https://0x7f000002/", "https://0177.0.0.02/", "https://127.2/",
        "https://0x7f.0.0.2/", "https://2852039166/", "https://0xa9fea9fe/", "https://169.254.169.254./",
        // unspecified, private, shared, link-local, reserved
        "https://0.0.0.0/", "https://0/", "https://10.0.0.1/", "https://10.1/", "https://172.16.0.1/",
        "https://172.31.255.255/", "https://192.168.0.1/", "https://100.64.0.1/", "https://169.254.169.254/latest/meta-data/",
        "https://192.0.0.1/", "https://192.0.2.1/", "https://198.18.0.1/", "https://198.51.100.1/",
        "https://203.0.113.1/", "https://224.0.0.1/", "https://239.255.255.250/", "https://240.0.0.1/",
        "https://255.255.255.255/",
        // IPv6: unspecified, link-local, unique local, multicast, documentation, and
        // IPv4 embedded (mapped, compatible, NAT64)
        "https://[::]/", "https://[fe80::1]/", "https://[fc00::1]/", "https://[fd12:3456::1]/",
        "https://[ff02::1]/", "https://[2001:db8::1]/", "https://[::ffff:127.0.0.2]/",
        "https://[::ffff:7f00:2]/", "https://[::ffff:10.0.0.1]/", "https://[::ffff:a9fe:a9fe]/",
        "https://[::127.0.0.2]/", "https://[64:ff9b::a00:1]/", "https://[fec0::1]/",
        "https://[2002:7f00:2::1]/", "https://[2002:a00:1::1]/", "https://[100::1]/",
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        // credentials smuggle another host in, or just ride along
        "https://example.com@127.0.0.2/", "https://user:pass@example.com/", "https://example.com:443@10.0.0.1/",
        // plain http:// outside the allow-list, and other schemes
        "http://169.254.169.254/", "http://8.8.8.8/hook", "ftp://example.com/", "file:///etc/passwd",
        "gopher://127.0.0.2:25/", "javascript:alert(1)", "data:text/plain,hi",
    ];
    addresses
        .iter()
        .enumerate()
        .map(|(i, address)| {
            http(
                format!("a channel to {address}"),
                Method::POST,
                "/victim/watch",
                bearer(APP),
                json!({"id": format!("ssrf-{i}"), "type": "web_hook", "address": address})
                    .to_string(),
                BAD_TARGET,
            )
        })
        .collect()
}

/// Watch bodies of the wrong types, sizes, encodings and nesting.
fn watch_body_probes() -> Vec<Probe> {
    let base = || json!({"id": "w", "type": "web_hook", "address": "https://example.com/hook"});
    let with = |field: &str, value: Value| {
        let mut body = base();
        body[field] = value;
        body.to_string().into_bytes()
    };
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("id as a number", with("id", json!(7)), INVALID),
        ("id of 65 characters", with("id", json!("i".repeat(65))), INVALID),
        ("id with a path", with("id", json!("../victim")), INVALID),
        ("id with CRLF", with("id", json!("a\r\nX-Injected: 1")), INVALID),
        ("type as an array", with("type", json!(["web_hook"])), INVALID),
        ("address as an object", with("address", json!({"url": "https://example.com"})), INVALID),
        ("address of 10 000 bytes", with("address", json!(format!("https://example.com/{}", "a".repeat(10_000)))), INVALID),
        ("token with CRLF", with("token", json!("t\r\nX-Injected: 1")), INVALID),
        ("token of 300 characters", with("token", json!("t".repeat(300)))   , INVALID),
        ("token with a trailing space", with("token", json!("t ")), INVALID),
        ("expiration in the past", with("expiration", json!("1")), INVALID),
        ("expiration 1e400", br#"{"id":"w","type":"web_hook","address":"https://example.com/hook","expiration":1e400}"#.to_vec(), PARSE),
        ("params nested", with("params", json!({"ttl": {"seconds": 60}})), INVALID),
        ("params.ttl 0", with("params", json!({"ttl": "0"})), INVALID),
        ("a short signing secret", with("params", json!({"signingSecret": "whsec_c2hvcnQ="})), INVALID),
        ("payload as a string", with("payload", json!("false")), INVALID),
        ("the body nested 5000 deep", deep.into_bytes(), PARSE),
        ("an array of 500 channels", format!("[{}]", vec![base().to_string(); 500].join(",")).into_bytes(), INVALID),
        ("invalid UTF-8", b"{\"id\": \"w\xff\", \"type\": \"web_hook\"}".to_vec(), PARSE),
        ("overlong UTF-8 for '/'", b"{\"id\": \"a\xc0\xafb\"}".to_vec(), PARSE),
        ("UTF-16", "{\"id\":\"w\"}".encode_utf16().flat_map(|u| u.to_le_bytes()).collect(), PARSE),
        ("a byte-order mark", [b"\xef\xbb\xbf".as_slice(), base().to_string().as_bytes()].concat(), PARSE),
        ("form encoding", b"id=w&type=web_hook&address=https%3A%2F%2Fexample.com".to_vec(), PARSE),
        ("duplicate address keys, a private one last", br#"{"id":"w","type":"web_hook","address":"https://example.com/","address":"https://10.0.0.1/"}"#.to_vec(), BAD_TARGET),
        ("a lone surrogate", br#"{"id":"w","type":"web_hook","address":"https://example.com/","token":"\ud800"}"#.to_vec(), PARSE),
        ("a body over the limit", [base().to_string().as_bytes(), vec![b' '; MAX_BODY].as_slice()].concat(), TOO_LARGE),
    ];
    cases
        .into_iter()
        .map(|(what, body, expect)| {
            http(
                format!("watch: {what}"),
                Method::POST,
                "/victim/watch",
                bearer(APP),
                body,
                expect,
            )
        })
        .collect()
}

/// Publish bodies of the wrong types, sizes, encodings and nesting.
fn publish_probes() -> Vec<Probe> {
    let event = |resource: &str, state: &str| json!({"resource": resource, "state": state});
    let with = |field: &str, value: Value| {
        let mut body = event("/victim/x", "exists");
        body[field] = value;
        body.to_string().into_bytes()
    };
    let nested_data = format!(
        r#"{{"resource":"/victim/x","state":"exists","data":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let batch = |n: usize| {
        json!(vec![event("/victim/x", "exists"); n])
            .to_string()
            .into_bytes()
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, Headers, Expect)> = vec![
        ("state sync", with("state", json!("sync")), vec![], INVALID),
        ("state with markup", with("state", json!("<script>")), vec![], INVALID),
        ("state of 65 capitals", with("state", json!("A".repeat(65))), vec![], INVALID),
        ("state as a number", with("state", json!(1)), vec![], INVALID),
        ("a relative resource", with("resource", json!("../../etc/passwd")), vec![], INVALID),
        ("a resource with a NUL traversal", with("resource", json!("/victim/%00/../../x")), vec![], INVALID),
        ("a reserved resource", with("resource", json!("/v1/events")), vec![], INVALID),
        ("the whole namespace", with("resource", json!("/")), vec![], INVALID),
        ("a service prefix alone", with("resource", json!("/storage/v1")), vec![], INVALID),
        ("a resource of 1025 bytes", with("resource", json!(format!("/victim/{}", "r".repeat(1018)))), vec![], INVALID),
        ("a resource as an array", with("resource", json!(["/victim"])), vec![], INVALID),
        ("no resource", json!({"state": "exists"}).to_string().into_bytes(), vec![], REQUIRED),
        ("changed with CRLF", with("changed", json!(["a\r\nX-Injected: 1"])), vec![], INVALID),
        ("changed as a string", with("changed", json!("content")), vec![], INVALID),
        ("metadata as an array", with("metadata", json!([1])), vec![], INVALID),
        ("metadata over 4 KiB", with("metadata", json!({"x": "m".repeat(5000)})), vec![], INVALID),
        ("data nested 200 deep", nested_data.into_bytes(), vec![], PARSE),
        ("an empty batch", b"[]".to_vec(), vec![], INVALID),
        ("a batch over the limit", batch(MAX_BATCH + 1), vec![], INVALID),
        ("a batch of numbers", b"[1, 2]".to_vec(), vec![], INVALID),
        ("invalid UTF-8", b"{\"resource\": \"/victim/\xff\", \"state\": \"exists\"}".to_vec(), vec![], PARSE),
        ("NaN", br#"{"resource": "/victim/x", "state": "exists", "data": NaN}"#.to_vec(), vec![], PARSE),
        ("NUL bytes", vec![0u8; 1024], vec![], PARSE),
        ("a body over the limit", [batch(1).as_slice(), vec![b' '; MAX_BODY].as_slice()].concat(), vec![], TOO_LARGE),
        ("an Idempotency-Key of 256 characters", batch(1), vec![("idempotency-key".into(), "i".repeat(256))], INVALID),
        ("a non-ASCII Idempotency-Key", batch(1), vec![("idempotency-key".into(), "clé".into())], INVALID),
    ];
    cases
        .into_iter()
        .map(|(what, body, extra, expect)| {
            let mut headers = bearer(BACKEND);
            headers.extend(extra);
            http(
                format!("publish: {what}"),
                Method::POST,
                "/v1/events",
                headers,
                body,
                expect,
            )
        })
        .collect()
}

/// Request targets with encoding tricks and traversal, sent verbatim.
fn path_probes() -> Vec<Probe> {
    let body =
        json!({"id": "p", "type": "web_hook", "address": "https://example.com/h"}).to_string();
    let watch = |target: &str| raw_request("POST", target, APP, &body);
    #[rustfmt::skip]
    let mut probes = vec![
        raw("dot-dot", watch("/victim/../watch"), INVALID),
        raw("dot", watch("/victim/./x/watch"), INVALID),
        raw("encoded dot-dot", watch("/victim/%2e%2e/watch"), INVALID),
        raw("encoded dot-dot in mixed case", watch("/victim/%2E%2e/watch"), INVALID),
        raw("encoded dot", watch("/victim/%2E/watch"), INVALID),
        raw("an empty segment", watch("/victim//x/watch"), INVALID),
        raw("a bad escape", watch("/victim/%zz/watch"), INVALID),
        raw("a truncated escape", watch("/victim/%4/watch"), INVALID),
        raw("a lone percent", watch("/victim/%/watch"), INVALID),
        raw("an encoded reserved path", watch("/%76%31/events/watch"), INVALID),
        raw("the health endpoint as a resource", watch("/healthz/watch"), INVALID),
        raw("the metrics endpoint as a resource", watch("/metrics/x/watch"), INVALID),
        raw("two service prefixes", watch("/calendar/v3/calendar/v3/victim/watch"), INVALID),
        raw("a resource of 1100 bytes", watch(&format!("/victim/{}/watch", "r".repeat(1100))), INVALID),
        raw("a target of 20 KB", watch(&format!("/victim/{}/watch", "r".repeat(20_000))), HEADERS_TOO_LARGE),
        raw("a query of 20 KB", watch(&format!("/victim/watch?x={}", "q".repeat(20_000))), HEADERS_TOO_LARGE),
        raw("a backslash traversal in the target", watch("/victim\\..\\watch"), NOT_FOUND),
        raw("a space in the target", watch("/victim /watch"), INVALID),
        raw("the asterisk target", raw_request("OPTIONS", "*", APP, ""), NOT_FOUND),
        raw("publish under an encoded route", raw_request("POST", "/v1/%65vents", BACKEND, &json!({"resource": "/victim/x", "state": "exists"}).to_string()), NOT_FOUND),
        raw("publish with a trailing slash", raw_request("POST", "/v1/events/", BACKEND, &json!({"resource": "/victim/x", "state": "exists"}).to_string()), NOT_FOUND),
        raw("stop with a traversal", raw_request("POST", "/x/../channels/stop", APP, &json!({"id": "victim", "resourceId": "x"}).to_string()), NOT_FOUND),
    ];
    probes.push(raw(
        "the victim's id encoded in the channel path",
        raw_request("GET", "/v1/channels/%76ictim", INTRUDER, ""),
        NOT_FOUND,
    ));
    probes
}

/// Every method but the allowed ones on every route.
fn method_probes() -> Vec<Probe> {
    let routes: [(&str, &[&str]); 15] = [
        ("/healthz", &["GET"]),
        ("/metrics", &["GET"]),
        ("/v1/events", &["POST"]),
        ("/v1/watch", &["GET"]),
        ("/v1/changes", &["GET"]),
        ("/v1/changeset", &["GET"]),
        ("/v1/channels", &["GET"]),
        ("/v1/channels/victim", &["GET"]),
        ("/v1/channels/victim/notifications", &["GET"]),
        ("/v1/channels/victim/replay", &["POST"]),
        ("/v1/channels/victim/enable", &["POST"]),
        ("/v1/watchers", &["GET", "POST"]),
        ("/v1/watchers/w", &["DELETE"]),
        ("/victim/watch", &["POST"]),
        ("/channels/stop", &["POST"]),
    ];
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND",
    ];
    let mut probes = Vec::new();
    for (path, allowed) in routes {
        for method in methods.iter().filter(|m| !allowed.contains(m)) {
            probes.push(http(
                format!("{method} {path}"),
                Method::from_bytes(method.as_bytes()).unwrap(),
                path,
                bearer(APP),
                "",
                NOT_ALLOWED,
            ));
        }
        if !allowed.contains(&"GET") {
            probes.push(http(
                format!("HEAD {path}"),
                Method::HEAD,
                path,
                bearer(APP),
                "",
                Expect::Head405,
            ));
        }
    }
    probes
}

/// Header floods and framing the HTTP layer must refuse.
fn header_probes() -> Vec<Probe> {
    let event = json!({"resource": "/victim/x", "state": "exists"}).to_string();
    let head = |extra: &str| {
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {BACKEND}\r\n{extra}Connection: close\r\n\r\n"
        )
    };
    let many = |n: usize| (0..n).map(|i| format!("x-h{i}: v\r\n")).collect::<String>();
    let sized = |extra: &str| {
        format!(
            "{}{event}",
            head(&format!("Content-Length: {}\r\n{extra}", event.len()))
        )
    };
    #[rustfmt::skip]
    let probes = vec![
        raw("150 headers", sized(&many(150)), HEADERS_TOO_LARGE),
        raw("one header of 20 KB", sized(&format!("x-big: {}\r\n", "b".repeat(20_000))), HEADERS_TOO_LARGE),
        raw("2000 small headers", sized(&many(2000)), HEADERS_TOO_LARGE),
        raw("one header of 300 KB", sized(&format!("x-big: {}\r\n", "b".repeat(300_000))), HEADERS_TOO_LARGE),
        raw("a folded header", sized("x-fold: a\r\n b\r\n"), INVALID),
        raw("a space in a header name", sized("bad header: x\r\n"), INVALID),
        raw("a NUL in a header value", sized("x-nul: a\0b\r\n"), INVALID),
        raw("two different Content-Lengths", format!("{}{event}", head(&format!("Content-Length: {}\r\nContent-Length: 1\r\n", event.len()))), INVALID),
        raw("a negative Content-Length", format!("{}{event}", head("Content-Length: -1\r\n")), INVALID),
        raw("an unknown Transfer-Encoding", format!("{}{event}", head("Transfer-Encoding: gzip\r\n")), INVALID),
        raw("malformed chunks", format!("{}zz\r\n{event}\r\n0\r\n\r\n", head("Transfer-Encoding: chunked\r\n")), INVALID),
        raw("a chunked body over the limit", format!("{}{:x}\r\n{}\r\n0\r\n\r\n", head("Transfer-Encoding: chunked\r\n"), MAX_BODY + 1, " ".repeat(MAX_BODY + 1)), TOO_LARGE),
        raw("HTTP/1.0 with a huge Content-Length", format!("POST /v1/events HTTP/1.0\r\nAuthorization: Bearer {BACKEND}\r\nContent-Length: 99999999999\r\n\r\n{event}"), TOO_LARGE),
        raw("an unsupported HTTP version", "POST /v1/events HTTP/3.7\r\nHost: g\r\n\r\n", INVALID),
        raw("garbage instead of a request", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", INVALID),
    ];
    probes
}

// ---- stalled connections ---------------------------------------------------------------

/// A connection that stops sending partway, and what the gateway must do about it.
struct Stalled {
    what: &'static str,
    stream: TcpStream,
    ending: Ending,
}

/// How the gateway ends a stalled connection.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Closed without a word.
    Closed,
    /// Answered with this status and reason in an envelope, then closed.
    Answered(u16, &'static str),
    /// Closed after HTTP/2 frames (pings unanswered, then GOAWAY).
    ClosedByHttp2,
}

async fn stall(gw: &Gateway, what: &'static str, sent: &[u8], ending: Ending) -> Stalled {
    let mut stream = TcpStream::connect(gw.authority()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    Stalled {
        what,
        stream,
        ending,
    }
}

/// Half-open connections of every kind, left hanging.
async fn stalled_connections(gw: &Gateway) -> Vec<Stalled> {
    let auth = format!("Authorization: Bearer {BACKEND}\r\n");
    let head = format!("POST /v1/events HTTP/1.1\r\nHost: g\r\n{auth}");
    let short_body = format!("{head}Content-Length: 100\r\n\r\n{{\"resource\": \"/vic");
    #[rustfmt::skip]
    let mut stalled = vec![
        stall(gw, "a connection that sends nothing", b"", Ending::Closed).await,
        stall(gw, "a partial request line", b"POST /v1/ev", Ending::Closed).await,
        stall(gw, "a head without its end", head.as_bytes(), Ending::Closed).await,
        stall(gw, "a body shorter than its Content-Length", short_body.as_bytes(), Ending::Answered(408, "requestTimeout")).await,
        stall(gw, "part of an HTTP/2 preface", b"PRI * HTTP/2.0\r\n", Ending::Closed).await,
        stall(gw, "an HTTP/2 preface and nothing more", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Ending::ClosedByHttp2).await,
    ];
    for _ in 0..30 {
        stalled.push(stall(gw, "one of 30 idle connections", b"", Ending::Closed).await);
    }
    stalled
}

/// Each stalled connection is ended as it must be, by the gateway.
async fn assert_cut_off(stalled: Vec<Stalled>) {
    let mut failures = Vec::new();
    for mut s in stalled {
        let mut got = Vec::new();
        let closed = tokio::time::timeout(PATIENCE, s.stream.read_to_end(&mut got)).await;
        if closed.is_err() {
            failures.push(format!("{}: still open after {PATIENCE:?}", s.what));
            continue;
        }
        match s.ending {
            Ending::Closed if got.is_empty() => {}
            Ending::Answered(status, reason) if got.starts_with(b"HTTP/1.1 ") => {
                let reply = parse_response(&got).unwrap();
                failures.extend(mismatch(s.what, &reply, Want::Err(status, reason)));
            }
            // HTTP/2 frames: a 9-byte header, the first one SETTINGS (type 4).
            Ending::ClosedByHttp2 if got.len() >= 9 && got[3] == 4 => {}
            ending => failures.push(format!(
                "{}: wanted {ending:?}, got {:?}",
                s.what,
                String::from_utf8_lossy(&got)
            )),
        }
    }
    assert_no_failures(failures);
}

// ---- the barrage -------------------------------------------------------------------------

async fn assert_healthy(gw: &Gateway, after: &str) {
    let health = gw.get("/healthz").await;
    assert_eq!(
        health.status, 200,
        "/healthz after {after}: {}",
        health.text
    );
}

/// Publishes a marker event on the victim's resource as its backend; returns it.
async fn publish_marker(gw: &Gateway, after: &str) -> Value {
    let slug: String = after
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let event = json!({
        "resource": format!("/victim/{slug}"), "state": "update", "changed": ["content"],
        "data": {"after": after}, "metadata": {"barrage": after},
    });
    let reply = gw.key(BACKEND).post("/v1/events", &event).await;
    assert_eq!(
        reply.status, 200,
        "the backend's publish after {after}: {}",
        reply.text
    );
    event
}

#[tokio::test]
async fn a_barrage_of_hostile_requests_changes_nothing() {
    let mut gw = Gateway::keyed(|a| {
        a.max_body_bytes = MAX_BODY;
        a.max_batch = MAX_BATCH;
        a.header_read_timeout = CLIENT_TIMEOUT;
        a.request_timeout = CLIENT_TIMEOUT;
    })
    .await;
    // A new connection per request: no pooled connection outlives the idle timeout.
    gw.api = gw.api.fresh_connections();
    let rx = Receiver::start().await;

    // The victim: a signed channel created before the barrage.
    let created = gw
        .key(APP)
        .post(
            "/victim/watch",
            &json!({"id": "victim", "type": "web_hook", "address": rx.url(), "token": VICTIM_TOKEN,
                    "params": {"signingSecret": VICTIM_SECRET}}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let mut record = Channel::new("victim")
        .with_token(VICTIM_TOKEN)
        .with_signing_secret(VICTIM_SECRET)
        .unwrap();
    record.update(&created.json).unwrap();
    let resource_id = created.json["resourceId"].as_str().unwrap().to_string();

    // Stalled connections hang on throughout; they must not hold anyone up.
    let stalled = stalled_connections(&gw).await;
    let mut published = vec![publish_marker(&gw, "stalled connections").await];

    let categories: Vec<(&str, Vec<Probe>)> = vec![
        ("keys", key_probes()),
        ("access", access_probes(&resource_id)),
        ("ssrf", ssrf_probes()),
        ("watch bodies", watch_body_probes()),
        ("publish bodies", publish_probes()),
        ("paths", path_probes()),
        ("methods", method_probes()),
        ("headers", header_probes()),
    ];
    let total: usize = categories.iter().map(|(_, p)| p.len()).sum();
    assert!(total >= 300, "the barrage holds {total} probes");
    let mut failures = Vec::new();
    for (category, probes) in categories {
        for probe in probes {
            failures.extend(run_probe(&gw, probe).await);
        }
        assert_healthy(&gw, category).await;
        published.push(publish_marker(&gw, category).await);
    }
    assert_no_failures(failures);

    // The victim got the sync and then every event published since, in order, each
    // authenticated by the receiver library; nothing in between, nothing after.
    let mut tracker = Tracker::new();
    let sync = rx.next().await;
    let sync = record
        .receive(&sync.headers, &sync.body)
        .expect("a valid sync");
    assert!(sync.is_sync() && tracker.observe(&sync).is_new());
    for event in &published {
        let got = rx.next().await;
        let notification = record
            .receive(&got.headers, &got.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", got.headers));
        let observation = tracker.observe(&notification);
        assert!(
            observation.is_new() && observation.gap.is_none(),
            "{observation:?}"
        );
        assert_eq!(
            notification.event_resource.as_ref(),
            event["resource"].as_str().map(str::to_string).as_ref()
        );
        assert_eq!(
            got.body_json(),
            event["data"],
            "events arrive in publish order"
        );
        assert_eq!(
            Value::Object(notification.metadata.unwrap()),
            event["metadata"]
        );
    }
    rx.expect_silence(Duration::from_millis(300)).await;

    assert_cut_off(stalled).await;
    assert_healthy(&gw, "the stalled connections were cut off").await;
}
