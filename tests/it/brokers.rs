//! Brokers as destinations (docs/api.md §20), against the machine's NATS with
//! JetStream, RabbitMQ and Redis, read by consumers of the tests' own
//! (`common/brokers.rs`): order and headers over a few thousand messages, the
//! acknowledgement in the delivery log, an outage through a proxy the test cuts and
//! heals, a gateway killed with SIGKILL mid-run, an unroutable AMQP message, a stop,
//! a broker that is down beside healthy channels, watchers, replay, and the checks of
//! a watch.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::brokers::{self, Destination, Kind, Message, ALL};
use crate::common::process::GatewayProcess;
use crate::common::proxy::Proxy;
use crate::common::{Api, Gateway, Receiver};

/// A gateway that may publish to the machine's three brokers.
async fn gateway() -> Gateway {
    gateway_with(|_| {}).await
}

async fn gateway_with(configure: impl FnOnce(&mut watchwire::config::ServeArgs)) -> Gateway {
    Gateway::start_with(|a| {
        a.brokers = ALL.iter().map(|k| k.broker_url(k.upstream())).collect();
        configure(a);
    })
    .await
}

async fn available(kinds: &[Kind], what: &str) -> bool {
    for kind in kinds {
        if !kind.available(what).await {
            return false;
        }
    }
    true
}

/// Watches `resource` on a channel of `destination`'s kind; the watch response.
async fn watch(api: &Api, resource: &str, id: &str, destination: &Destination) -> Value {
    api.watch_with(
        resource,
        json!({
            "id": id,
            "type": destination.kind.channel_type(),
            "address": destination.address,
            "token": "tok",
        }),
    )
    .await
}

/// Publishes `count` events on `resource` in batches of 100, each with `{"n": i}`;
/// the message number of the last (its cursor + 1).
async fn publish(api: &Api, resource: &str, from: usize, count: usize) -> u64 {
    let mut last = 0;
    for start in (from..from + count).step_by(100) {
        let batch: Vec<Value> = (start..(start + 100).min(from + count))
            .map(|n| json!({"resource": resource, "state": "exists", "data": {"n": n}}))
            .collect();
        let answer = api.publish(Value::Array(batch)).await;
        last = u64::from_str_radix(answer["cursor"].as_str().unwrap(), 16).unwrap() + 1;
    }
    last
}

/// The `n` of each event message, after the sync, with repeats (same number) dropped:
/// what a consumer de-duplicating by message number keeps. Asserts the numbers only
/// grow once repeats are dropped.
fn events_in_order(messages: &[Message]) -> Vec<u64> {
    let mut seen = BTreeSet::new();
    let mut last = 0;
    let mut ns = Vec::new();
    for message in messages {
        let number = message.number();
        if !seen.insert(number) {
            continue;
        }
        assert!(number > last, "{number} came after {last}");
        last = number;
        if message.state() != "sync" {
            ns.push(message.body_json()["n"].as_u64().expect("an event body"));
        }
    }
    ns
}

#[tokio::test]
async fn each_broker_gets_every_notification_in_order_with_every_header() {
    if !available(&ALL, "the broker delivery tests").await {
        return;
    }
    let gw = gateway().await;
    const EVENTS: usize = 1500;
    for kind in ALL {
        let mut destination = Destination::new(kind, kind.upstream()).await;
        let resource = format!("/orders/{}", kind.channel_type());
        let id = format!("order-{}", kind.channel_type());
        let watched = watch(&gw, &resource, &id, &destination).await;
        assert_eq!(watched["type"], kind.channel_type());
        publish(&gw, &resource, 0, EVENTS).await;

        let messages = destination.take(EVENTS + 1).await;
        let sync = &messages[0];
        assert_eq!(sync.state(), "sync", "{kind:?}");
        assert_eq!(sync.number(), 1);
        assert_eq!(sync.header("x-goog-channel-id"), Some(id.as_str()));
        assert_eq!(sync.header("x-goog-channel-token"), Some("tok"));
        assert_eq!(
            sync.header("x-goog-resource-id"),
            watched["resourceId"].as_str()
        );
        assert!(sync.header("x-goog-channel-expiration").is_some());
        assert!(sync.header("x-goog-resource-uri").is_some());
        assert_eq!(
            sync.header("x-watchwire-event-resource"),
            Some(resource.as_str())
        );
        let ns: Vec<u64> = messages[1..]
            .iter()
            .map(|m| m.body_json()["n"].as_u64().unwrap())
            .collect();
        assert_eq!(
            ns,
            (0..EVENTS as u64).collect::<Vec<_>>(),
            "{kind:?}: in order, no repeats"
        );
        let mut previous = 1;
        for message in &messages[1..] {
            assert_eq!(message.state(), "exists");
            assert_eq!(
                message.header("x-watchwire-previous-number"),
                Some(previous.to_string().as_str()),
                "{kind:?}: the chain of numbers"
            );
            previous = message.number();
            assert_eq!(
                message.header("content-type"),
                Some("application/json; charset=\"utf-8\"")
            );
            match kind {
                Kind::Nats => assert_eq!(message.id, format!("{id}-{}", message.number())),
                Kind::Amqp => {
                    assert_eq!(message.id, format!("{id}-{}", message.number()));
                    assert_eq!(message.persistent, Some(true));
                }
                Kind::Redis => assert_eq!(message.id, format!("{}-0", message.number())),
            }
        }
        let log = gw
            .get(&format!("/v1/channels/{id}/notifications?maxResults=1"))
            .await
            .expect(200)
            .json;
        let attempt = &log["items"][0]["recentAttempts"][0];
        assert_eq!(attempt["brokerStatus"], "acked", "{kind:?}: {log}");
        assert_eq!(log["items"][0]["status"], "delivered");
        let shown = gw.get(&format!("/v1/channels/{id}")).await.expect(200).json;
        assert_eq!(shown["type"], kind.channel_type(), "{shown}");
        destination.finish().await;
    }
}

#[tokio::test]
async fn a_signed_broker_notification_carries_its_signature_and_the_receiver_library_accepts_it() {
    if !available(&[Kind::Redis], "the signed broker message test").await {
        return;
    }
    let gw = gateway().await;
    let mut destination = Destination::new(Kind::Redis, brokers::REDIS).await;
    let secret = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    gw.watch_with(
        "/signed/doc",
        json!({"id": "signed-1", "type": "redis_stream", "address": destination.address,
               "params": {"signingSecret": secret}}),
    )
    .await;
    gw.publish(json!({"resource": "/signed/doc", "state": "exists", "data": {"a": 1}}))
        .await;
    let messages = destination.take(2).await;
    let channel = watchwire::receiver::Channel::new("signed-1")
        .with_signing_secret(secret)
        .unwrap();
    for message in &messages {
        let headers: Vec<(String, String)> = message
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let checked = channel
            .receive(headers, &message.body)
            .unwrap_or_else(|e| panic!("{e} for {message:?}"));
        assert_eq!(checked.message_number, message.number());
    }
    destination.finish().await;
}

#[tokio::test]
async fn an_unroutable_amqp_message_waits_as_no_route_until_a_queue_is_bound() {
    if !available(&[Kind::Amqp], "the unroutable AMQP test").await {
        return;
    }
    let gw = gateway().await;
    let amqp = brokers::amqp_channel().await;
    let exchange = brokers::unique("ww-test-ex-");
    amqp.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Direct,
        lapin::options::ExchangeDeclareOptions {
            auto_delete: false,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .unwrap();
    let address = format!(
        "amqp://{}/%2f?exchange={exchange}&routing_key=calendar",
        brokers::AMQP
    );
    gw.watch_with(
        "/unroutable/cal",
        json!({"id": "unroutable", "type": "amqp", "address": address}),
    )
    .await;
    gw.publish(json!({"resource": "/unroutable/cal", "state": "exists", "data": {"n": 0}}))
        .await;
    assert_eq!(gw.await_last_error("unroutable").await, "noRoute");
    let shown = gw.get("/v1/channels/unroutable").await.json;
    let detail = shown["delivery"]["lastError"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("NO_ROUTE") && detail.contains(&exchange),
        "{detail}"
    );

    // A queue bound now gets the sync and the event: nothing was dropped.
    let queue = brokers::unique("ww-test-bound-");
    brokers::declare_queue(&amqp, &queue).await;
    amqp.queue_bind(
        queue.as_str().into(),
        exchange.as_str().into(),
        "calendar".into(),
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap();
    let delivered = gw
        .get_until(
            "/v1/channels/unroutable/notifications",
            "both delivered after the binding",
            |log| {
                log["items"].as_array().is_some_and(|items| {
                    items.len() == 2 && items.iter().all(|i| i["status"] == "delivered")
                })
            },
        )
        .await;
    let sync = &delivered["items"][0];
    assert_eq!(sync["state"], "sync");
    let attempts = sync["recentAttempts"].as_array().unwrap();
    assert_eq!(attempts[0]["reason"], "noRoute", "{sync}");
    assert_eq!(attempts.last().unwrap()["brokerStatus"], "acked", "{sync}");
    let got = amqp
        .basic_get(queue.as_str().into(), Default::default())
        .await
        .unwrap()
        .expect("the sync is in the queue");
    assert_eq!(
        got.delivery
            .properties
            .message_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "unroutable-1"
    );
    let _ = amqp
        .queue_delete(queue.as_str().into(), Default::default())
        .await;
    let _ = amqp
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
}

#[tokio::test]
async fn a_broker_outage_through_a_cut_proxy_loses_nothing_and_keeps_order() {
    if !available(&ALL, "the broker outage test").await {
        return;
    }
    let mut proxies = Vec::new();
    for kind in ALL {
        proxies.push(Proxy::start(kind.upstream().parse().unwrap()).await);
    }
    let authority = |i: usize| format!("127.0.0.1:{}", proxies[i].port);
    let gw = Gateway::start_with(|a| {
        a.brokers = ALL
            .iter()
            .enumerate()
            .map(|(i, k)| k.broker_url(&authority(i)))
            .collect();
        a.delivery_timeout = Duration::from_secs(2);
    })
    .await;
    for (i, kind) in ALL.into_iter().enumerate() {
        let mut destination = Destination::new(kind, &authority(i)).await;
        let resource = format!("/outage/{}", kind.channel_type());
        let id = format!("outage-{}", kind.channel_type());
        watch(&gw, &resource, &id, &destination).await;
        let last = publish(&gw, &resource, 0, 100).await;
        let before = destination.until_number(last).await;

        proxies[i].cut();
        let last = publish(&gw, &resource, 100, 100).await;
        let reason = gw.await_last_error(&id).await;
        assert!(
            ["brokerUnavailable", "timeout"].contains(&reason.as_str()),
            "{kind:?}: {reason}"
        );
        proxies[i].heal();
        let mut messages = before;
        messages.extend(destination.until_number(last).await);
        assert_eq!(
            events_in_order(&messages),
            (0..200).collect::<Vec<u64>>(),
            "{kind:?}: every event, in order, after the outage"
        );
        destination.finish().await;
    }
}

#[tokio::test]
async fn a_broker_that_is_down_is_a_failing_host_and_never_holds_up_other_channels() {
    if !available(&[Kind::Redis], "the broker isolation test").await {
        return;
    }
    // Nothing listens on the first broker: the gateway starts all the same.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let gw = Gateway::start_with(|a| {
        a.brokers = vec![
            format!("redis://{down}/0"),
            Kind::Redis.broker_url(brokers::REDIS),
        ];
    })
    .await;
    for i in 0..20 {
        gw.watch_with(
            "/isolated/doc",
            json!({"id": format!("down-{i}"), "type": "redis_stream",
                   "address": format!("redis://{down}/0?key=k{i}")}),
        )
        .await;
    }
    let mut healthy = Destination::new(Kind::Redis, brokers::REDIS).await;
    watch(&gw, "/isolated/doc", "healthy-redis", &healthy).await;
    let receiver = Receiver::start().await;
    gw.watch("/isolated/doc", "healthy-hook", &receiver.url())
        .await;
    publish(&gw, "/isolated/doc", 0, 50).await;

    let got = healthy.take(51).await;
    assert_eq!(events_in_order(&got), (0..50).collect::<Vec<u64>>());
    assert_eq!(receiver.take(51).await.len(), 51);
    // The host's probes go to one channel at a time, so which one fails first is the
    // host's choice.
    let listed = gw
        .get_until(
            "/v1/channels?maxResults=100",
            "a channel on the dead broker failing",
            |list| {
                list["items"].as_array().is_some_and(|items| {
                    items.iter().any(|c| {
                        c["delivery"]["lastError"]["reason"] == "brokerUnavailable"
                            && c["delivery"]["failingSince"].is_string()
                    })
                })
            },
        )
        .await;
    let failing = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["delivery"]["lastError"]["reason"] == "brokerUnavailable")
        .unwrap();
    assert!(
        failing["delivery"]["lastError"]["detail"]
            .as_str()
            .unwrap()
            .contains(&down.to_string()),
        "{failing}"
    );
    assert_eq!(
        failing["delivery"]["pendingCount"], 51,
        "nothing lost: {failing}"
    );
    healthy.finish().await;
}

#[tokio::test]
async fn a_stopped_broker_channel_gets_nothing_more() {
    if !available(&[Kind::Redis], "the broker stop test").await {
        return;
    }
    let gw = gateway().await;
    let mut stopped = Destination::new(Kind::Redis, brokers::REDIS).await;
    let mut witness = Destination::new(Kind::Redis, brokers::REDIS).await;
    let watched = watch(&gw, "/stop/doc", "to-stop", &stopped).await;
    watch(&gw, "/stop/doc", "witness", &witness).await;
    publish(&gw, "/stop/doc", 0, 1).await;
    assert_eq!(stopped.take(2).await.len(), 2);
    assert_eq!(witness.take(2).await.len(), 2);
    assert_eq!(
        gw.stop("to-stop", watched["resourceId"].as_str().unwrap())
            .await,
        204
    );
    publish(&gw, "/stop/doc", 1, 1).await;
    // The witness got the event published after the stop; the stopped channel did not.
    assert_eq!(witness.next().await.body_json()["n"], 1);
    assert!(stopped
        .nothing_within(Duration::from_millis(300))
        .await
        .is_none());
    stopped.finish().await;
    witness.finish().await;
}

#[tokio::test]
async fn watchers_filters_and_replays_reach_brokers() {
    if !available(&[Kind::Nats, Kind::Amqp], "the broker watcher test").await {
        return;
    }
    let gw = gateway().await;
    let mut nats = Destination::new(Kind::Nats, brokers::NATS).await;
    let created = gw
        .post(
            "/v1/watchers",
            &json!({"pattern": "/apps", "endpoint": nats.address,
                    "filter": {"data.kind": "mail"}}),
        )
        .await
        .expect(201)
        .json;
    let watcher = created["id"].as_str().unwrap();
    let shown = gw
        .get(&format!("/v1/channels/{watcher}"))
        .await
        .expect(200)
        .json;
    assert_eq!(shown["type"], "nats", "{shown}");
    gw.publish(json!([
        {"resource": "/apps/a", "state": "exists", "data": {"kind": "chat"}},
        {"resource": "/apps/b", "state": "exists", "data": {"kind": "mail"}},
    ]))
    .await;
    let got = nats.take(2).await;
    assert_eq!(got[0].state(), "sync");
    assert_eq!(got[1].header("x-watchwire-event-resource"), Some("/apps/b"));

    // A replay to JetStream within its duplicate window is acknowledged as a
    // duplicate (same Nats-Msg-Id), not stored twice.
    let since = got[0].header("x-watchwire-cursor").unwrap();
    gw.post(
        &format!("/v1/channels/{watcher}/replay"),
        &json!({"since": since}),
    )
    .await
    .expect(202);
    gw.get_until(
        &format!("/v1/channels/{watcher}/notifications"),
        "the replay acknowledged as a duplicate",
        |log| {
            log["items"].as_array().is_some_and(|items| {
                items.iter().any(|item| {
                    item["resource"] == "/apps/b"
                        && item["recentAttempts"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|a| a["brokerStatus"] == "duplicate"))
                })
            })
        },
    )
    .await;
    assert!(nats
        .nothing_within(Duration::from_millis(300))
        .await
        .is_none());

    // RabbitMQ keeps no ids: a replay arrives again, with its number.
    let mut amqp = Destination::new(Kind::Amqp, brokers::AMQP).await;
    watch(&gw, "/apps/c", "amqp-replayed", &amqp).await;
    publish(&gw, "/apps/c", 0, 3).await;
    let first = amqp.take(4).await;
    // A replay re-sends up to what the gateway has recorded as delivered; the last
    // message can reach the queue before its confirm reaches the gateway.
    gw.await_pending("amqp-replayed", 0).await;
    let since = first[0].header("x-watchwire-cursor").unwrap();
    gw.post(
        "/v1/channels/amqp-replayed/replay",
        &json!({"since": since}),
    )
    .await
    .expect(202);
    let again = amqp.until_number(first[3].number()).await;
    assert!(
        again.iter().any(|m| m.number() == first[1].number()),
        "replayed"
    );
    nats.finish().await;
    amqp.finish().await;
}

#[tokio::test]
async fn a_gateway_killed_mid_run_loses_nothing_on_its_way_to_each_broker() {
    if !available(&ALL, "the broker crash test").await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker_args: Vec<String> = ALL
        .iter()
        .flat_map(|k| ["--broker".to_string(), k.broker_url(k.upstream())])
        .collect();
    let args: Vec<&str> = broker_args.iter().map(String::as_str).collect();
    let mut gateway = GatewayProcess::start(dir.path(), &args);
    let mut destinations = Vec::new();
    for kind in ALL {
        let destination = Destination::new(kind, kind.upstream()).await;
        watch(
            &gateway,
            "/crash/orders",
            &format!("crash-{}", kind.channel_type()),
            &destination,
        )
        .await;
        destinations.push(destination);
    }
    publish(&gateway, "/crash/orders", 0, 300).await;
    // Killed while the brokers are still being fed.
    let first = destinations[0].take(50).await;
    gateway.kill9();

    let gateway = GatewayProcess::start(dir.path(), &args);
    let last = publish(&gateway, "/crash/orders", 300, 100).await;
    for (i, destination) in destinations.iter_mut().enumerate() {
        let mut messages = if i == 0 { first.clone() } else { vec![] };
        messages.extend(destination.until_number(last).await);
        assert_eq!(
            events_in_order(&messages),
            (0..400).collect::<Vec<u64>>(),
            "{:?}: every event once de-duplicated by number, in order",
            destination.kind
        );
        if destination.kind == Kind::Redis {
            let numbers: Vec<u64> = messages.iter().map(Message::number).collect();
            let unique: BTreeSet<u64> = numbers.iter().copied().collect();
            assert_eq!(numbers.len(), unique.len(), "Redis refused every repeat");
        }
    }
    for destination in destinations {
        destination.finish().await;
    }
}

#[tokio::test]
async fn a_watch_names_a_configured_broker_without_credentials() {
    let gw = gateway_with(|a| a.brokers = vec!["redis://127.0.0.1:6379/0".into()]).await;
    let attempt = |channel_type: &str, address: &str| {
        let body = json!({"id": "w1", "type": channel_type, "address": address});
        let gw = &gw;
        async move {
            gw.post("/calendar/v3/calendars/x/events/watch", &body)
                .await
        }
    };
    let reply = attempt("redis_stream", "redis://127.0.0.1:6380/0?key=k").await;
    reply.assert_error(400, "brokerNotAllowed");
    assert!(reply.text.contains("--broker"), "{}", reply.text);
    let reply = attempt("redis_stream", "redis://127.0.0.1:6379/1?key=k").await;
    reply.assert_error(400, "brokerNotAllowed");
    let reply = attempt("redis_stream", "redis://:hunter2@127.0.0.1:6379/0?key=k").await;
    reply.assert_error(400, "invalid");
    assert!(
        reply.text.contains("credentials") && !reply.text.contains("hunter2"),
        "{}",
        reply.text
    );
    let reply = attempt("redis_stream", "redis://127.0.0.1:6379/0").await;
    reply.assert_error(400, "invalid");
    assert!(reply.text.contains("?key="), "{}", reply.text);
    let reply = attempt("web_hook", "redis://127.0.0.1:6379/0?key=k").await;
    reply.assert_error(400, "invalid");
    assert!(reply.text.contains("redis_stream"), "{}", reply.text);
    let reply = attempt("nats", "https://example.com/hook").await;
    reply.assert_error(400, "invalid");
    let reply = attempt("kafka", "kafka://h/t").await;
    reply.assert_error(400, "invalid");
    assert!(reply.text.contains("redis_stream"), "{}", reply.text);
    let reply = gw
        .post(
            "/calendar/v3/calendars/x/events/watch",
            &json!({"id": "w1", "type": "redis_stream", "address": "redis://127.0.0.1:6379/0?key=k",
                    "auth": {"type": "headers", "headers": {"X-Api-Key": "s"}}}),
        )
        .await;
    reply.assert_error(400, "invalid");
    let reply = attempt("REDIS_STREAM", "redis://127.0.0.1:6379/0?key=k&maxlen=100").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["type"], "REDIS_STREAM",
        "echoed as given, as Google does"
    );
}

#[test]
fn a_broker_url_that_is_not_one_stops_the_gateway_naming_it_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let (status, output) = GatewayProcess::refused(
        dir.path(),
        &["--broker", "amqp://user:hunter2@mq.internal/%2f?exchange=x"],
    );
    assert!(!status.success());
    assert!(output.contains("--broker"), "{output}");
    assert!(!output.contains("hunter2"), "{output}");
}

/// A two-node cluster delivers broker channels like webhooks: the node that owns a
/// channel is killed mid-run, the other takes it over, and the brokers hold every event
/// in order (Redis and JetStream refusing what the new owner repeats).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_hands_broker_channels_over_without_loss_or_disorder() {
    if !available(&[Kind::Nats, Kind::Redis], "the broker cluster test").await {
        return;
    }
    let brokers = [Kind::Nats, Kind::Redis].map(|k| k.broker_url(k.upstream()));
    let extra = ["--broker", &brokers[0], "--broker", &brokers[1]];
    let Some(mut cluster) =
        crate::cluster::Cluster::start_with(2, "brokers", crate::cluster::LEASE, &extra)
    else {
        return;
    };
    let mut destinations = Vec::new();
    for kind in [Kind::Nats, Kind::Redis] {
        let destination = Destination::new(kind, kind.upstream()).await;
        let id = format!("clustered-{}", kind.channel_type());
        watch(&cluster.node(0).api, "/cluster/orders", &id, &destination).await;
        destinations.push((id, destination, Vec::new()));
    }
    let last = publish(&cluster.node(0).api, "/cluster/orders", 0, 200).await;
    for (_, destination, got) in destinations.iter_mut() {
        got.extend(destination.until_number(last).await);
    }
    // Kill the node that delivers the Redis channel; publish through the other.
    let owner = cluster.owner(0, "clustered-redis_stream").await.unwrap();
    let killed = owner.trim_start_matches('n').parse::<usize>().unwrap();
    let survivor = 1 - killed;
    cluster.kill9(killed);
    let last = publish(&cluster.node(survivor).api, "/cluster/orders", 200, 200).await;
    for (id, destination, got) in destinations.iter_mut() {
        got.extend(destination.until_number(last).await);
        assert_eq!(
            events_in_order(got),
            (0..400).collect::<Vec<u64>>(),
            "{id}: every event once de-duplicated, in order, across the handover"
        );
    }
    for (_, destination, _) in destinations {
        destination.finish().await;
    }
}
