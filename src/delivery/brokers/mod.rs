//! Brokers as destinations (docs/api.md §20): NATS JetStream, RabbitMQ and Redis
//! Streams, each another implementation of the seam (`destination.rs`), so order,
//! admission by host, retries, health and the delivery log are the webhook's own.
//!
//! A notification becomes one message: the body, every header as a message header
//! (`message.rs`), and `<channel id>-<message number>` as its id, so brokers that
//! de-duplicate do. It is delivered when the broker acknowledges it: JetStream's
//! `PubAck` (`nats.rs`), RabbitMQ's publisher confirm of a persistent, mandatory
//! message (`amqp.rs`), Redis's answer to an `XADD` whose entry ID comes from the
//! message number (`redis_stream.rs`). One connection per `--broker`, made on first
//! use and again after a failure (`link.rs`).

pub mod address;
#[cfg(feature = "brokers")]
mod amqp;
#[cfg(feature = "brokers")]
mod link;
mod message;
#[cfg(feature = "brokers")]
mod nats;
#[cfg(feature = "brokers")]
mod redis_stream;

use std::time::Duration;

use async_trait::async_trait;

use self::address::{serves, BrokerAddress, BrokerUrl, Target};
use self::message::Message;
use super::destination::{Answer, Destination, Verdict};
use super::render::Rendered;
use crate::model::{ChannelSpec, Failure, FailureReason};

/// How the gateway reaches brokers.
pub struct BrokerOptions {
    /// `--broker`.
    pub urls: Vec<BrokerUrl>,
    pub connect_timeout: Duration,
    /// A whole attempt's limit, the broker's acknowledgement included.
    pub timeout: Duration,
}

/// Every configured broker's connection, shared by the channels that deliver to it.
pub struct Brokers {
    connections: Vec<(BrokerUrl, Connection)>,
    timeout: Duration,
}

/// One broker's client.
enum Connection {
    #[cfg(feature = "brokers")]
    Nats(nats::Nats),
    #[cfg(feature = "brokers")]
    Amqp(amqp::Amqp),
    #[cfg(feature = "brokers")]
    Redis(redis_stream::RedisStreams),
}

impl Connection {
    #[cfg(feature = "brokers")]
    fn new(url: &BrokerUrl, connect_timeout: Duration) -> Connection {
        use address::BrokerKind;
        match url.broker.kind {
            BrokerKind::Nats => Connection::Nats(nats::Nats::new(url, connect_timeout)),
            BrokerKind::Amqp => Connection::Amqp(amqp::Amqp::new(url, connect_timeout)),
            BrokerKind::RedisStream => {
                Connection::Redis(redis_stream::RedisStreams::new(url, connect_timeout))
            }
        }
    }

    #[cfg_attr(not(feature = "brokers"), allow(unused_variables))]
    async fn publish(&self, target: &Target, message: &Message<'_>) -> Answer {
        match *self {
            #[cfg(feature = "brokers")]
            Connection::Nats(ref nats) => nats.publish(target, message).await,
            #[cfg(feature = "brokers")]
            Connection::Amqp(ref amqp) => amqp.publish(target, message).await,
            #[cfg(feature = "brokers")]
            Connection::Redis(ref redis) => redis.publish(target, message).await,
        }
    }
}

impl Brokers {
    /// Connects to nothing yet: each connection is made when an attempt first needs it,
    /// so a broker that is down never stops the gateway from starting.
    pub fn new(options: BrokerOptions) -> Brokers {
        // A build without brokers has none: the settings refuse every --broker.
        #[cfg(not(feature = "brokers"))]
        let connections = Vec::new();
        #[cfg(feature = "brokers")]
        let connections = options
            .urls
            .into_iter()
            .map(|url| {
                let connection = Connection::new(&url, options.connect_timeout);
                (url, connection)
            })
            .collect();
        Brokers {
            connections,
            timeout: options.timeout,
        }
    }

    /// A channel's broker destination: its address parsed once per worker wake-up.
    pub fn destination(&self, channel: &ChannelSpec) -> BrokerDestination<'_> {
        let route = BrokerAddress::parse(&channel.address)
            .map_err(|e| Failure {
                reason: FailureReason::BrokerError,
                detail: format!("the channel's address is not a broker address: {e}"),
                status: None,
            })
            .and_then(|address| {
                let connection = self
                    .connections
                    .iter()
                    .find(|(url, _)| serves(&url.broker, &address.broker))
                    .map(|(_, connection)| connection)
                    .ok_or_else(|| Failure {
                        reason: FailureReason::BrokerUnavailable,
                        detail: format!(
                            "no --broker of this gateway names {}; start it with one that does",
                            address.broker
                        ),
                        status: None,
                    })?;
                Ok((connection, address))
            });
        BrokerDestination {
            // As `api/channels.rs` looks the host up: the same key for the same address.
            host: super::hosts::host_key(&channel.address),
            route,
            timeout: self.timeout,
        }
    }
}

/// Where one channel's notifications go on its broker.
pub struct BrokerDestination<'a> {
    host: String,
    route: Result<(&'a Connection, BrokerAddress), Failure>,
    timeout: Duration,
}

#[async_trait]
impl Destination for BrokerDestination<'_> {
    fn host(&self) -> &str {
        &self.host
    }

    async fn send(&self, notification: Rendered) -> Answer {
        let (connection, address) = match &self.route {
            Ok(route) => route,
            Err(failure) => return retry(failure.clone()),
        };
        let message = Message::of(&notification);
        let publish = connection.publish(&address.target, &message);
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(answer) => answer,
            Err(_) => retry(Failure {
                reason: FailureReason::Timeout,
                detail: format!(
                    "{} did not acknowledge within {} ms",
                    address.broker,
                    self.timeout.as_millis()
                ),
                status: None,
            }),
        }
    }
}

/// Delivered: the broker acknowledged it (`acked`), or already held it (`duplicate`).
#[cfg_attr(not(feature = "brokers"), allow(dead_code))]
fn acked(acknowledgement: &'static str, excerpt: String) -> Answer {
    Answer {
        verdict: Verdict::Delivered,
        status: None,
        failure: None,
        excerpt: Some(excerpt),
        acknowledgement: Some(acknowledgement),
    }
}

/// Not delivered this time; tried again after the backoff.
fn retry(failure: Failure) -> Answer {
    Answer {
        verdict: Verdict::Retry { retry_after: None },
        status: None,
        failure: Some(failure),
        excerpt: None,
        acknowledgement: None,
    }
}

/// Not delivered, and never will be: the channel moves on.
#[cfg_attr(not(feature = "brokers"), allow(dead_code))]
fn failed(failure: Failure) -> Answer {
    Answer {
        verdict: Verdict::Failed,
        status: None,
        failure: Some(failure),
        excerpt: None,
        acknowledgement: None,
    }
}

#[cfg_attr(not(feature = "brokers"), allow(dead_code))]
fn failure(reason: FailureReason, detail: String) -> Failure {
    Failure {
        reason,
        detail,
        status: None,
    }
}
