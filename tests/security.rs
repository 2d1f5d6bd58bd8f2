//! docs/api.md §10: API keys and ownership, scopes and prefixes, per-key caps, the target
//! policy (including a name that resolves to loopback), key signing secrets with
//! rotation, and request limits (header size and count, slow clients).

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use watchwire::protocol::signature::SigningSecret;

const NEW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

const CONFIG: &str = r#"
[[keys]]
name = "backend"
key = "publish-key"
scopes = ["publish"]
prefixes = ["/b/photos"]

[[keys]]
name = "app"
key = "subscribe-key"
scopes = ["subscribe"]
prefixes = ["/b/photos"]
signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
previous_signing_secret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
previous_signing_secret_until = "2999-01-01T00:00:00Z"

[[keys]]
name = "ops"
key_sha256 = "2c69bc9111c27110a9b9a7974ba3f8ac0c053c16b23a0738115ee829fbc4d57b"
"#;

/// A gateway with keys (not --dev), local receivers allowed through the allow-list.
async fn secured(
    configure: impl FnOnce(&mut watchwire::config::ServeArgs),
) -> (Gateway, tempfile::NamedTempFile) {
    let mut config = tempfile::NamedTempFile::new().unwrap();
    config.write_all(CONFIG.as_bytes()).unwrap();
    let path = config.path().to_path_buf();
    let gw = Gateway::start_with(|a| {
        a.dev = false;
        a.api_keys = vec!["root-key".into(), "other-root".into()];
        a.config = Some(path);
        a.allow_targets = vec!["127.0.0.0/8".into()];
        configure(a);
    })
    .await;
    (gw, config)
}

async fn call(gw: &Gateway, key: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
    let mut request = gw
        .http
        .post(format!("{}{path}", gw.url))
        .body(body.to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

fn watch_body(id: &str, address: &str) -> Value {
    json!({"id": id, "type": "web_hook", "address": address})
}

#[tokio::test]
async fn every_call_but_healthz_needs_a_valid_key() {
    let (gw, _config) = secured(|_| {}).await;
    let rx = Receiver::start().await;
    let (status, body) = call(&gw, None, "/r/watch", &watch_body("c", &rx.url())).await;
    assert_error(status, &body, 401, "required");
    let (status, body) = call(
        &gw,
        Some("wrong"),
        "/v1/events",
        &json!({"resource": "/r", "state": "exists"}),
    )
    .await;
    assert_error(status, &body, 401, "authError");
    let (status, body) = call(
        &gw,
        None,
        "/channels/stop",
        &json!({"id": "c", "resourceId": "x"}),
    )
    .await;
    assert_error(status, &body, 401, "required");
    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 401);
    assert_eq!(
        gw.http
            .get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Bearer and Google's ?key= both work.
    assert_eq!(
        call(
            &gw,
            Some("root-key"),
            "/r/watch",
            &watch_body("c", &rx.url())
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &gw,
            None,
            "/r/watch?key=root-key",
            &watch_body("c2", &rx.url())
        )
        .await
        .0,
        200
    );
    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.url))
        .bearer_auth("root-key")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    // A key given only as its SHA-256 in the config file works as the key itself.
    assert_eq!(
        call(
            &gw,
            Some("ops-key"),
            "/r/watch",
            &watch_body("c3", &rx.url())
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn channels_belong_to_the_key_that_created_them() {
    let (gw, _config) = secured(|_| {}).await;
    let rx = Receiver::start().await;
    let (status, mine) = call(
        &gw,
        Some("root-key"),
        "/r/watch",
        &watch_body("shared-id", &rx.url()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rx.next().await.state(), "sync");
    // Another key cannot stop it, and learns nothing: the same 404 as for no channel.
    let stop = json!({"id": "shared-id", "resourceId": mine["resourceId"]});
    let (status, body) = call(&gw, Some("other-root"), "/channels/stop", &stop).await;
    assert_error(status, &body, 404, "notFound");
    // Ids are per owner: the other key may use the same one.
    assert_eq!(
        call(
            &gw,
            Some("other-root"),
            "/r/watch",
            &watch_body("shared-id", &rx.url())
        )
        .await
        .0,
        200
    );
    assert_eq!(rx.next().await.state(), "sync");
    assert_eq!(
        call(&gw, Some("root-key"), "/channels/stop", &stop).await.0,
        204
    );
}

#[tokio::test]
async fn scopes_and_prefixes_limit_named_keys() {
    let (gw, _config) = secured(|_| {}).await;
    let rx = Receiver::start().await;
    // The publisher may not subscribe, the subscriber may not publish.
    let (status, body) = call(
        &gw,
        Some("publish-key"),
        "/b/photos/watch",
        &watch_body("c", &rx.url()),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = call(
        &gw,
        Some("subscribe-key"),
        "/v1/events",
        &json!({"resource": "/b/photos/x", "state": "exists"}),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    // Each within its prefix only; a sibling that shares the string prefix is outside.
    let (status, body) = call(
        &gw,
        Some("subscribe-key"),
        "/b/photosX/watch",
        &watch_body("c", &rx.url()),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    let batch = json!([{"resource": "/b/photos/ok", "state": "exists"}, {"resource": "/b/other", "state": "exists"}]);
    let (status, body) = call(&gw, Some("publish-key"), "/v1/events", &batch).await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(
        call(
            &gw,
            Some("subscribe-key"),
            "/storage/v1/b/photos/o/watch",
            &watch_body("c", &rx.url())
        )
        .await
        .0,
        200
    );
    assert_eq!(rx.next().await.state(), "sync");
    let (status, _) = call(
        &gw,
        Some("publish-key"),
        "/v1/events",
        &json!({"resource": "/b/photos/o/cat.jpg", "state": "exists"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        rx.next().await.state(),
        "exists",
        "the rejected batch published nothing; this is the next event"
    );
}

#[tokio::test]
async fn a_key_signing_secret_signs_with_both_secrets_during_rotation() {
    let (gw, _config) = secured(|_| {}).await;
    let rx = Receiver::start().await;
    let (status, answer) = call(
        &gw,
        Some("subscribe-key"),
        "/b/photos/watch",
        &watch_body("signed", &rx.url()),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !answer.to_string().contains("whsec_"),
        "secrets are never echoed"
    );
    let sync = rx.next().await;
    let header = sync
        .header("webhook-signature")
        .expect("signed with the key's secret");
    assert_eq!(
        header.split(' ').count(),
        2,
        "old and new signatures during the overlap: {header}"
    );
    let id = sync.header("webhook-id").unwrap();
    let ts: i64 = sync.header("webhook-timestamp").unwrap().parse().unwrap();
    for secret in [NEW_SECRET, OLD_SECRET] {
        assert!(
            SigningSecret::parse(secret)
                .unwrap()
                .verify(id, ts, &sync.body, header),
            "{secret} does not verify"
        );
    }
}

#[tokio::test]
async fn channels_per_key_are_capped() {
    let (gw, _config) = secured(|a| a.max_channels_per_key = 2).await;
    let rx = Receiver::start().await;
    let (_, first) = call(
        &gw,
        Some("root-key"),
        "/r/watch",
        &watch_body("a", &rx.url()),
    )
    .await;
    assert_eq!(
        call(
            &gw,
            Some("root-key"),
            "/r/watch",
            &watch_body("b", &rx.url())
        )
        .await
        .0,
        200
    );
    let (status, body) = call(
        &gw,
        Some("root-key"),
        "/r/watch",
        &watch_body("c", &rx.url()),
    )
    .await;
    assert_error(status, &body, 403, "quotaExceeded");
    // Other keys have their own allowance; stopping frees one.
    assert_eq!(
        call(
            &gw,
            Some("other-root"),
            "/r/watch",
            &watch_body("c", &rx.url())
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &gw,
            Some("root-key"),
            "/channels/stop",
            &json!({"id": "a", "resourceId": first["resourceId"]})
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &gw,
            Some("root-key"),
            "/r/watch",
            &watch_body("c", &rx.url())
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn target_policy_refuses_private_and_plain_http_addresses() {
    // Without --dev and without an allow-list.
    let gw = Gateway::start_keyed("k").await;
    for address in [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
        "https://100.64.0.1/hook",
        "https://user:password@example.com/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
    ] {
        let (status, body) = call(&gw, Some("k"), "/r/watch", &watch_body("c", address)).await;
        assert!(status == 400, "{address} was accepted: {body}");
    }
    assert_eq!(
        call(
            &gw,
            Some("k"),
            "/r/watch",
            &watch_body("c", "https://example.com/hook")
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_and_never_connected_to() {
    let gw = Gateway::start_with(|a| {
        a.dev = false;
        a.api_keys = vec!["k".into()];
        a.retry_budget = Duration::from_millis(300);
    })
    .await;
    // A listener that counts connections: nothing may ever reach it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // It can never be delivered, so it is refused when the channel is created, with
    // the rule that refuses it (a name that later resolves elsewhere is checked again
    // by the connecting resolver: see delivery::target's tests).
    let address = format!("https://localhost:{port}/hook");
    let (status, body) = call(&gw, Some("k"), "/r/watch", &watch_body("c", &address)).await;
    assert_error(status, &body, 400, "pushWebhookBadDomain");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("localhost") && message.contains("not a public address"),
        "{message}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

/// docs/api.md §10.2: what the policy can never deliver is refused at watch time,
/// naming the rule; a name that does not resolve is retried like a connection failure,
/// whatever the scheme.
#[tokio::test]
async fn undeliverable_addresses_are_refused_at_watch_time_and_unresolvable_names_retried() {
    let gw = Gateway::start_with(|a| {
        a.dev = false;
        a.api_keys = vec!["k".into()];
        a.allow_targets = vec!["127.0.0.1/32".into()];
        a.retry_schedule = vec![Duration::from_millis(20)];
    })
    .await;
    for (address, rule) in [
        ("ftp://127.0.0.1/hook", "http:// or https://"),
        ("http://10.0.0.1/hook", "http://"),
        ("https://192.168.0.1/hook", "not a public address"),
    ] {
        let (status, body) = call(&gw, Some("k"), "/r/watch", &watch_body("c", address)).await;
        assert_error(status, &body, 400, "pushWebhookBadDomain");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(rule), "{address}: {message}");
    }
    let narrow = Gateway::start_with(|a| {
        a.dev = false;
        a.api_keys = vec!["k".into()];
        a.allow_targets = vec!["10.0.0.0/8".into()];
    })
    .await;
    let (status, body) = call(
        &narrow,
        Some("k"),
        "/r/watch",
        &watch_body("c", "http://localhost:9/hook"),
    )
    .await;
    assert_error(status, &body, 400, "pushWebhookBadDomain");
    assert!(body.to_string().contains("--allow-targets"), "{body}");

    // `.invalid` never resolves (RFC 6761): both schemes are accepted and retried.
    for (id, address) in [
        ("plain", "http://watchwire-test.invalid/hook"),
        ("tls", "https://watchwire-test.invalid/hook"),
    ] {
        let (status, body) = call(&gw, Some("k"), "/r/watch", &watch_body(id, address)).await;
        assert_eq!(status, 200, "{address}: {body}");
        let mut sync = Value::Null;
        for _ in 0..500 {
            let response = gw
                .http
                .get(format!("{}/v1/channels/{id}/notifications", gw.url))
                .bearer_auth("k")
                .send()
                .await
                .unwrap();
            let log: Value = response.json().await.unwrap();
            sync = log["items"][0].clone();
            if sync["attempts"].as_u64().unwrap_or(0) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(sync["state"], "sync", "{sync}");
        assert_eq!(
            sync["status"], "pending",
            "{address}: retried, not failed: {sync}"
        );
        assert!(sync["attempts"].as_u64().unwrap() >= 3, "{sync}");
        assert_eq!(sync["lastError"]["reason"], "dnsFailure", "{sync}");
    }
}

#[tokio::test]
async fn allow_listed_networks_may_receive_over_http() {
    let (gw, _config) = secured(|_| {}).await;
    let rx = Receiver::start().await;
    let by_name = format!("http://localhost:{}/hook", rx.addr.port());
    assert_eq!(
        call(
            &gw,
            Some("root-key"),
            "/r/watch",
            &watch_body("ip", &rx.url())
        )
        .await
        .0,
        200
    );
    assert_eq!(rx.next().await.state(), "sync");
    assert_eq!(
        call(
            &gw,
            Some("root-key"),
            "/r/watch",
            &watch_body("name", &by_name)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        rx.next().await.state(),
        "sync",
        "a name resolving into the allow-list is delivered to"
    );
    let (status, _) = call(
        &gw,
        Some("root-key"),
        "/r/watch",
        &watch_body("outside", "http://10.9.9.9/hook"),
    )
    .await;
    assert_eq!(status, 400, "http:// outside the allow-list is refused");
}

#[tokio::test]
async fn oversized_headers_get_431_in_the_envelope() {
    let gw = Gateway::start_with(|a| {
        a.max_header_bytes = 4096;
        a.max_headers = 20;
    })
    .await;
    let big = gw
        .http
        .post(format!("{}/v1/events", gw.url))
        .header("x-filler", "a".repeat(5000))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 431);
    let body: Value = big.json().await.unwrap();
    assert_error(431, &body, 431, "headersTooLarge");
    let mut many = gw.http.post(format!("{}/v1/events", gw.url));
    for i in 0..30 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let many = many.body("{}").send().await.unwrap();
    assert_eq!(many.status(), 431);
    assert_eq!(
        gw.http
            .get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let gw = Gateway::start_with(|a| {
        a.request_timeout = Duration::from_millis(300);
        a.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = gw.server.as_ref().unwrap().addr;

    // A body that never finishes: 408 in the envelope once the request timeout passes.
    let mut slow_body = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow_body
        .write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"res")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, slow_body.read_to_end(&mut answer))
        .await
        .expect("the gateway answers a stalled body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("requestTimeout"), "{text}");

    // Headers that never finish (slowloris): the connection is closed.
    let mut slow_head = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow_head
        .write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\nx-a: ")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, slow_head.read_to_end(&mut rest))
        .await
        .expect("the gateway closes a stalled head")
        .ok();
    assert_eq!(
        gw.http
            .get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn logs_replay_and_watchers_belong_to_their_key() {
    let (gw, _config) = secured(|_| {}).await;
    let rx = Receiver::start().await;
    assert_eq!(
        call(
            &gw,
            Some("root-key"),
            "/r/watch",
            &watch_body("mine", &rx.url())
        )
        .await
        .0,
        200
    );
    let (status, watcher) = call(
        &gw,
        Some("root-key"),
        "/v1/watchers",
        &json!({"pattern": "/w", "endpoint": rx.url()}),
    )
    .await;
    assert_eq!(status, 201);
    let get = |key: &'static str, path: String| {
        let request = gw.http.get(format!("{}{path}", gw.url)).bearer_auth(key);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    for path in ["/v1/channels/mine", "/v1/channels/mine/notifications"] {
        assert_eq!(get("root-key", path.to_string()).await.0, 200, "{path}");
        let (status, body) = get("other-root", path.to_string()).await;
        assert_error(status, &body, 404, "notFound");
    }
    let (_, theirs) = get("other-root", "/v1/channels".into()).await;
    assert_eq!(
        theirs["items"].as_array().unwrap().len(),
        0,
        "another key's listing is empty"
    );
    let (_, theirs) = get("other-root", "/v1/watchers".into()).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    let (status, _) = call(
        &gw,
        Some("other-root"),
        "/v1/channels/mine/replay",
        &json!({"since": "0000000000000000"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &gw,
        Some("other-root"),
        "/v1/channels/mine/enable",
        &json!({}),
    )
    .await;
    assert_eq!(status, 404);
    let id = watcher["id"].as_str().unwrap();
    let deleted = gw
        .http
        .delete(format!("{}/v1/watchers/{id}", gw.url))
        .bearer_auth("other-root")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 404);
    // Reading the stream and polling needs a key too.
    assert_eq!(
        gw.http
            .get(format!("{}/v1/watch", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        gw.http
            .get(format!("{}/v1/changes", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // A key limited to /b/photos cannot read the whole log or another prefix.
    let limited = gw
        .http
        .get(format!("{}/v1/changeset?resource=/r&_expected=1", gw.url))
        .bearer_auth("subscribe-key")
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 403);
    let limited = gw
        .http
        .get(format!("{}/v1/changes", gw.url))
        .bearer_auth("subscribe-key")
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 403);
}
