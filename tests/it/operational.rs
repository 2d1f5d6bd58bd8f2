//! docs/api.md §18 operational events: the gateway publishes what happens to its
//! channels under `/watchwire/events/channels/{id}`, one event per change, which an
//! admin key's channel, stream or polling receive like any event; nobody publishes
//! there, other keys cannot read it, and `/` does not cover it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

/// Watches the operational events with an admin key; returns the receiver, its sync
/// taken.
async fn operator(gw: &Gateway) -> Receiver {
    let ops = Receiver::start().await;
    gw.key(keys::ROOT)
        .watch("/watchwire/events", "ops", &ops.url())
        .await;
    assert_eq!(ops.next().await.state(), "sync");
    ops
}

/// The next operational event's data, checked to be about `id`.
async fn told(ops: &Receiver, id: &str) -> Value {
    let got = ops.next().await;
    assert_eq!(
        got.header("x-watchwire-event-resource"),
        Some(&*format!("/watchwire/events/channels/{id}"))
    );
    let data = got.body_json();
    assert_eq!(data["channel"]["id"], id, "{data}");
    data
}

#[tokio::test]
async fn a_failing_endpoint_is_told_once_when_it_breaks_and_once_when_it_recovers() {
    let gw = Gateway::keyed(|_| {}).await;
    let ops = operator(&gw).await;
    let everything = Receiver::start().await;
    gw.key(keys::OTHER_ROOT)
        .watch("/", "everything", &everything.url())
        .await;
    everything.next().await;

    let flaky = Receiver::start().await;
    flaky.script(&[500, 500]);
    let app = gw.key(keys::APP);
    app.watch("/victim/inbox", "inbox", &flaky.url()).await;
    let failing = told(&ops, "inbox").await;
    assert_eq!(failing["type"], "channel.failing");
    assert_eq!(failing["reason"]["reason"], "httpStatus", "{failing}");
    assert_eq!(failing["reason"]["status"], 500);
    assert_eq!(failing["channel"]["owner"], "app");
    assert_eq!(failing["channel"]["resource"], "/victim/inbox");
    assert_eq!(failing["channel"]["delivery"]["enabled"], true);
    assert!(failing["channel"]["delivery"]["failingSince"].is_string());
    let recovered = told(&ops, "inbox").await;
    assert_eq!(recovered["type"], "channel.recovered", "{recovered}");
    assert_eq!(recovered["reason"]["lastError"]["reason"], "httpStatus");
    assert!(recovered["channel"]["delivery"]["failingSince"].is_null());

    // One event each: the next thing told is what happens next, a stop.
    assert_eq!(
        app.stop(
            "inbox",
            flaky.next().await.header("x-goog-resource-id").unwrap()
        )
        .await,
        204
    );
    let stopped = told(&ops, "inbox").await;
    assert_eq!(stopped["type"], "channel.stopped", "{stopped}");
    assert_eq!(stopped["channel"]["state"], "stopped");
    assert_eq!(stopped["reason"], "stopped with channels.stop");

    // `/` got none of them: after its sync, the first it gets is the next publish.
    gw.key(keys::ROOT)
        .publish(json!({"resource": "/after", "state": "exists"}))
        .await;
    let next = everything.next().await;
    assert_eq!(next.header("x-watchwire-event-resource"), Some("/after"));
}

#[tokio::test]
async fn a_channel_disabled_for_failing_and_enabled_again_is_told() {
    let gw = Gateway::keyed(|a| a.disable_after = Duration::from_millis(200)).await;
    let ops = operator(&gw).await;
    let down = Receiver::start().await;
    let up = down.unavailable_until_up();
    let app = gw.key(keys::APP);
    app.watch("/victim/down", "down", &down.url()).await;
    assert_eq!(told(&ops, "down").await["type"], "channel.failing");
    let disabled = told(&ops, "down").await;
    assert_eq!(disabled["type"], "channel.disabled", "{disabled}");
    assert_eq!(disabled["channel"]["delivery"]["enabled"], false);
    assert_eq!(disabled["reason"]["lastError"]["reason"], "httpStatus");
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    app.post("/v1/channels/down/enable", &json!({}))
        .await
        .expect(200);
    let enabled = told(&ops, "down").await;
    assert_eq!(enabled["type"], "channel.enabled", "{enabled}");
    assert_eq!(enabled["channel"]["delivery"]["enabled"], true);
}

#[tokio::test]
async fn expiring_expired_and_gone_channels_are_told() {
    let gw = Gateway::keyed(|a| a.expiring_notice = Duration::from_secs(3600)).await;
    let ops = operator(&gw).await;
    let rx = Receiver::start().await;
    let app = gw.key(keys::APP);
    let short = json!({"id": "short", "type": "web_hook", "address": rx.url(),
                       "params": {"ttl": "2"}});
    app.watch_with("/victim/short", short).await;
    let expiring = told(&ops, "short").await;
    assert_eq!(expiring["type"], "channel.expiring", "{expiring}");
    assert!(expiring["reason"]["expiration"].is_string());
    // Told once for its expiration: the next event about it is its end.
    let expired = told(&ops, "short").await;
    assert_eq!(expired["type"], "channel.expired", "{expired}");
    assert_eq!(expired["channel"]["state"], "expired");

    let gone = Receiver::start().await;
    gone.respond(|_| (410, vec![]));
    app.watch("/victim/gone", "gone", &gone.url()).await;
    let told_gone = told(&ops, "gone").await;
    assert_eq!(told_gone["type"], "channel.gone", "{told_gone}");
    assert_eq!(told_gone["channel"]["state"], "gone");
}

/// Only admin keys read `/watchwire/events`, through every way of reading; nobody
/// publishes there.
#[tokio::test]
async fn only_admin_keys_read_operational_events_and_nobody_publishes_them() {
    let gw = Gateway::keyed(|_| {}).await;
    let rx = Receiver::start().await;
    for key in [keys::ROOT, keys::BACKEND] {
        gw.key(key)
            .post(
                "/v1/events",
                &json!({"resource": "/watchwire/events/channels/x", "state": "exists"}),
            )
            .await
            .assert_error(403, "forbidden");
    }
    let app = gw.key(keys::APP);
    let watch = json!({"id": "snoop", "type": "web_hook", "address": rx.url()});
    app.post("/watchwire/events/watch", &watch)
        .await
        .assert_error(403, "forbidden");
    for path in [
        "/v1/watch?resource=/watchwire/events",
        "/v1/changes?prefix=/watchwire/events",
        "/v1/changeset?resource=/watchwire/events&_expected=0",
    ] {
        gw.key(keys::PHOTOS_SUBSCRIBER)
            .get(path)
            .await
            .assert_error(403, "forbidden");
    }
    // An admin reads them by polling and by stream.
    let admin = gw.key(keys::ROOT);
    app.watch("/victim/polled", "polled", &rx.url()).await;
    rx.next().await;
    let ids = app.get("/v1/channels/polled").await.expect(200).json["resourceId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stream = admin.stream("/v1/watch?resource=/watchwire/events").await;
    assert_eq!(app.stop("polled", &ids).await, 204);
    let frame = loop {
        let frame = stream.next().await.expect("a frame");
        if frame.event.as_deref() != Some("checkpoint") && !frame.data.is_empty() {
            break frame;
        }
    };
    assert!(frame.data.contains("channel.stopped"), "{}", frame.data);
    let changes = admin
        .get("/v1/changes?prefix=/watchwire/events")
        .await
        .expect(200)
        .json;
    assert!(
        changes.to_string().contains("/watchwire/events/channels"),
        "{changes}"
    );
}

/// In a cluster, the node that delivers a channel tells of its health, once; a stop
/// through another node is told once, by that node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_each_change_is_told_once() {
    let Some(cluster) = crate::cluster::Cluster::start(2, "operational") else {
        return;
    };
    let ops = Receiver::start().await;
    cluster
        .node(0)
        .watch("/watchwire/events", "ops", &ops.url())
        .await;
    assert_eq!(ops.next().await.state(), "sync");
    let flaky = Receiver::start().await;
    flaky.script(&[500]);
    let created = cluster
        .node(1)
        .watch("/c/flaky", "flaky", &flaky.url())
        .await;
    assert_eq!(told(&ops, "flaky").await["type"], "channel.failing");
    assert_eq!(told(&ops, "flaky").await["type"], "channel.recovered");
    let resource_id = created["resourceId"].as_str().unwrap();
    assert_eq!(cluster.node(0).stop("flaky", resource_id).await, 204);
    assert_eq!(told(&ops, "flaky").await["type"], "channel.stopped");
}
