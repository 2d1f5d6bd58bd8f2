//! RabbitMQ: a durable queue per channel, `NAME-i`, which channel `i` reaches through
//! the default exchange (`?routing_key=NAME-i`), so the gateway's persistent messages
//! are confirmed once on disk. A consumer per queue, each on an AMQP channel of its
//! own, without acknowledgements (RabbitMQ forgets a message once it handed it over);
//! a queue hands its messages over in order.

use anyhow::Context;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use tokio::task::JoinSet;

use crate::receiver::Sink;

/// The queues, to delete, and the connection that made them.
pub struct Made {
    connection: Connection,
    channel: lapin::Channel,
    queues: Vec<String>,
}

impl Made {
    pub async fn remove(self) -> anyhow::Result<()> {
        for queue in &self.queues {
            self.channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .with_context(|| format!("deleting the queue {queue}"))?;
        }
        let _ = self.connection.close(200, "done".into()).await;
        Ok(())
    }
}

/// `channels` queues named `name-i` on the broker at `url`, and their consumers
/// (counting into `sink`); what was made, the channels' addresses and a description.
pub async fn create(
    url: &str,
    name: &str,
    channels: usize,
    sink: Sink,
    consumers: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<(Made, Vec<String>, String)> {
    let parsed = reqwest::Url::parse(url)?;
    // The virtual host as the broker URL gives it (`/%2f`, or none: the default).
    let at = format!("{}{}", super::authority(&parsed, 5672)?, parsed.path());
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .context("connecting")?;
    let channel = connection.create_channel().await?;
    let mut made = Made {
        connection,
        channel,
        queues: Vec::with_capacity(channels),
    };
    let mut addresses = Vec::with_capacity(channels);
    let mut readers = Vec::with_capacity(channels);
    let declared: anyhow::Result<()> = async {
        for i in 0..channels {
            let queue = format!("{name}-{i}");
            let options = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            made.channel
                .queue_declare(queue.as_str().into(), options, FieldTable::default())
                .await
                .with_context(|| format!("declaring the queue {queue}"))?;
            made.queues.push(queue.clone());
            let reading = made.connection.create_channel().await?;
            let options = BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            };
            let consumer = reading
                .basic_consume(
                    queue.as_str().into(),
                    "wwbench".into(),
                    options,
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("consuming the queue {queue}"))?;
            readers.push(consumer);
            addresses.push(format!("{at}?routing_key={queue}"));
        }
        Ok(())
    }
    .await;
    if let Err(e) = declared {
        let _ = made.remove().await;
        return Err(e);
    }
    for mut consumer in readers {
        let sink = sink.clone();
        consumers.spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let delivery = delivery.context("reading a queue")?;
                let headers = delivery
                    .properties
                    .headers()
                    .as_ref()
                    .context("a message without headers")?;
                let (channel, number, state) =
                    super::identity(|name| match headers.inner().get(name) {
                        Some(AMQPValue::LongString(value)) => {
                            std::str::from_utf8(value.as_bytes()).ok()
                        }
                        _ => None,
                    })?;
                sink.notification(channel, number, state, delivery.data.into());
            }
            anyhow::bail!("a queue's consumer ended")
        });
    }
    let description =
        "a durable queue per channel, through the default exchange; a consumer per queue, no acks"
            .to_string();
    Ok((made, addresses, description))
}
