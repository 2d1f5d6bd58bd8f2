//! backlog: one channel whose endpoint is dead (connection refused) while
//! `backlog_events` events are published to its resource, so that many notifications
//! are pending. The gateway's resident memory is sampled throughout: pending work must
//! live in the store, not in RAM.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::gateway::{rss_of, Gateway};
use crate::load;

/// Mirrors the gateway's per-channel queue (`delivery::outbox::QUEUE_CAPACITY`, 1024):
/// the most notifications one channel holds in memory before it reads the rest from the
/// store. The check reads `watchwire_queued_notifications`, the in-memory part of the
/// pending notifications, which must stay within it.
const QUEUE_CAPACITY: usize = 1024;

const RESOURCE: &str = "/bench/backlog";
/// Concurrent publishers of batches.
const PUBLISHERS: usize = 4;
/// Events per publish: the most the gateway accepts by default.
const BATCH: u64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backlog {
    pub pending: u64,
    pub publish_seconds: f64,
    pub publish_per_second: f64,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    /// `VmHWM` at the end: the most the gateway was resident at any time.
    pub peak_rss_bytes: u64,
    /// (events published so far, RSS in bytes) at each tenth of the run.
    pub rss_samples: Vec<(u64, u64)>,
    /// The gateway's own gauges at the end.
    pub queued_in_memory: f64,
    pub channels_backlogged: f64,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Backlog> {
    let sizes = &ctx.sizes;
    let gateway = Gateway::start(&ctx.launch("backlog").await?).await?;
    let client = load::client(PUBLISHERS)?;
    // An address nothing listens on: bind a port, then let it go.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("http://{}/gone", listener.local_addr()?)
    };
    load::watch(
        &client,
        &gateway.url,
        RESOURCE,
        load::watch_body("web_hook", &dead, None),
    )
    .await?;
    let rss_start = gateway.rss()?;

    let events = sizes.backlog_events as u64;
    let batch = BATCH;
    let batches = events.div_ceil(batch);
    let url = Arc::new(gateway.url.clone());
    let published = Arc::new(AtomicU64::new(0));
    let pid = gateway.pid();
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (publisher, counter, sampled) = (client.clone(), published.clone(), samples.clone());
    let run = load::for_each(batches as usize, PUBLISHERS, move |b| {
        let (client, url, counter, samples) = (
            publisher.clone(),
            url.clone(),
            counter.clone(),
            sampled.clone(),
        );
        let first = b * batch;
        let last = (first + batch).min(events);
        async move {
            let resources: Vec<String> = (first..last)
                .map(|i| format!("{RESOURCE}/e{}", i % 1000))
                .collect();
            load::publish(
                &client,
                &url,
                load::batch_json(resources.iter().map(String::as_str)),
            )
            .await?;
            let done = counter.fetch_add(last - first, Relaxed) + (last - first);
            // Sample at each tenth of the run.
            if (done * 10 / events) != ((done - (last - first)) * 10 / events) {
                samples
                    .lock()
                    .unwrap()
                    .push((done, rss_of(pid).unwrap_or(0)));
            }
            Ok(())
        }
    })
    .await?;
    anyhow::ensure!(
        published.load(Relaxed) == events,
        "published {} of {events} events",
        published.load(Relaxed)
    );
    // Publishes are acknowledged once committed; the router offers them to the channel
    // just after, so the channel may reach backlog mode a moment after the last answer.
    let settle = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let backlogged = loop {
        let backlogged = gateway
            .value(&client, "watchwire_channels_backlogged")
            .await?;
        if backlogged == 1.0
            || events <= QUEUE_CAPACITY as u64
            || std::time::Instant::now() > settle
        {
            break backlogged;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let queued = gateway
        .value(&client, "watchwire_queued_notifications")
        .await?;
    anyhow::ensure!(
        events <= QUEUE_CAPACITY as u64 || backlogged == 1.0,
        "the dead channel is not in backlog mode (gauge {backlogged})"
    );
    anyhow::ensure!(
        queued <= QUEUE_CAPACITY as f64,
        "{queued} notifications queued in memory, more than a channel's queue holds"
    );
    let rss_end = gateway.rss()?;
    let peak = gateway.peak_rss()?;
    ctx.finish(gateway).await?;
    let mut rss_samples = std::mem::take(&mut *samples.lock().unwrap());
    rss_samples.sort_unstable();
    Ok(Backlog {
        pending: events,
        publish_seconds: run.elapsed.as_secs_f64(),
        publish_per_second: events as f64 / run.elapsed.as_secs_f64().max(1e-9),
        rss_start_bytes: rss_start,
        rss_end_bytes: rss_end,
        peak_rss_bytes: peak,
        rss_samples,
        queued_in_memory: queued,
        channels_backlogged: backlogged,
    })
}
