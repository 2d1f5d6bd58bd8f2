//! nats, amqp, redis: the fan-out's headline point (`fanout_channels` channels on one
//! collection, the same events in the same batches) with every channel delivering into
//! a broker (docs/api.md §20) instead of to the receiver's webhook: NATS JetStream (one
//! stream taking a subject per channel), RabbitMQ with publisher confirms (a durable
//! queue per channel, through the default exchange) or Redis Streams (a stream key per
//! channel). A consumer in the benchmark reads everything the gateway put there and
//! counts it into the receiver ([`crate::receiver::Sink`]), which checks as it does for
//! webhooks that every notification arrived, in order per channel; here no duplicate
//! is allowed either. Delivered notifications per second (publish to consumer), the
//! gateway's CPU per notification and the broker's, each against the webhook `fanout`
//! headline of the same run.
//!
//! Each broker's destination, consumer and clean-up is in a file of its own ([`nats`],
//! [`amqp`], [`redis`]); what they make is named `wwbench…` with this process's id and
//! deleted at the end, whatever the outcome.

mod amqp;
mod nats;
mod redis;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::fanout::{self, Point, COLLECTION};
use super::{create_channels, Ctx, Endpoint};
use crate::cpu;
use crate::gateway::Gateway;
use crate::receiver::{Receiver, Sink};

/// The brokers the scenarios deliver to, as the gateway's `--broker` URLs (credentials
/// included); the benchmark's consumers connect to the same.
#[derive(Debug, Clone)]
pub struct BrokerUrls {
    pub nats: String,
    pub amqp: String,
    pub redis: String,
}

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Nats,
    Amqp,
    Redis,
}

impl Kind {
    /// The name the report gives it.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Nats => "NATS JetStream",
            Kind::Amqp => "RabbitMQ",
            Kind::Redis => "Redis Streams",
        }
    }

    /// A channel's `type` (docs/api.md §20).
    pub fn channel_type(self) -> &'static str {
        match self {
            Kind::Nats => "nats",
            Kind::Amqp => "amqp",
            Kind::Redis => "redis_stream",
        }
    }

    /// The broker's process on this machine (`/proc/PID/comm`), whose CPU is read.
    pub fn process(self) -> &'static str {
        match self {
            Kind::Nats => "nats-server",
            Kind::Amqp => "beam.smp",
            Kind::Redis => "redis-server",
        }
    }

    /// The target: delivered notifications per second at least this × the webhook
    /// fan-out of the same run (RabbitMQ confirms each message only once it is on
    /// disk, so it is given less).
    pub fn target_ratio(self) -> f64 {
        match self {
            Kind::Nats | Kind::Redis => 0.5,
            Kind::Amqp => 0.3,
        }
    }

    pub fn url(self, urls: &BrokerUrls) -> &str {
        match self {
            Kind::Nats => &urls.nats,
            Kind::Amqp => &urls.amqp,
            Kind::Redis => &urls.redis,
        }
    }
}

/// What one broker scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Broker {
    pub kind: Kind,
    /// What the channels delivered into and how the benchmark read it, e.g. "one
    /// JetStream stream (file storage), a subject per channel; one pull consumer, no
    /// acks".
    pub destination: String,
    /// The fan-out into the broker; its latency is publish → the benchmark's consumer.
    pub point: Point,
    /// The broker process's CPU time per delivered notification, µs (`None` when its
    /// process is not on this machine); consuming included.
    pub broker_cpu_us_per_notification: Option<f64>,
    /// The webhook fan-out at the same channel count and events, same run (`None`
    /// without a `fanout` run).
    pub webhook_per_second: Option<f64>,
    pub webhook_cpu_us_per_notification: Option<f64>,
    /// Notifications per second into the broker ÷ to the webhook (target ≥
    /// [`Kind::target_ratio`]).
    pub throughput_ratio: Option<f64>,
    /// The gateway's CPU per notification into the broker ÷ to the webhook.
    pub cpu_ratio: Option<f64>,
}

/// Where a scenario's channels deliver on a broker, and the consumer reading it.
pub struct Destination {
    pub kind: Kind,
    /// Channel `i`'s address.
    pub addresses: Vec<String>,
    /// What it is, for the results.
    pub description: String,
    /// The consumer's tasks; each ends only on an error.
    consumers: JoinSet<anyhow::Result<()>>,
    made: Made,
}

/// What a destination made on its broker, to delete.
enum Made {
    Nats(nats::Made),
    Amqp(amqp::Made),
    Redis(redis::Made),
}

impl Destination {
    /// Makes a destination of `channels` channels on the broker at `url` and starts
    /// consuming it into `sink`.
    pub async fn create(
        kind: Kind,
        url: &str,
        channels: usize,
        sink: Sink,
    ) -> anyhow::Result<Self> {
        let name = format!(
            "wwbench{}x{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
        );
        let mut consumers = JoinSet::new();
        let (made, addresses, description) = match kind {
            Kind::Nats => {
                let (made, addresses, description) =
                    nats::create(url, &name, channels, sink, &mut consumers).await?;
                (Made::Nats(made), addresses, description)
            }
            Kind::Amqp => {
                let (made, addresses, description) =
                    amqp::create(url, &name, channels, sink, &mut consumers).await?;
                (Made::Amqp(made), addresses, description)
            }
            Kind::Redis => {
                let (made, addresses, description) =
                    redis::create(url, &name, channels, sink, &mut consumers).await?;
                (Made::Redis(made), addresses, description)
            }
        };
        Ok(Destination {
            kind,
            addresses,
            description,
            consumers,
            made,
        })
    }

    /// Stops the consumer and deletes what was made. An error of the consumer's (it
    /// stopped reading), else of the deletion.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        let mut failed = None;
        while let Some(ended) = self.consumers.try_join_next() {
            let e = match ended {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(panicked) => anyhow::Error::new(panicked),
            };
            failed.get_or_insert(e.context("the consumer stopped"));
        }
        self.consumers.shutdown().await;
        let removed = match self.made {
            Made::Nats(made) => made.remove().await,
            Made::Amqp(made) => made.remove().await,
            Made::Redis(made) => made.remove().await,
        }
        .context("deleting what the scenario made on the broker");
        match failed {
            Some(e) => Err(e),
            None => removed,
        }
    }
}

/// `scheme://HOST:PORT` of a broker URL, without its credentials, path or query: what
/// a channel's address names it by.
fn authority(url: &reqwest::Url, default_port: u16) -> anyhow::Result<String> {
    let host = url.host_str().context("a broker URL names a host")?;
    let port = url.port().unwrap_or(default_port);
    Ok(format!("{}://{host}:{port}", url.scheme()))
}

/// The header values a consumer needs of a message: channel, message number, state.
/// Whatever lacks one is not a notification (and fails the scenario).
fn identity<'a>(get: impl Fn(&str) -> Option<&'a str>) -> anyhow::Result<(&'a str, u64, &'a str)> {
    use watchwire::protocol::headers as h;
    let channel = get(h::CHANNEL_ID).context("a message without a channel id")?;
    let number = get(h::MESSAGE_NUMBER)
        .and_then(|n| n.parse().ok())
        .context("a message without a message number")?;
    let state = get(h::RESOURCE_STATE).context("a message without a resource state")?;
    Ok((channel, number, state))
}

/// The fan-out's headline point into `kind`'s broker. `webhook`: the `fanout` headline
/// point of the same run.
pub async fn run(
    ctx: &Ctx,
    kind: Kind,
    raw_per_second: Option<f64>,
    webhook: Option<&Point>,
) -> anyhow::Result<Broker> {
    let channels = ctx.sizes.fanout_channels;
    let events = fanout::events(&ctx.sizes, channels);
    let url = kind.url(&ctx.brokers);
    let receiver = Receiver::start().await?;
    let destination = Destination::create(kind, url, channels, receiver.sink())
        .await
        .with_context(|| format!("{} at {}", kind.title(), redacted(url)))?;
    let description = destination.description.clone();
    let measured = measure(ctx, &destination, &receiver, url, events, raw_per_second).await;
    // Deleted whatever the outcome; a consumer that stopped is why a measurement failed.
    let finished = destination.finish().await;
    let (point, broker_cpu) = match (measured, finished) {
        (Ok(measured), Ok(())) => measured,
        (Err(e), Ok(())) | (Ok(_), Err(e)) => return Err(e),
        (Err(e), Err(consumer)) => return Err(e.context(format!("{consumer:#}"))),
    };
    // Only a point of the same size compares.
    let base = webhook.filter(|w| w.channels == channels && w.events == events);
    let over = |with: f64, without: f64| (without > 0.0).then(|| with / without);
    Ok(Broker {
        kind,
        destination: description,
        broker_cpu_us_per_notification: broker_cpu
            .map(|seconds| seconds * 1e6 / point.notifications as f64),
        webhook_per_second: base.map(|w| w.delivered_per_second),
        webhook_cpu_us_per_notification: base.map(|w| w.gateway_cpu_us_per_notification),
        throughput_ratio: base
            .and_then(|w| over(point.delivered_per_second, w.delivered_per_second)),
        cpu_ratio: base.and_then(|w| {
            over(
                point.gateway_cpu_us_per_notification,
                w.gateway_cpu_us_per_notification,
            )
        }),
        point,
    })
}

/// `url` without its credentials, to name it in a message.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "(an unreadable URL)".to_string(),
    }
}

/// A gateway with the broker, the channels into `destination`, and [`fanout::measure`];
/// the point and the broker's CPU seconds over it.
async fn measure(
    ctx: &Ctx,
    destination: &Destination,
    receiver: &Receiver,
    url: &str,
    events: u64,
    raw_per_second: Option<f64>,
) -> anyhow::Result<(Point, Option<f64>)> {
    let kind = destination.kind;
    let channels = destination.addresses.len();
    let launch = ctx
        .launch(&format!("{}-{channels}", kind.channel_type()))
        .await?
        .arg("--broker", url);
    let gateway = Gateway::start(&launch).await?;
    create_channels(
        std::slice::from_ref(&gateway),
        receiver,
        channels,
        ctx.sizes.connections,
        ctx.sizes.stall(),
        Endpoint::Broker(destination),
        |_| COLLECTION.to_string(),
    )
    .await
    .with_context(|| format!("{channels} channels into {}", kind.title()))?;
    let broker_before = cpu::processes_seconds(kind.process());
    let gateways = std::slice::from_ref(&gateway);
    let point = fanout::measure(ctx, gateways, receiver, channels, events, raw_per_second).await?;
    let broker_cpu = match (broker_before, cpu::processes_seconds(kind.process())) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    // What no webhook scenario fails on: a broker that de-duplicates (NATS by
    // `Nats-Msg-Id`, Redis by entry ID) stores a repeat once, and RabbitMQ repeats
    // only what it did not confirm in time, which a healthy run never sees.
    anyhow::ensure!(
        point.duplicates == 0,
        "{} notifications reached the consumer twice",
        point.duplicates
    );
    ctx.finish(gateway).await?;
    Ok((point, broker_cpu))
}
