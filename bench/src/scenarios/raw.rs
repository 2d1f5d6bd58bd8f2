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
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Raw> {
    let sizes = &ctx.sizes;
    let receiver = Receiver::start().await?;
    let url = Arc::new(receiver.url("/raw"));
    let body = Bytes::from(load::payload(0, PAYLOAD_BYTES));
    let post = |client: reqwest::Client| {
        let (url, body) = (url.clone(), body.clone());
        move |_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            async move {
                let response = client.post(url.as_str()).body(body).send().await?;
                anyhow::ensure!(
                    response.status() == 204,
                    "receiver answered {}",
                    response.status()
                );
                Ok(())
            }
        }
    };

    // Warm the pool so connection setup is not part of the figure.
    let loaded_client = load::client(sizes.connections)?;
    load::for_each(
        sizes.connections * 4,
        sizes.connections,
        post(loaded_client.clone()),
    )
    .await?;
    let before = receiver.counts().requests.load(Relaxed);
    let run = load::for_duration(
        sizes.connections,
        Duration::from_secs_f64(sizes.seconds),
        post(loaded_client),
    )
    .await?;
    let arrived = receiver.counts().requests.load(Relaxed) - before;
    anyhow::ensure!(
        arrived == run.done,
        "the receiver counted {arrived} of {} requests",
        run.done
    );

    let single = (sizes.seconds * 1000.0).max(200.0) as usize;
    let unloaded = load::for_each(single, 1, post(load::client(1)?)).await?;
    Ok(Raw {
        connections: sizes.connections,
        payload_bytes: PAYLOAD_BYTES,
        seconds: run.elapsed.as_secs_f64(),
        requests: run.done,
        per_second: run.per_second(),
        loaded: Percentiles::of_micros(run.latencies_us),
        sequential_per_second: unloaded.per_second(),
        unloaded: Percentiles::of_micros(unloaded.latencies_us),
    })
}
