//! RabbitMQ (AMQP 0-9-1): a notification is delivered when RabbitMQ confirms it
//! (publisher confirms) as a persistent, mandatory message. A message no queue takes
//! comes back (`basic.return`) before its confirm: not delivered, reason `noRoute`,
//! tried again, so a binding made later still gets it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};

use super::address::{BrokerUrl, Target};
use super::link::Link;
use super::message::Message;
use super::{acked, failure, retry};
use crate::delivery::destination::Answer;
use crate::model::FailureReason;

/// One RabbitMQ virtual host's connection.
pub struct Amqp {
    url: String,
    link: Link<Session>,
}

/// A connection and its confirming channels, one per exchange: RabbitMQ closes a
/// channel that publishes to an exchange that does not exist, and that must not take
/// the other exchanges' messages in flight with it.
#[derive(Clone)]
struct Session {
    connection: Arc<Connection>,
    channels: Arc<tokio::sync::Mutex<HashMap<String, lapin::Channel>>>,
}

impl Session {
    async fn channel(&self, exchange: &str) -> lapin::Result<lapin::Channel> {
        let mut channels = self.channels.lock().await;
        if let Some(channel) = channels.get(exchange) {
            if channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let channel = self.connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channels.insert(exchange.to_string(), channel.clone());
        Ok(channel)
    }
}

impl Amqp {
    pub fn new(url: &BrokerUrl, connect_timeout: Duration) -> Amqp {
        Amqp {
            link: Link::new(url.broker.to_string(), connect_timeout),
            url: connect_url(&url.url),
        }
    }

    async fn connect(&self) -> Result<Session, String> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Session {
            connection: Arc::new(connection),
            channels: Default::default(),
        })
    }

    pub async fn publish(&self, target: &Target, message: &Message<'_>) -> Answer {
        let Target::Amqp {
            exchange,
            routing_key,
        } = target
        else {
            unreachable!("an AMQP broker is given AMQP targets")
        };
        let session = match self.link.client(|| self.connect()).await {
            Ok(session) => session,
            Err(f) => return retry(f),
        };
        if !session.connection.status().connected() {
            self.lost(&session, "the connection closed").await;
            return retry(self.link.unavailable("the connection closed".into()));
        }
        let mut headers = FieldTable::default();
        for (name, value) in message.headers() {
            headers.insert(
                ShortString::from(name),
                AMQPValue::LongString(LongString::from(value)),
            );
        }
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(ShortString::from(message.id.as_str()))
            .with_app_id(ShortString::from("watchwire"))
            .with_headers(headers);
        if !message.body().is_empty() {
            properties = properties.with_content_type(ShortString::from("application/json"));
        }
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirmed = async {
            let channel = session.channel(exchange).await?;
            channel
                .basic_publish(
                    ShortString::from(exchange.as_str()),
                    ShortString::from(routing_key.as_str()),
                    options,
                    message.body(),
                    properties,
                )
                .await?
                .await
        }
        .await;
        let to = || {
            format!(
                "exchange {:?} with routing key {:?} on {}",
                exchange,
                routing_key,
                self.link.name()
            )
        };
        match confirmed {
            Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {
                acked("acked", format!("confirmed by {}", self.link.name()))
            }
            Ok(Confirmation::Ack(Some(returned))) | Ok(Confirmation::Nack(Some(returned))) => {
                retry(failure(
                    FailureReason::NoRoute,
                    format!(
                        "RabbitMQ returned it unroutable ({} {}): no queue is bound to {}",
                        returned.reply_code,
                        returned.reply_text,
                        to()
                    ),
                ))
            }
            Ok(Confirmation::Nack(None)) => retry(failure(
                FailureReason::Nack,
                format!("RabbitMQ did not take it (nack) at {}", to()),
            )),
            Err(e) => {
                let text = e.to_string();
                if text.contains("NOT_FOUND") {
                    retry(failure(
                        FailureReason::NoRoute,
                        format!("RabbitMQ has no such exchange: {}; {text}", to()),
                    ))
                } else if !session.connection.status().connected() {
                    self.lost(&session, &text).await;
                    retry(self.link.unavailable(text))
                } else {
                    retry(failure(
                        FailureReason::BrokerError,
                        format!("publishing to {} failed: {text}", to()),
                    ))
                }
            }
        }
    }

    async fn lost(&self, session: &Session, why: &str) {
        self.link
            .broken(
                |current| Arc::ptr_eq(&current.connection, &session.connection),
                why,
            )
            .await;
    }
}

/// The URL lapin connects with: a path of `/` alone would be the virtual host `""` to
/// lapin, but means the default one, `/`, to the gateway (as no path does).
fn connect_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.path() == "/" => {
            parsed.set_path("/%2f");
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_slash_is_the_default_virtual_host() {
        assert_eq!(
            super::connect_url("amqp://u:p@h:5672/"),
            "amqp://u:p@h:5672/%2f"
        );
        assert_eq!(super::connect_url("amqp://h:5672/v"), "amqp://h:5672/v");
    }
}
