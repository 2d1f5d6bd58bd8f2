//! The brokers of the tests (docs/api.md §20): the machine's NATS with JetStream,
//! RabbitMQ and Redis, each with a destination made for one test (a stream, a queue, a
//! stream key of its own) and a consumer written here that reads what the gateway put
//! there, as one kind of [`Message`] whatever the broker.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::PATIENCE;

pub const NATS: &str = "127.0.0.1:4222";
pub const AMQP: &str = "127.0.0.1:5672";
pub const REDIS: &str = "127.0.0.1:6379";

/// The kinds of broker, each with what a test needs to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nats,
    Amqp,
    Redis,
}

pub const ALL: [Kind; 3] = [Kind::Nats, Kind::Amqp, Kind::Redis];

impl Kind {
    pub fn channel_type(self) -> &'static str {
        match self {
            Kind::Nats => "nats",
            Kind::Amqp => "amqp",
            Kind::Redis => "redis_stream",
        }
    }

    /// Where the machine runs it.
    pub fn upstream(self) -> &'static str {
        match self {
            Kind::Nats => NATS,
            Kind::Amqp => AMQP,
            Kind::Redis => REDIS,
        }
    }

    /// The `--broker` URL of the broker at `authority` (the machine's, or a proxy).
    pub fn broker_url(self, authority: &str) -> String {
        match self {
            Kind::Nats => format!("nats://{authority}"),
            Kind::Amqp => format!("amqp://guest:guest@{authority}/%2f"),
            Kind::Redis => format!("redis://{authority}/0"),
        }
    }

    /// Whether the broker answers; a test that needs one that does not says so (and
    /// fails under CI).
    pub async fn available(self, what: &str) -> bool {
        let up = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(self.upstream()),
        )
        .await
        .is_ok_and(|c| c.is_ok());
        if !up {
            test_support::skip(
                what,
                &format!(
                    "{:?} on {} (.ci/run starts it; README, \"Testing\")",
                    self,
                    self.upstream()
                ),
            );
        }
        up
    }
}

/// One message as a consumer read it.
#[derive(Debug, Clone)]
pub struct Message {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// `Nats-Msg-Id`, the AMQP `message_id`, or the Redis entry ID.
    pub id: String,
    /// AMQP: the delivery mode (2: persistent).
    pub persistent: Option<bool>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn number(&self) -> u64 {
        self.header("x-goog-message-number")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no message number: {self:?}"))
    }

    pub fn state(&self) -> &str {
        self.header("x-goog-resource-state").unwrap_or_default()
    }

    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A destination made for one test, and its consumer.
pub struct Destination {
    pub kind: Kind,
    /// The channel address naming it on the broker at the authority it was made for.
    pub address: String,
    consumer: Consumer,
    /// What to delete when the test is done.
    name: String,
}

enum Consumer {
    Nats {
        jetstream: async_nats::jetstream::Context,
        messages: Box<async_nats::jetstream::consumer::pull::Stream>,
    },
    Amqp {
        channel: lapin::Channel,
        consumer: lapin::Consumer,
    },
    Redis {
        connection: redis::aio::MultiplexedConnection,
        last: String,
        read: std::collections::VecDeque<Message>,
    },
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{}x{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn amqp_channel() -> lapin::Channel {
    let connection = lapin::Connection::connect(
        &format!("amqp://guest:guest@{AMQP}/%2f"),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ answers");
    connection.create_channel().await.unwrap()
}

pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{REDIS}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers")
}

impl Destination {
    /// A new destination on the machine's broker of `kind`, named in the address as
    /// reached through `authority` (the broker itself, or a proxy in front of it).
    pub async fn new(kind: Kind, authority: &str) -> Destination {
        match kind {
            Kind::Nats => {
                let name = unique("WW");
                let subject = format!("ww.test.{name}");
                let client = async_nats::connect(NATS).await.expect("NATS answers");
                let jetstream = async_nats::jetstream::new(client);
                let stream = jetstream
                    .create_stream(async_nats::jetstream::stream::Config {
                        name: name.clone(),
                        subjects: vec![subject.clone()],
                        ..Default::default()
                    })
                    .await
                    .expect("JetStream makes a stream");
                let consumer = stream
                    .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
                    .await
                    .unwrap();
                let messages = Box::new(consumer.messages().await.unwrap());
                Destination {
                    kind,
                    address: format!("nats://{authority}/{subject}"),
                    consumer: Consumer::Nats {
                        jetstream,
                        messages,
                    },
                    name,
                }
            }
            Kind::Amqp => {
                let name = unique("ww-test-");
                let channel = amqp_channel().await;
                declare_queue(&channel, &name).await;
                let consumer = channel
                    .basic_consume(
                        name.as_str().into(),
                        "ww-test".into(),
                        lapin::options::BasicConsumeOptions {
                            no_ack: true,
                            ..Default::default()
                        },
                        Default::default(),
                    )
                    .await
                    .unwrap();
                Destination {
                    kind,
                    address: format!("amqp://{authority}/%2f?routing_key={name}"),
                    consumer: Consumer::Amqp { channel, consumer },
                    name,
                }
            }
            Kind::Redis => {
                let name = unique("ww:test:");
                Destination {
                    kind,
                    address: format!("redis://{authority}/0?key={name}"),
                    consumer: Consumer::Redis {
                        connection: redis_connection().await,
                        last: "0-0".into(),
                        read: Default::default(),
                    },
                    name,
                }
            }
        }
    }

    /// The next message; panics if none comes within `PATIENCE`.
    pub async fn next(&mut self) -> Message {
        match tokio::time::timeout(PATIENCE, self.read()).await {
            Ok(message) => message,
            Err(_) => panic!("no message reached {} within {PATIENCE:?}", self.address),
        }
    }

    /// The next `n` messages.
    pub async fn take(&mut self, n: usize) -> Vec<Message> {
        let mut messages = Vec::with_capacity(n);
        let deadline = Instant::now() + PATIENCE * 2;
        while messages.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.read()).await {
                Ok(message) => messages.push(message),
                Err(_) => panic!(
                    "{} of {n} messages reached {} in time",
                    messages.len(),
                    self.address
                ),
            }
        }
        messages
    }

    /// Messages until one with message number `last` has arrived (repeats included).
    pub async fn until_number(&mut self, last: u64) -> Vec<Message> {
        let mut messages = Vec::new();
        let deadline = Instant::now() + PATIENCE * 2;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match tokio::time::timeout(left, self.read()).await {
                Ok(message) => message,
                Err(_) => panic!(
                    "message {last} never reached {}; {} arrived, the last {:?}",
                    self.address,
                    messages.len(),
                    messages.last().map(Message::number)
                ),
            };
            let done = message.number() == last;
            messages.push(message);
            if done {
                return messages;
            }
        }
    }

    /// Whether anything arrives within `window` (to show that nothing does).
    pub async fn nothing_within(&mut self, window: Duration) -> Option<Message> {
        tokio::time::timeout(window, self.read()).await.ok()
    }

    async fn read(&mut self) -> Message {
        match &mut self.consumer {
            Consumer::Nats { messages, .. } => {
                let message = messages
                    .next()
                    .await
                    .expect("the consumer goes on")
                    .expect("a message");
                message.ack().await.unwrap();
                let mut headers = HashMap::new();
                let mut id = String::new();
                for (name, values) in message.headers.iter().flat_map(|h| h.iter()) {
                    let value = values.first().map(|v| v.to_string()).unwrap_or_default();
                    if name.to_string() == "Nats-Msg-Id" {
                        id = value.clone();
                    }
                    headers.insert(name.to_string().to_ascii_lowercase(), value);
                }
                Message {
                    headers,
                    body: message.payload.to_vec(),
                    id,
                    persistent: None,
                }
            }
            Consumer::Amqp { consumer, .. } => {
                let delivery = consumer
                    .next()
                    .await
                    .expect("the consumer goes on")
                    .expect("a delivery");
                let properties = &delivery.properties;
                let headers = properties
                    .headers()
                    .as_ref()
                    .map(|table| {
                        table
                            .inner()
                            .iter()
                            .map(|(name, value)| {
                                let value = match value {
                                    lapin::types::AMQPValue::LongString(s) => {
                                        String::from_utf8_lossy(s.as_bytes()).into_owned()
                                    }
                                    other => format!("{other:?}"),
                                };
                                (name.to_string().to_ascii_lowercase(), value)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Message {
                    headers,
                    body: delivery.data.clone(),
                    id: properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    persistent: Some(*properties.delivery_mode() == Some(2)),
                }
            }
            Consumer::Redis {
                connection,
                last,
                read,
            } => loop {
                if let Some(message) = read.pop_front() {
                    return message;
                }
                let answer: redis::Value = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(500)
                    .arg("BLOCK")
                    .arg(1000)
                    .arg("STREAMS")
                    .arg(&self.name)
                    .arg(&*last)
                    .query_async(connection)
                    .await
                    .unwrap();
                for message in xread_entries(&answer) {
                    *last = message.id.clone();
                    read.push_back(message);
                }
            },
        }
    }

    /// Deletes what the test made.
    pub async fn finish(self) {
        match self.consumer {
            Consumer::Nats { jetstream, .. } => {
                let _ = jetstream.delete_stream(&self.name).await;
            }
            Consumer::Amqp { channel, .. } => {
                let _ = channel
                    .queue_delete(self.name.as_str().into(), Default::default())
                    .await;
            }
            Consumer::Redis { mut connection, .. } => {
                let _: Result<i64, _> = redis::cmd("DEL")
                    .arg(&self.name)
                    .query_async(&mut connection)
                    .await;
            }
        }
    }

    /// The stream key, queue or stream name made for the test.
    pub fn name(&self) -> &str {
        &self.name
    }
}

pub async fn declare_queue(channel: &lapin::Channel, name: &str) {
    channel
        .queue_declare(
            name.into(),
            lapin::options::QueueDeclareOptions {
                auto_delete: false,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("RabbitMQ declares a queue");
}

/// The entries of an `XREAD` answer of one stream (nothing when it timed out).
pub fn xread_entries(answer: &redis::Value) -> Vec<Message> {
    use redis::Value;
    match answer {
        // RESP2: [[key, entries]]; RESP3: {key: entries}.
        Value::Array(streams) => match streams.first() {
            Some(Value::Array(stream)) => stream.get(1).map(redis_entries).unwrap_or_default(),
            _ => vec![],
        },
        Value::Map(streams) => streams
            .first()
            .map(|(_, entries)| redis_entries(entries))
            .unwrap_or_default(),
        _ => vec![],
    }
}

/// The entries of an `XRANGE` answer: `[[id, [field, value, …]], …]`.
pub fn redis_entries(entries: &redis::Value) -> Vec<Message> {
    use redis::Value;
    let Value::Array(entries) = entries else {
        return vec![];
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    };
    entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(entry) = entry else {
                return None;
            };
            let id = text(entry.first()?);
            let Value::Array(fields) = entry.get(1)? else {
                return None;
            };
            let mut headers = HashMap::new();
            let mut body = Vec::new();
            for pair in fields.chunks(2) {
                let [name, value] = pair else { continue };
                let name = text(name);
                match name.strip_prefix("header:") {
                    Some(header) => {
                        headers.insert(header.to_ascii_lowercase(), text(value));
                    }
                    None if name == "body" => {
                        if let Value::BulkString(b) = value {
                            body = b.clone();
                        }
                    }
                    None => {}
                }
            }
            Some(Message {
                headers,
                body,
                id,
                persistent: None,
            })
        })
        .collect()
}
