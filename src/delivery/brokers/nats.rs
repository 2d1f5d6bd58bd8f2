//! NATS JetStream: a notification is delivered when the stream that takes its subject
//! answers the publish with a `PubAck`. `Nats-Msg-Id` is the message's id, so a repeat
//! within the stream's duplicate window is acknowledged as a duplicate, not stored twice.

use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::HeaderMap;

use super::address::{BrokerUrl, Target};
use super::link::Link;
use super::message::Message;
use super::{acked, failed, failure, retry};
use crate::delivery::destination::Answer;
use crate::model::FailureReason;

/// One NATS server's connection. Once made, the client itself reconnects after a
/// failure; while it is away attempts fail at once (`brokerUnavailable`) rather than
/// queueing in the client.
pub struct Nats {
    url: BrokerUrl,
    link: Link<async_nats::jetstream::Context>,
}

impl Nats {
    pub fn new(url: &BrokerUrl, connect_timeout: Duration) -> Nats {
        Nats {
            link: Link::new(url.broker.to_string(), connect_timeout),
            url: url.clone(),
        }
    }

    async fn connect(&self) -> Result<async_nats::jetstream::Context, String> {
        let client = async_nats::ConnectOptions::new()
            .name("watchwire")
            .connect(self.url.url.as_str())
            .await
            .map_err(|e| e.to_string())?;
        Ok(async_nats::jetstream::new(client))
    }

    pub async fn publish(&self, target: &Target, message: &Message<'_>) -> Answer {
        let Target::Nats { subject } = target else {
            unreachable!("a NATS broker is given NATS targets")
        };
        let jetstream = match self.link.client(|| self.connect()).await {
            Ok(jetstream) => jetstream,
            Err(f) => return retry(f),
        };
        if jetstream.client().connection_state() != State::Connected {
            return retry(self.link.unavailable("reconnecting".into()));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in message.headers() {
            headers.insert(name, value);
        }
        headers.insert(async_nats::header::NATS_MESSAGE_ID, message.id.as_str());
        let body = bytes::Bytes::copy_from_slice(message.body());
        let ack = match jetstream
            .publish_with_headers(subject.clone(), headers, body)
            .await
        {
            Ok(future) => future.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(ack) => acked(
                if ack.duplicate { "duplicate" } else { "acked" },
                format!("stream {} sequence {}", ack.stream, ack.sequence),
            ),
            Err(e) => {
                let detail = |what: &str| format!("{}: {what}", self.link.name());
                match e.kind() {
                    PublishErrorKind::StreamNotFound => retry(failure(
                        FailureReason::NoRoute,
                        detail(&format!(
                            "no JetStream stream takes the subject {subject:?}"
                        )),
                    )),
                    PublishErrorKind::TimedOut => retry(failure(
                        FailureReason::Timeout,
                        detail("JetStream did not acknowledge in time"),
                    )),
                    PublishErrorKind::BrokenPipe => {
                        retry(self.link.unavailable("the connection broke".into()))
                    }
                    PublishErrorKind::MaxPayloadExceeded => failed(failure(
                        FailureReason::BrokerError,
                        detail(&format!(
                            "the message is larger than the server takes ({e})"
                        )),
                    )),
                    _ => retry(failure(
                        FailureReason::Nack,
                        detail(&format!("JetStream refused the message: {e}")),
                    )),
                }
            }
        }
    }
}
