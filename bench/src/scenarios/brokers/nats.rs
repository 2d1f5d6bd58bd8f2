//! NATS JetStream: one stream (file storage, the server's default) taking `NAME.*`,
//! channel `i` publishing to the subject `NAME.i`; one pull consumer over the whole
//! stream without acknowledgements, which reads every subject's messages in the order
//! the stream stored them.

use anyhow::{anyhow, Context};
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use tokio::task::JoinSet;

use crate::receiver::Sink;

/// Messages the consumer asks for at a time.
const BATCH: usize = 1000;

/// The stream, to delete.
pub struct Made {
    jetstream: jetstream::Context,
    stream: String,
}

impl Made {
    pub async fn remove(self) -> anyhow::Result<()> {
        self.jetstream
            .delete_stream(&self.stream)
            .await
            .map_err(|e| anyhow!("deleting the stream {}: {e}", self.stream))?;
        Ok(())
    }
}

/// The stream `name` on the server at `url` and its consumer (counting into `sink`);
/// what was made, the channels' addresses and a description.
pub async fn create(
    url: &str,
    name: &str,
    channels: usize,
    sink: Sink,
    consumers: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<(Made, Vec<String>, String)> {
    let authority = super::authority(&reqwest::Url::parse(url)?, 4222)?;
    let client = async_nats::connect(url)
        .await
        .map_err(|e| anyhow!("connecting: {e}"))?;
    let jetstream = jetstream::new(client);
    let stream = jetstream
        .create_stream(stream::Config {
            name: name.to_string(),
            subjects: vec![format!("{name}.*")],
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("JetStream made no stream: {e}"))?;
    let made = Made {
        jetstream,
        stream: name.to_string(),
    };
    let messages = async {
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                ack_policy: consumer::AckPolicy::None,
                ..Default::default()
            })
            .await?;
        consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .messages()
            .await
            .map_err(anyhow::Error::from)
    }
    .await;
    let mut messages = match messages {
        Ok(messages) => messages,
        Err(e) => {
            let _ = made.remove().await;
            return Err(e.context("consuming the stream"));
        }
    };
    consumers.spawn(async move {
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| anyhow!("reading the stream: {e}"))?;
            let headers = message
                .headers
                .as_ref()
                .context("a message without headers")?;
            let (channel, number, state) =
                super::identity(|name| headers.get(name).map(|v| v.as_str()))?;
            sink.notification(channel, number, state, message.payload.clone());
        }
        anyhow::bail!("the stream's messages ended")
    });
    let addresses = (0..channels)
        .map(|i| format!("{authority}/{name}.{i}"))
        .collect();
    let description =
        "one JetStream stream (file storage), a subject per channel; one pull consumer, no acks"
            .to_string();
    Ok((made, addresses, description))
}
