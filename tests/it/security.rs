//! docs/api.md §10: API keys and ownership, scopes and prefixes, per-key caps, the target
//! policy (including a name that resolves to loopback), key signing secrets with
//! rotation, and request limits (header size and count, slow clients).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::keys::*;
use crate::common::process::GatewayProcess;
use crate::common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use watchwire::protocol::signature::SigningSecret;

fn watch_body(id: &str, address: &str) -> Value {
    json!({"id": id, "type": "web_hook", "address": address})
}

#[tokio::test]
async fn every_call_but_healthz_needs_a_valid_key() {
    let gw = Gateway::keyed(|_| {}).await;
    let rx = Receiver::start().await;
    gw.post("/r/watch", &watch_body("c", &rx.url()))
        .await
        .assert_error(401, "required");
    gw.key("wrong")
        .post("/v1/events", &json!({"resource": "/r", "state": "exists"}))
        .await
        .assert_error(401, "authError");
    gw.post("/channels/stop", &json!({"id": "c", "resourceId": "x"}))
        .await
        .assert_error(401, "required");
    gw.get("/metrics").await.expect(401);
    gw.get("/healthz").await.expect(200);

    // Bearer and Google's ?key= both work.
    let root = gw.key(ROOT);
    root.post("/r/watch", &watch_body("c", &rx.url()))
        .await
        .expect(200);
    gw.post("/r/watch?key=root-key", &watch_body("c2", &rx.url()))
        .await
        .expect(200);
    root.get("/metrics").await.expect(200);
    // A key given only as its SHA-256 in the config file works as the key itself.
    gw.key(OPS)
        .post("/r/watch", &watch_body("c3", &rx.url()))
        .await
        .expect(200);
}

#[tokio::test]
async fn channels_belong_to_the_key_that_created_them() {
    let gw = Gateway::keyed(|_| {}).await;
    let rx = Receiver::start().await;
    let (root, other) = (gw.key(ROOT), gw.key(OTHER_ROOT));
    let mine = root.watch("/r", "shared-id", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    // Another key cannot stop it, and learns nothing: the same 404 as for no channel.
    let stop = json!({"id": "shared-id", "resourceId": mine["resourceId"]});
    other
        .post("/channels/stop", &stop)
        .await
        .assert_error(404, "notFound");
    // Ids are per owner: the other key may use the same one.
    other.watch("/r", "shared-id", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    root.post("/channels/stop", &stop).await.expect(204);
}

#[tokio::test]
async fn scopes_and_prefixes_limit_named_keys() {
    let gw = Gateway::keyed(|_| {}).await;
    let rx = Receiver::start().await;
    let (publisher, subscriber) = (gw.key(PHOTOS_PUBLISHER), gw.key(PHOTOS_SUBSCRIBER));
    // The publisher may not subscribe, the subscriber may not publish.
    publisher
        .post("/b/photos/watch", &watch_body("c", &rx.url()))
        .await
        .assert_error(403, "forbidden");
    subscriber
        .post(
            "/v1/events",
            &json!({"resource": "/b/photos/x", "state": "exists"}),
        )
        .await
        .assert_error(403, "forbidden");
    // Each within its prefix only; a sibling that shares the string prefix is outside.
    subscriber
        .post("/b/photosX/watch", &watch_body("c", &rx.url()))
        .await
        .assert_error(403, "forbidden");
    let batch = json!([{"resource": "/b/photos/ok", "state": "exists"}, {"resource": "/b/other", "state": "exists"}]);
    publisher
        .post("/v1/events", &batch)
        .await
        .assert_error(403, "forbidden");
    subscriber
        .watch("/storage/v1/b/photos/o", "c", &rx.url())
        .await;
    assert_eq!(rx.next().await.state(), "sync");
    publisher
        .publish(json!({"resource": "/b/photos/o/cat.jpg", "state": "exists"}))
        .await;
    assert_eq!(
        rx.next().await.state(),
        "exists",
        "the rejected batch published nothing; this is the next event"
    );
}

#[tokio::test]
async fn a_key_signing_secret_signs_with_both_secrets_during_rotation() {
    let gw = Gateway::keyed(|_| {}).await;
    let rx = Receiver::start().await;
    let answer = gw
        .key(PHOTOS_SUBSCRIBER)
        .watch("/b/photos", "signed", &rx.url())
        .await;
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
    for secret in [SIGNING_SECRET, PREVIOUS_SIGNING_SECRET] {
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
    let gw = Gateway::keyed(|a| a.max_channels_per_key = 2).await;
    let rx = Receiver::start().await;
    let root = gw.key(ROOT);
    let first = root
        .post("/r/watch", &watch_body("a", &rx.url()))
        .await
        .json;
    root.watch("/r", "b", &rx.url()).await;
    root.post("/r/watch", &watch_body("c", &rx.url()))
        .await
        .assert_error(403, "quotaExceeded");
    // Other keys have their own allowance; stopping frees one.
    gw.key(OTHER_ROOT).watch("/r", "c", &rx.url()).await;
    assert_eq!(
        root.stop("a", first["resourceId"].as_str().unwrap()).await,
        204
    );
    root.watch("/r", "c", &rx.url()).await;
}

#[tokio::test]
async fn target_policy_refuses_private_and_plain_http_addresses() {
    // Without --dev and without an allow-list.
    let gw = Gateway::keyed(|a| a.allow_targets.clear()).await;
    let root = gw.key(ROOT);
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
        let reply = root.post("/r/watch", &watch_body("c", address)).await;
        assert!(
            reply.status == 400,
            "{address} was accepted: {}",
            reply.json
        );
    }
    root.watch("/r", "c", "https://example.com/hook").await;
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_and_never_connected_to() {
    let gw = Gateway::keyed(|a| {
        a.allow_targets.clear();
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
    let reply = gw
        .key(ROOT)
        .post("/r/watch", &watch_body("c", &address))
        .await;
    reply.assert_error(400, "pushWebhookBadDomain");
    let message = reply.json["error"]["message"].as_str().unwrap();
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
    // The allow-list holds 127.0.0.1/32 alone.
    let gw = Gateway::keyed(|a| a.retry_schedule = vec![Duration::from_millis(20)]).await;
    let root = gw.key(ROOT);
    for (address, rule) in [
        ("ftp://127.0.0.1/hook", "http:// or https://"),
        ("http://10.0.0.1/hook", "http://"),
        ("https://192.168.0.1/hook", "not a public address"),
    ] {
        let reply = root.post("/r/watch", &watch_body("c", address)).await;
        reply.assert_error(400, "pushWebhookBadDomain");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(rule), "{address}: {message}");
    }
    let narrow = Gateway::keyed(|a| a.allow_targets = vec!["10.0.0.0/8".into()]).await;
    let reply = narrow
        .key(ROOT)
        .post("/r/watch", &watch_body("c", "http://localhost:9/hook"))
        .await;
    reply.assert_error(400, "pushWebhookBadDomain");
    assert!(
        reply.json.to_string().contains("--allow-targets"),
        "{}",
        reply.json
    );

    // `.invalid` never resolves (RFC 6761): both schemes are accepted and retried.
    for (id, address) in [
        ("plain", "http://watchwire-test.invalid/hook"),
        ("tls", "https://watchwire-test.invalid/hook"),
    ] {
        let reply = root.post("/r/watch", &watch_body(id, address)).await;
        assert_eq!(reply.status, 200, "{address}: {}", reply.json);
        let mut sync = Value::Null;
        for _ in 0..500 {
            let log = root.get(&format!("/v1/channels/{id}/notifications")).await;
            sync = log.json["items"][0].clone();
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
    let gw = Gateway::keyed(|_| {}).await;
    let rx = Receiver::start().await;
    let root = gw.key(ROOT);
    let by_name = format!("http://localhost:{}/hook", rx.addr.port());
    root.watch("/r", "ip", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    root.watch("/r", "name", &by_name).await;
    assert_eq!(
        rx.next().await.state(),
        "sync",
        "a name resolving into the allow-list is delivered to"
    );
    let reply = root
        .post("/r/watch", &watch_body("outside", "http://10.9.9.9/hook"))
        .await;
    assert_eq!(
        reply.status, 400,
        "http:// outside the allow-list is refused"
    );
}

#[tokio::test]
async fn oversized_headers_get_431_in_the_envelope() {
    let gw = Gateway::start_with(|a| {
        a.max_header_bytes = 4096;
        a.max_headers = 20;
    })
    .await;
    let big = gw
        .header("x-filler", &"a".repeat(5000))
        .post_raw("/v1/events", "{}")
        .await;
    big.assert_error(431, "headersTooLarge");
    let many = (0..30).fold(gw.api.clone(), |api, i| api.header(&format!("x-h{i}"), "v"));
    assert_eq!(many.post_raw("/v1/events", "{}").await.status, 431);
    gw.get("/healthz").await.expect(200);
}

/// `--max-headers` holds on either side of 100, the HTTP layer's own cap when none is
/// set: the default (100) is refused above it with the envelope, and a higher limit
/// lets as many headers through, no more.
#[tokio::test]
async fn the_header_count_limit_holds_above_and_below_a_hundred() {
    let event = r#"{"resource": "/h", "state": "exists"}"#;
    let with_headers = |gw: &Gateway, n: usize| {
        // The client adds a few of its own (host, content type and length, accept).
        (0..n).fold(gw.api.clone(), |api, i| api.header(&format!("x-h{i}"), "v"))
    };
    let default = Gateway::start().await;
    with_headers(&default, 90)
        .post_raw("/v1/events", event)
        .await
        .expect(200);
    with_headers(&default, 101)
        .post_raw("/v1/events", event)
        .await
        .assert_error(431, "headersTooLarge");

    let raised = Gateway::start_with(|a| a.max_headers = 150).await;
    with_headers(&raised, 140)
        .post_raw("/v1/events", event)
        .await
        .expect(200);
    let over = with_headers(&raised, 151)
        .post_raw("/v1/events", event)
        .await;
    over.assert_error(431, "headersTooLarge");
    let message = over.json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--max-headers"), "{message}");
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
    gw.get("/healthz").await.expect(200);
}

#[tokio::test]
async fn logs_replay_and_watchers_belong_to_their_key() {
    let gw = Gateway::keyed(|_| {}).await;
    let rx = Receiver::start().await;
    let (root, other) = (gw.key(ROOT), gw.key(OTHER_ROOT));
    root.watch("/r", "mine", &rx.url()).await;
    let watcher = root
        .post(
            "/v1/watchers",
            &json!({"pattern": "/w", "endpoint": rx.url()}),
        )
        .await
        .expect(201)
        .json;
    for path in ["/v1/channels/mine", "/v1/channels/mine/notifications"] {
        assert_eq!(root.get(path).await.status, 200, "{path}");
        other.get(path).await.assert_error(404, "notFound");
    }
    let theirs = other.get("/v1/channels").await.json;
    assert_eq!(
        theirs["items"].as_array().unwrap().len(),
        0,
        "another key's listing is empty"
    );
    let theirs = other.get("/v1/watchers").await.json;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    other
        .post(
            "/v1/channels/mine/replay",
            &json!({"since": "0000000000000000"}),
        )
        .await
        .expect(404);
    other
        .post("/v1/channels/mine/enable", &json!({}))
        .await
        .expect(404);
    let id = watcher["id"].as_str().unwrap();
    other
        .delete(&format!("/v1/watchers/{id}"))
        .await
        .expect(404);
    // Reading the stream and polling needs a key too.
    gw.get("/v1/watch").await.expect(401);
    gw.get("/v1/changes").await.expect(401);
    // A key limited to /b/photos cannot read another prefix; reading the whole
    // namespace reads its own prefixes only (see the test below).
    let limited = gw.key(PHOTOS_SUBSCRIBER);
    limited
        .get("/v1/changeset?resource=/r&_expected=1")
        .await
        .expect(403);
    limited
        .get("/v1/changes?prefix=/r")
        .await
        .assert_error(403, "forbidden");
}

/// A key limited to prefixes may watch, stream and poll the whole namespace `/`
/// (docs/api.md §10.1), and gets every event under its prefixes and nothing else:
/// through a channel (from memory and in its pending listing), a watcher, the
/// stream with and without a filter, and polling.
#[tokio::test]
async fn the_whole_namespace_under_a_key_limited_to_prefixes_is_those_prefixes() {
    let gw = Gateway::keyed(|_| {}).await;
    let (root, limited) = (gw.key(ROOT), gw.key(PHOTOS_SUBSCRIBER));
    let rx = Receiver::start().await;
    let up = rx.unavailable_until_up();
    let hooks = Receiver::start().await;
    limited.watch("", "everything", &rx.url()).await;
    let watcher = limited
        .post(
            "/v1/watchers",
            &json!({"pattern": "/", "endpoint": hooks.url()}),
        )
        .await
        .expect(201)
        .json;
    assert_eq!(watcher["pattern"], "/");
    assert_eq!(hooks.next().await.state(), "sync");
    let mut streams = vec![
        limited.stream("/v1/watch").await,
        limited.stream("/v1/watch?resource=/").await,
    ];
    // Only `/` stands for the key's prefixes; another path outside them is refused.
    limited
        .post("/b/watch", &watch_body("b", &rx.url()))
        .await
        .assert_error(403, "forbidden");

    let published = root
        .publish(json!([
            {"resource": "/b/other/1", "state": "exists"},
            {"resource": "/b/photos/o/1", "state": "exists"},
            {"resource": "/victim/x", "state": "exists"},
            {"resource": "/b/photosX", "state": "exists"},
            {"resource": "/b/photos/o/2", "state": "exists"},
        ]))
        .await;
    let mine = ["/b/photos/o/1", "/b/photos/o/2"];

    assert_eq!(
        limited.get("/v1/channels/everything").await.json["resource"],
        "/"
    );
    // Its sync and its two events.
    limited.await_pending("everything", 3).await;
    let listed = limited
        .logged_resources("everything", "?status=pending")
        .await;
    assert_eq!(listed, ["sync", mine[0], mine[1]]);

    up.store(true, Ordering::SeqCst);
    // In log order, so the events between them were skipped, not delayed.
    let got: Vec<String> = rx
        .first_receipts(3)
        .await
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(got, ["sync", mine[0], mine[1]]);
    let by_watcher: Vec<String> = hooks
        .take(2)
        .await
        .iter()
        .map(|r| r.header("x-watchwire-event-resource").unwrap().to_string())
        .collect();
    assert_eq!(by_watcher, mine);
    for stream in &mut streams {
        for want in mine {
            assert_eq!(stream.expect().await.json()["resource"], want);
        }
    }

    let changes = limited
        .get("/v1/changeset?resource=/&_expected=0")
        .await
        .expect(200)
        .json;
    let resources: Vec<&str> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, mine);
    assert_eq!(changes["timestamp"], published["cursor"]);
    for path in ["/v1/changes", "/v1/changes?prefix=/"] {
        let listed = limited.get(path).await.expect(200).json;
        assert_eq!(
            listed["collections"].as_array().unwrap().len(),
            1,
            "{path}: {listed}"
        );
        assert_eq!(listed["collections"][0]["collection"], "/b/photos/o");
    }
}

/// Channels and watchers made under `--dev` belong to the owner `dev`. Once keys are
/// configured an admin key reaches them with `?owner=` (docs/api.md §8, §10.1): lists,
/// reads, replays, enables and stops them; every other key still sees only its own
/// and learns nothing about the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_key_reaches_the_channels_made_under_dev() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let dev = GatewayProcess::start(dir.path(), &[]);
    let channel = dev.watch("/dev", "made-in-dev", &rx.url()).await;
    let watcher = json!({"pattern": "/devw", "endpoint": rx.url()});
    let watcher = dev.post("/v1/watchers", &watcher).await.expect(201).json;
    let watcher = watcher["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(rx.next().await.state(), "sync");
    }
    dev.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(dev.exited_within(PATIENCE).await.success());

    let gw = GatewayProcess::keyed(dir.path(), &[]);
    let (admin, app) = (gw.key(ROOT), gw.key(PHOTOS_SUBSCRIBER));
    admin.watch("/r", "admins-own", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    // The dev channel still receives, and no key's own listing shows it.
    admin
        .publish(json!({"resource": "/dev/x", "state": "exists"}))
        .await;
    assert_eq!(
        rx.next().await.header("x-goog-channel-id"),
        Some("made-in-dev")
    );
    let own = admin.get("/v1/channels").await.expect(200).json;
    assert_eq!(own["items"].as_array().unwrap().len(), 1, "{own}");

    let all = admin.get("/v1/channels?owner=*").await.expect(200).json;
    let owners: Vec<(&str, &str)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["owner"].as_str().unwrap()))
        .collect();
    assert_eq!(owners.len(), 2, "{all}");
    assert_eq!(owners[0], ("made-in-dev", "dev"));
    assert_eq!(owners[1].0, "admins-own");
    assert!(
        !all.to_string().contains(ROOT),
        "a key's owner is never the key: {all}"
    );
    let only_dev = admin.get("/v1/channels?owner=dev").await.expect(200).json;
    assert_eq!(only_dev["items"].as_array().unwrap().len(), 1, "{only_dev}");
    let watchers = admin.get("/v1/watchers?owner=*").await.expect(200).json;
    assert_eq!(watchers["items"][0]["id"], watcher.as_str(), "{watchers}");
    assert_eq!(watchers["items"][0]["owner"], "dev");

    let shown = admin
        .get("/v1/channels/made-in-dev?owner=dev")
        .await
        .expect(200)
        .json;
    assert_eq!(
        (&shown["state"], &shown["owner"]),
        (&json!("active"), &json!("dev"))
    );
    let log = admin
        .get("/v1/channels/made-in-dev/notifications?owner=dev")
        .await;
    assert_eq!(log.expect(200).json["items"].as_array().unwrap().len(), 2);
    let replay = json!({"since": "0000000000000000"});
    admin
        .post("/v1/channels/made-in-dev/replay?owner=dev", &replay)
        .await
        .expect(202);
    assert_eq!(
        rx.next().await.header("x-watchwire-event-resource"),
        Some("/dev/x")
    );
    admin
        .post_raw("/v1/channels/made-in-dev/enable?owner=dev", "")
        .await
        .expect(200);
    admin
        .get("/v1/channels/made-in-dev?owner=*")
        .await
        .assert_error(400, "invalidParameter");

    // Any other key: refused whatever it names, and the dev channel is not its own.
    let stop = json!({"id": "made-in-dev", "resourceId": channel["resourceId"]});
    for path in [
        "/v1/channels?owner=*",
        "/v1/channels?owner=dev",
        "/v1/watchers?owner=*",
        "/v1/channels/made-in-dev?owner=dev",
        "/v1/channels/no-such?owner=nobody",
    ] {
        app.get(path).await.assert_error(403, "forbidden");
    }
    app.post("/channels/stop?owner=dev", &stop)
        .await
        .assert_error(403, "forbidden");
    app.delete(&format!("/v1/watchers/{watcher}?owner=dev"))
        .await
        .assert_error(403, "forbidden");
    app.get("/v1/channels/made-in-dev")
        .await
        .assert_error(404, "notFound");
    app.post("/channels/stop", &stop)
        .await
        .assert_error(404, "notFound");

    // The operator stops them; nothing more arrives.
    admin
        .post("/channels/stop", &stop)
        .await
        .assert_error(404, "notFound");
    admin
        .post("/channels/stop?owner=dev", &stop)
        .await
        .expect(204);
    admin
        .delete(&format!("/v1/watchers/{watcher}?owner=dev"))
        .await
        .expect(204);
    let stopped = admin
        .get("/v1/channels/made-in-dev?owner=dev")
        .await
        .expect(200)
        .json;
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    for resource in ["/dev/y", "/devw/z"] {
        admin
            .publish(json!({"resource": resource, "state": "exists"}))
            .await;
    }
    rx.expect_silence(Duration::from_millis(300)).await;
}

/// The console's files (docs/api.md §15) hold no data: served without a key, under a
/// policy that allows only their own scripts and calls to the gateway; what they call
/// still needs the key.
#[tokio::test]
async fn the_console_files_need_no_key_and_carry_a_strict_policy() {
    let gw = Gateway::keyed(|_| {}).await;
    let page = gw.get("/console").await.expect(200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page
        .text
        .contains(r#"<script type="module" src="/console/console.js">"#));
    let policy = page.header("content-security-policy").unwrap();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(rule), "{policy}");
    }
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    for (file, kind) in [
        ("console.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("dom.js", "text/javascript"),
        ("chart.js", "text/javascript"),
        ("console.css", "text/css"),
    ] {
        let asset = gw.get(&format!("/console/{file}")).await.expect(200);
        assert!(
            asset.header("content-type").unwrap().starts_with(kind),
            "{file}"
        );
    }
    gw.get("/console/secrets.toml")
        .await
        .assert_error(404, "notFound");
    gw.get("/v1/channels").await.assert_error(401, "required");
    // The key never goes in a URL: the console sends it as a header.
    assert!(!gw.get("/console/api.js").await.text.contains("key="));
}
