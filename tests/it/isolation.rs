//! Isolation of receiving hosts (docs/api.md §5.1): endpoints that hang,
//! refuse or answer slowly never delay a healthy channel; per-host fair shares and
//! circuit breaking; `Retry-After` shared by a host's channels; `params.maxRate` and
//! `--max-host-rate`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::common::process::GatewayProcess;
use crate::common::{metric_sample, Api, Gateway, Receiver, PATIENCE};

/// A host that accepts connections and never answers: each connection is held open
/// until the test ends.
struct BlackHole {
    url: String,
    accepted: Arc<AtomicUsize>,
}

impl BlackHole {
    async fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        BlackHole { url, accepted }
    }
}

/// A host that answers 204, but only after `delay`.
async fn slow_receiver(delay: Duration) -> String {
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        axum::http::StatusCode::NO_CONTENT
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// An address nothing listens on: connections are refused.
async fn refusing_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Publishes `count` events to `resource` one at a time and measures, for each, the
/// time from publishing to the healthy receiver having it.
async fn latencies(api: &Api, rx: &Receiver, resource: &str, count: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let published = Instant::now();
        api.publish(json!({"resource": resource, "state": "exists", "data": {"i": i}}))
            .await;
        let got = rx.next().await;
        assert_eq!(got.body_json()["i"], i, "in order, none skipped");
        out.push(got.at.duration_since(published));
    }
    out.sort();
    out
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

/// A channel's delivery state as the API shows it.
async fn host_state(api: &Api, id: &str) -> Value {
    api.get(&format!("/v1/channels/{id}"))
        .await
        .expect(200)
        .json["delivery"]["host"]
        .clone()
}

/// Hundreds of bad channels — hanging on one host and on many, refused, slow — share
/// a resource with one healthy channel, with few attempts allowed in flight. Before
/// isolation the hanging ones took every slot for the whole attempt timeout and a
/// healthy notification waited seconds; now each bad host gets a bounded share and
/// the healthy channel's latency stays where it was without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_refusing_and_slow_endpoints_never_delay_a_healthy_channel() {
    let dir = tempfile::tempdir().unwrap();
    // 64 in flight: far fewer than the bad channels, so they could fill them all.
    let gateway = GatewayProcess::start(dir.path(), &["--max-in-flight", "64"]);
    let api = gateway.api.clone();
    let rx = Receiver::start().await;
    api.watch("/shared", "healthy", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    let alone = latencies(&api, &rx, "/shared", 20).await;

    let hole = BlackHole::start().await;
    let mut holes = Vec::new();
    for _ in 0..40 {
        holes.push(BlackHole::start().await);
    }
    let refused = refusing_address().await;
    let slow = slow_receiver(Duration::from_secs(3)).await;
    let mut bad = 0;
    for i in 0..150 {
        api.watch("/shared", &format!("hole-{i}"), &hole.url).await;
        bad += 1;
    }
    for (i, other) in holes.iter().enumerate() {
        api.watch("/shared", &format!("holes-{i}"), &other.url)
            .await;
        bad += 1;
    }
    for i in 0..60 {
        api.watch("/shared", &format!("refused-{i}"), &refused)
            .await;
        api.watch("/shared", &format!("slow-{i}"), &slow).await;
        bad += 2;
    }
    assert_eq!(bad, 310);

    let beside = latencies(&api, &rx, "/shared", 40).await;
    let worst = *beside.last().unwrap();
    eprintln!(
        "healthy latency alone: p50 {:?}, max {:?}; beside {bad} bad channels: p50 {:?}, max {worst:?}",
        median(&alone),
        alone.last().unwrap(),
        median(&beside)
    );
    assert!(
        worst < Duration::from_secs(1),
        "a healthy notification waited {worst:?} beside {bad} bad channels"
    );
    assert!(
        median(&beside) <= median(&alone) + Duration::from_millis(25),
        "median latency {:?} beside bad channels, {:?} without them",
        median(&beside),
        median(&alone)
    );

    // No host held more than its share of connections: a host that never answered
    // gets two at a time, however many channels it has.
    let held = hole.accepted.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&held),
        "150 hanging channels on one host opened {held} connections"
    );
    for other in &holes {
        assert!(other.accepted.load(Ordering::SeqCst) <= 2);
    }

    // The refusing host is backed off as a whole, and it shows.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let host = host_state(&api, "refused-7").await;
        let text = api.get("/metrics").await.text;
        let backing_off = metric_sample(&text, "watchwire_hosts", &["state=\"backingOff\""]);
        // Between backoffs, while a probe is due or on the wire, there is no `until`.
        if host["state"] == "backingOff" && host["until"].is_string() && backing_off >= Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never backed off: {host}, {backing_off:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(host_state(&api, "healthy").await["state"], "open");
}

/// `Retry-After` on a `429` holds every channel of the host, not just the one that
/// was told; the channels' delivery state says the host is limited until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_every_channel_of_the_host() {
    let gateway = Gateway::start().await;
    let rx = Receiver::start().await;
    gateway.watch("/told", "told", &rx.url()).await;
    gateway.watch("/other", "other", &rx.url()).await;
    let syncs = rx.take(2).await;
    assert!(syncs.iter().all(|s| s.state() == "sync"));
    rx.respond(|got| match got.header("x-goog-channel-id") {
        Some("told") => (429, vec![("retry-after", "3".to_string())]),
        _ => (204, vec![]),
    });

    gateway
        .publish(json!({"resource": "/told", "state": "exists"}))
        .await;
    let told_at = rx.next().await.at;
    // The receiver has answered; the gateway takes the answer in a moment later.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let state = host_state(&gateway, "other").await["state"].clone();
        if state == "limited" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the host was never limited: {state}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rx.respond(|_| (204, vec![]));
    gateway
        .publish(json!({"resource": "/other", "state": "exists"}))
        .await;
    let mut arrivals = rx.take(2).await;
    arrivals.sort_by_key(|r| r.at);
    for got in &arrivals {
        let waited = got.at.duration_since(told_at);
        assert!(
            waited >= Duration::from_millis(2900),
            "{} was sent {waited:?} after the host said to wait 3 s",
            got.header("x-goog-channel-id").unwrap()
        );
    }
    assert_eq!(host_state(&gateway, "other").await["state"], "open");
}

/// The rate of consecutive arrivals, per second.
fn rate(arrivals: &[crate::common::Received]) -> f64 {
    let span = arrivals.last().unwrap().at - arrivals.first().unwrap().at;
    (arrivals.len() - 1) as f64 / span.as_secs_f64()
}

/// `params.maxRate` caps a channel's notifications per second, within 10 %; it is
/// echoed like every param, and a channel without it is not slowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_caps_a_channel() {
    let gateway = Gateway::start().await;
    let rx = Receiver::start().await;
    let created = gateway
        .watch_with(
            "/paced",
            json!({"id": "paced", "type": "web_hook", "address": rx.url(), "params": {"maxRate": "20"}}),
        )
        .await;
    assert_eq!(created["params"]["maxRate"], "20");
    rx.next().await;
    let events: Vec<Value> = (0..41)
        .map(|i| json!({"resource": "/paced", "state": "exists", "data": {"i": i}}))
        .collect();
    gateway.publish(json!(events)).await;
    let arrivals = rx.take(41).await;
    for (i, got) in arrivals.iter().enumerate() {
        assert_eq!(got.body_json()["i"], i);
    }
    let measured = rate(&arrivals);
    assert!(
        (18.0..=22.0).contains(&measured),
        "maxRate 20 delivered at {measured:.1}/s"
    );

    let reply = gateway
        .post(
            "/bad/watch",
            &json!({"id": "bad", "type": "web_hook", "address": rx.url(), "params": {"maxRate": "0"}}),
        )
        .await;
    reply.assert_error(400, "invalid");
}

/// `--max-host-rate` caps all of a host's channels together, within 10 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_host_rate_caps_a_host_across_its_channels() {
    let gateway = Gateway::start_with(|a| a.max_host_rate = Some(25)).await;
    let rx = Receiver::start().await;
    for id in ["a", "b", "c"] {
        gateway.watch("/host", id, &rx.url()).await;
    }
    rx.take(3).await;
    let events: Vec<Value> = (0..20)
        .map(|i| json!({"resource": "/host", "state": "exists", "data": {"i": i}}))
        .collect();
    gateway.publish(json!(events)).await;
    let arrivals = rx.take(60).await;
    let measured = rate(&arrivals);
    assert!(
        (22.5..=27.5).contains(&measured),
        "--max-host-rate 25 delivered at {measured:.1}/s to three channels of one host"
    );
}

/// When an attempt waits for its host, the channel's `nextRetry` and its delivery log
/// say when it really starts: the later of its own retry time and the end of its
/// host's backoff (a receiver answering 503 on a host that never answered: backed off
/// after two failures, for 1 s, while the channel's own schedule says 50 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_retry_is_when_the_attempt_really_starts_while_the_host_is_backed_off() {
    let (gateway, rx, entry) = twice_refused("held", Duration::from_millis(50)).await;
    let shown = gateway.get("/v1/channels/held").await.expect(200).json;
    let delivery = &shown["delivery"];
    assert_eq!(delivery["host"]["state"], "backingOff", "{shown}");
    let until = time(&delivery["host"]["until"]);
    let next_retry = time(&delivery["nextRetry"]);
    // The host holds its backoff as a monotonic instant and the channel its retry as
    // wall-clock ms: each converted once, they may differ by a millisecond.
    assert!(
        (next_retry - until).num_milliseconds().abs() <= 1,
        "the host's backoff ends after the schedule's 50 ms: {shown}"
    );
    let logged = time(&entry["nextRetry"]);
    assert!(
        (logged - next_retry).num_milliseconds().abs() <= 5,
        "the delivery log says the same: {entry} / {shown}"
    );

    let probe = rx.next().await;
    let started = chrono::Utc::now() - chrono::Duration::from_std(probe.at.elapsed()).unwrap();
    let early = (next_retry - started).num_milliseconds();
    assert!(
        early <= 20,
        "the probe came {early} ms before the time shown"
    );
    assert!(
        early > -600,
        "the probe came {} ms after the time shown",
        -early
    );
}

/// A host that keeps failing shows as backing off from its first backoff until a probe
/// succeeds, also between a backoff's end and the next probe (here the channel's own
/// retry, 2 s after each failure, comes after the host's 1 s backoff).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_keeps_failing_shows_as_backing_off_between_probes() {
    let (gateway, rx, _) = twice_refused("probed", Duration::from_secs(2)).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let host = host_state(&gateway, "probed").await;
        assert_eq!(host["state"], "backingOff", "{host}");
        if host["until"].is_null() {
            break; // the backoff is over; the next probe waits for the channel's retry
        }
        assert!(Instant::now() < deadline, "the backoff never ended: {host}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rx.respond(|_| (204, vec![]));
    rx.next().await;
    let deadline = Instant::now() + PATIENCE;
    while host_state(&gateway, "probed").await["state"] != "open" {
        assert!(
            Instant::now() < deadline,
            "a successful probe reopens the host"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A channel `id` whose receiver answers 503 and whose retry schedule is `retry`, once
/// its sync has failed twice: its host, which never answered, is backed off. Also the
/// sync's delivery-log entry then.
async fn twice_refused(id: &str, retry: Duration) -> (Gateway, Receiver, Value) {
    let gateway = Gateway::start_with(|a| a.retry_schedule = vec![retry]).await;
    let rx = Receiver::start().await;
    rx.respond(|_| (503, vec![]));
    gateway.watch(&format!("/{id}"), id, &rx.url()).await;
    rx.take(2).await;
    let entry = sync_entry_after(&gateway, id, 2).await;
    (gateway, rx, entry)
}

/// The sync's delivery-log entry once it shows `attempts` attempts.
async fn sync_entry_after(api: &Api, id: &str, attempts: u64) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let log = api
            .get(&format!("/v1/channels/{id}/notifications"))
            .await
            .expect(200)
            .json;
        let entry = log["items"][0].clone();
        if entry["attempts"].as_u64() >= Some(attempts) {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "{attempts} attempts never logged: {log}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// Channels whose OAuth 2.0 token endpoint hangs (docs/api.md §17) beside a healthy
/// channel: their attempts wait on the token, not on anything the healthy channel
/// needs, and each fails in time with reason `authFailed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_token_endpoint_never_delays_a_healthy_channel() {
    let gw = Gateway::start_with(|a| a.delivery_timeout = Duration::from_secs(1)).await;
    let rx = Receiver::start().await;
    gw.watch("/tokens", "healthy", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    let alone = latencies(&gw, &rx, "/tokens", 10).await;

    let hole = BlackHole::start().await;
    let endpoints = Receiver::start().await;
    for i in 0..40 {
        // Credentials of their own: forty token requests hang at once.
        let auth = json!({"type": "oauth2", "tokenUrl": hole.url, "clientId": format!("c{i}"), "clientSecret": "s"});
        let body = json!({"id": format!("stuck-{i}"), "type": "web_hook", "address": endpoints.url(), "auth": auth});
        gw.watch_with("/tokens", body).await;
    }
    let beside = latencies(&gw, &rx, "/tokens", 20).await;
    let worst = *beside.last().unwrap();
    assert!(
        worst < Duration::from_secs(1),
        "a healthy notification waited {worst:?} beside hanging token endpoints (alone: max {:?})",
        alone.last().unwrap()
    );
    assert!(
        hole.accepted.load(Ordering::SeqCst) > 0,
        "the token endpoint was asked"
    );
    assert_eq!(gw.await_last_error("stuck-0").await, "authFailed");
    endpoints.expect_silence(Duration::from_millis(100)).await;
}
