//! Load generation: the pooled client, payloads that carry their send time, publishing,
//! channel creation, and the two ways of driving N connections (for a time, or over a
//! fixed list of work).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::clock;

/// Body size of raw requests and of every event's `data` (the notification body).
pub const PAYLOAD_BYTES: usize = 512;

/// Where the timestamp sits in a payload: `{"t":"` then 20 digits.
const STAMP_AT: usize = 6;
const STAMP_LEN: usize = 20;

/// A pooled HTTP/1 client that keeps up to `connections` connections per host.
pub fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(120))
        .build()?)
}

/// A JSON object of exactly `size` bytes (at least 64) whose first field is the send
/// time: `{"t":"00000000000000001234","p":"xxxx…"}`.
pub fn payload(t_us: u64, size: usize) -> String {
    let head = format!("{{\"t\":\"{t_us:020}\",\"p\":\"");
    let pad = size.saturating_sub(head.len() + 2);
    let mut text = String::with_capacity(size);
    text.push_str(&head);
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str("\"}");
    text
}

/// The send time a [`payload`] carries, if `body` is one.
pub fn payload_timestamp(body: &[u8]) -> Option<u64> {
    let digits = body.get(STAMP_AT..STAMP_AT + STAMP_LEN)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// One event on `resource` whose data is a [`payload`] of [`PAYLOAD_BYTES`] stamped now.
pub fn event_json(resource: &str) -> String {
    sized_event_json(resource, PAYLOAD_BYTES)
}

/// One event on `resource` whose data is a [`payload`] of `data_bytes` stamped now.
pub fn sized_event_json(resource: &str, data_bytes: usize) -> String {
    format!(
        r#"{{"resource":"{resource}","state":"exists","data":{}}}"#,
        payload(clock::now_us(), data_bytes)
    )
}

/// A batch of events, one per resource, all stamped now.
pub fn batch_json<'a>(resources: impl IntoIterator<Item = &'a str>) -> String {
    let events: Vec<String> = resources.into_iter().map(event_json).collect();
    format!("[{}]", events.join(","))
}

/// `POST /v1/events`; succeeds only on `200` (the events are durable).
pub async fn publish(client: &reqwest::Client, gateway: &str, body: String) -> anyhow::Result<()> {
    let what = || "publish".to_string();
    post(client, format!("{gateway}/v1/events"), body, what).await
}

/// The body of a watch request for a channel of `channel_type` (`web_hook`, or a
/// broker's, docs/api.md §20) delivering to `address`, with an id and a token the size
/// of real ones (a UUID and 32 hex characters), and `auth`, a JSON object (docs/api.md
/// §17), when given.
pub fn watch_body(channel_type: &str, address: &str, auth: Option<&str>) -> String {
    let id = uuid::Uuid::new_v4();
    let token = uuid::Uuid::new_v4().simple();
    let auth = auth.map_or(String::new(), |auth| format!(r#","auth":{auth}"#));
    format!(
        r#"{{"id":"{id}","type":"{channel_type}","address":"{address}","token":"{token}"{auth}}}"#
    )
}

/// `POST {resource}/watch`; succeeds only on `200`.
pub async fn watch(
    client: &reqwest::Client,
    gateway: &str,
    resource: &str,
    body: String,
) -> anyhow::Result<()> {
    let what = || format!("watch on {resource}");
    post(client, format!("{gateway}{resource}/watch"), body, what).await
}

/// POSTs a JSON `body`; succeeds only on `200`. Errors name the request by `what()`,
/// built only then.
async fn post(
    client: &reqwest::Client,
    url: String,
    body: String,
    what: impl Fn() -> String,
) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("sending {}", what()))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        let text = response.text().await.unwrap_or_default();
        anyhow::bail!("{} answered {status}: {text}", what());
    }
    Ok(())
}

/// What a paced (open-loop) publisher did.
#[derive(Debug, Default)]
pub struct Paced {
    /// From the first publish sent to the last one sent.
    pub sending: Duration,
    /// Publish sent → its durable `200`, µs.
    pub acks_us: Vec<u32>,
    /// How late each publish was sent against its schedule, µs (the generator's own limit).
    pub lags_us: Vec<u32>,
}

/// Sends `events` publishes at `rate` per second on a schedule (an open loop: a slow
/// answer does not delay the next publish) and waits for every answer. Publish `i`'s
/// body is `body(i)`, built when it is sent, so the payload's stamp is its send time;
/// it goes to `gateways[i % gateways.len()]` (one gateway, or the nodes of a cluster in
/// turn). Fails on the first publish that is not answered `200`.
pub async fn paced<B>(
    client: &reqwest::Client,
    gateways: &[String],
    rate: u64,
    events: u64,
    body: B,
) -> anyhow::Result<Paced>
where
    B: Fn(u64) -> String + Send + Sync + 'static,
{
    anyhow::ensure!(!gateways.is_empty(), "no gateway to publish to");
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let body = Arc::new(body);
    let urls: Vec<Arc<str>> = gateways.iter().map(|g| Arc::from(g.as_str())).collect();
    let mut sent = tokio::task::JoinSet::new();
    let mut acks = Vec::with_capacity(events as usize);
    let mut lags = Vec::with_capacity(events as usize);
    let start = tokio::time::Instant::now();
    for i in 0..events {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        lags.push(due.elapsed().as_micros().min(u32::MAX as u128) as u32);
        let (client, body) = (client.clone(), body.clone());
        let url = urls[i as usize % urls.len()].clone();
        sent.spawn(async move {
            let began = Instant::now();
            publish(&client, &url, body(i)).await?;
            anyhow::Ok(began.elapsed().as_micros().min(u32::MAX as u128) as u32)
        });
        // Collect what has answered already, so a failure stops a long run early.
        while let Some(done) = sent.try_join_next() {
            acks.push(done??);
        }
    }
    let sending = start.elapsed();
    while let Some(done) = sent.join_next().await {
        acks.push(done??);
    }
    Ok(Paced {
        sending,
        acks_us: acks,
        lags_us: lags,
    })
}

/// What a connection loop did.
#[derive(Debug, Default)]
pub struct Run {
    /// Operations that succeeded.
    pub done: u64,
    /// From the start to the end of the last operation.
    pub elapsed: Duration,
    /// Duration of each operation, µs.
    pub latencies_us: Vec<u32>,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `op` back to back on `connections` concurrent tasks until `duration` is over
/// (a closed loop: each task sends its next request when the previous one answered).
pub async fn for_duration<F, Fut>(
    connections: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<Run>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let deadline = Instant::now() + duration;
    drive(connections, op, move |_| Instant::now() < deadline).await
}

/// Runs `op(0..n)` on `connections` concurrent tasks, each taking the next index.
pub async fn for_each<F, Fut>(n: usize, connections: usize, op: F) -> anyhow::Result<Run>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    drive(connections.min(n.max(1)), op, move |i| i < n as u64).await
}

async fn drive<F, Fut, C>(connections: usize, op: F, go_on: C) -> anyhow::Result<Run>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
    C: Fn(u64) -> bool + Send + Sync + 'static,
{
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let op = Arc::new(op);
    let go_on = Arc::new(go_on);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (next, op, go_on) = (next.clone(), op.clone(), go_on.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut last_end = Duration::ZERO;
                loop {
                    let i = next.fetch_add(1, Relaxed) as u64;
                    if !go_on(i) {
                        break;
                    }
                    let began = Instant::now();
                    op(i).await?;
                    latencies.push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    last_end = start.elapsed();
                }
                anyhow::Ok((latencies, last_end))
            })
        })
        .collect();
    let mut run = Run::default();
    for task in tasks {
        let (latencies, last_end) = task.await??;
        run.done += latencies.len() as u64;
        run.latencies_us.extend(latencies);
        run.elapsed = run.elapsed.max(last_end);
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_exact_size_and_carry_their_stamp() {
        for size in [64, 512, 1000] {
            let text = payload(123_456, size);
            assert_eq!(text.len(), size);
            assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
            assert_eq!(payload_timestamp(text.as_bytes()), Some(123_456));
        }
        assert_eq!(payload_timestamp(b"{}"), None);
    }
}
