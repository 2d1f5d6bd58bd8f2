//! raw: the loopback ceiling. 512-byte POSTs from a pooled reqwest client to the counting
//! receiver over `connections` connections, with no watchwire in between. Every other
//! throughput is also given as a ratio to it. Also one connection sending back to back:
//! its round trip is the floor under any publish→delivery latency, and its rate the
//! ceiling of one busy channel (strict order: one attempt in flight at a time).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::load::{self, PAYLOAD_BYTES};
use crate::receiver::Receiver;
use crate::stats::Percentiles;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Raw {
    pub connections: usize,
    pub payload_bytes: usize,
    pub seconds: f64,
    pub requests: u64,
    pub per_second: f64,
    /// Request round trips under that load.
    pub loaded: Percentiles,
    /// Round trips of one connection sending back to back.
    pub unloaded: Percentiles,
    /// Requests/s of that one connection: sequential request/response.
    #[serde(default)]
    pub sequential_per_second: f64,
    /// The benchmark's CPU (client and receiver, one process, from `/proc`) per request
    /// of the pooled load, µs.
    #[serde(default)]
    pub cpu_us_per_request: f64,
    /// The same for the one connection sending back to back.
    #[serde(default)]
    pub sequential_cpu_us_per_request: f64,
}

/// A short raw measurement (the pooled load, then one connection back to back), taken
/// right before and right after each scenario judged as a ratio to raw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub seconds: f64,
    pub requests: u64,
    pub per_second: f64,
    pub cpu_us_per_request: f64,
    pub sequential_per_second: f64,
    pub sequential_cpu_us_per_request: f64,
}

/// Raw before and after one scenario: the scenario's ratios are to their mean, and a
/// drift beyond [`STEADY_DRIFT`] makes them untrustworthy (the machine changed under
/// the measurement).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bracket {
    pub scenario: String,
    pub before: Sample,
    pub after: Sample,
    /// Means of before and after.
    pub per_second: f64,
    pub sequential_per_second: f64,
    pub cpu_us_per_request: f64,
    pub sequential_cpu_us_per_request: f64,
    /// `|after − before| / mean` of the pooled rate and of the sequential one.
    pub drift: f64,
    pub sequential_drift: f64,
    /// Both drifts within [`STEADY_DRIFT`].
    pub steady: bool,
}

/// The most raw may move between before and after for a ratio to it to be trusted.
pub const STEADY_DRIFT: f64 = 0.15;

impl Bracket {
    pub fn new(scenario: &str, before: Sample, after: Sample) -> Bracket {
        let mean = |a: f64, b: f64| (a + b) / 2.0;
        let drift = |a: f64, b: f64| (b - a).abs() / mean(a, b).max(1e-9);
        let d = drift(before.per_second, after.per_second);
        let sd = drift(before.sequential_per_second, after.sequential_per_second);
        Bracket {
            scenario: scenario.to_string(),
            per_second: mean(before.per_second, after.per_second),
            sequential_per_second: mean(before.sequential_per_second, after.sequential_per_second),
            cpu_us_per_request: mean(before.cpu_us_per_request, after.cpu_us_per_request),
            sequential_cpu_us_per_request: mean(
                before.sequential_cpu_us_per_request,
                after.sequential_cpu_us_per_request,
            ),
            drift: d,
            sequential_drift: sd,
            steady: d <= STEADY_DRIFT && sd <= STEADY_DRIFT,
            before,
            after,
        }
    }
}

/// How long a bracketing raw measurement loads: at most 2.5 s pooled, then 1 s of one
/// connection (less at quick sizes).
pub fn sample_seconds(sizes: &crate::scenarios::Sizes) -> (f64, f64) {
    let pooled = sizes.seconds.min(2.5);
    (pooled, pooled / 2.5)
}

/// A short raw measurement, see [`Sample`].
pub async fn sample(ctx: &Ctx) -> anyhow::Result<Sample> {
    let (pooled, sequential) = sample_seconds(&ctx.sizes);
    let receiver = Receiver::start().await?;
    let url = Arc::new(receiver.url("/raw"));
    let body = Bytes::from(load::payload(0, PAYLOAD_BYTES));
    let connections = ctx.sizes.connections;
    let client = load::client(connections)?;
    load::for_each(
        connections * 4,
        connections,
        post(client.clone(), url.clone(), body.clone()),
    )
    .await?;
    let cpu = crate::cpu::own_seconds;
    let before = receiver.counts().requests.load(Relaxed);
    let cpu_before = cpu().unwrap_or(0.0);
    let run = load::for_duration(
        connections,
        Duration::from_secs_f64(pooled),
        post(client, url.clone(), body.clone()),
    )
    .await?;
    let cpu_pooled = cpu().unwrap_or(0.0) - cpu_before;
    let arrived = receiver.counts().requests.load(Relaxed) - before;
    anyhow::ensure!(
        arrived == run.done,
        "the receiver counted {arrived} of {} requests",
        run.done
    );
    let one = load::client(1)?;
    load::for_each(10, 1, post(one.clone(), url.clone(), body.clone())).await?;
    let cpu_before = cpu().unwrap_or(0.0);
    let single =
        load::for_duration(1, Duration::from_secs_f64(sequential), post(one, url, body)).await?;
    let cpu_single = cpu().unwrap_or(0.0) - cpu_before;
    Ok(Sample {
        seconds: run.elapsed.as_secs_f64(),
        requests: run.done,
        per_second: run.per_second(),
        cpu_us_per_request: cpu_pooled * 1e6 / run.done.max(1) as f64,
        sequential_per_second: single.per_second(),
        sequential_cpu_us_per_request: cpu_single * 1e6 / single.done.max(1) as f64,
    })
}

/// One 512-byte POST to the receiver, answered `204`.
fn post(
    client: reqwest::Client,
    url: Arc<String>,
    body: Bytes,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>
       + Send
       + Sync
       + 'static {
    move |_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        Box::pin(async move {
            let response = client.post(url.as_str()).body(body).send().await?;
            anyhow::ensure!(
                response.status() == 204,
                "receiver answered {}",
                response.status()
            );
            Ok(())
        })
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Raw> {
    let sizes = &ctx.sizes;
    let receiver = Receiver::start().await?;
    let url = Arc::new(receiver.url("/raw"));
    let body = Bytes::from(load::payload(0, PAYLOAD_BYTES));
    let post = |client: reqwest::Client| post(client, url.clone(), body.clone());

    // Warm the pool so connection setup is not part of the figure.
    let loaded_client = load::client(sizes.connections)?;
    load::for_each(
        sizes.connections * 4,
        sizes.connections,
        post(loaded_client.clone()),
    )
    .await?;
    let before = receiver.counts().requests.load(Relaxed);
    let cpu_before = crate::cpu::own_seconds().unwrap_or(0.0);
    let run = load::for_duration(
        sizes.connections,
        Duration::from_secs_f64(sizes.seconds),
        post(loaded_client),
    )
    .await?;
    let cpu_pooled = crate::cpu::own_seconds().unwrap_or(0.0) - cpu_before;
    let arrived = receiver.counts().requests.load(Relaxed) - before;
    anyhow::ensure!(
        arrived == run.done,
        "the receiver counted {arrived} of {} requests",
        run.done
    );

    let single = (sizes.seconds * 1000.0).max(200.0) as usize;
    let cpu_before = crate::cpu::own_seconds().unwrap_or(0.0);
    let unloaded = load::for_each(single, 1, post(load::client(1)?)).await?;
    let cpu_single = crate::cpu::own_seconds().unwrap_or(0.0) - cpu_before;
    Ok(Raw {
        connections: sizes.connections,
        payload_bytes: PAYLOAD_BYTES,
        seconds: run.elapsed.as_secs_f64(),
        requests: run.done,
        per_second: run.per_second(),
        loaded: Percentiles::of_micros(run.latencies_us),
        sequential_per_second: unloaded.per_second(),
        cpu_us_per_request: cpu_pooled * 1e6 / run.done.max(1) as f64,
        sequential_cpu_us_per_request: cpu_single * 1e6 / unloaded.done.max(1) as f64,
        unloaded: Percentiles::of_micros(unloaded.latencies_us),
    })
}
