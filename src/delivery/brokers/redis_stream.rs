//! Redis Streams: a notification is delivered when `XADD` with its entry ID succeeds.
//! The ID comes from the message number (`Message::entry_id`), so Redis refuses a
//! repeat; the refusal is counted as delivered once the entry under that ID is seen to
//! be this channel's. An entry ID newer than ours that is not ours means another writer
//! uses the key: the notification can never be added in order (`streamAhead`).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};

use super::address::{BrokerUrl, Target};
use super::link::Link;
use super::message::Message;
use super::{acked, failed, failure, retry};
use crate::delivery::destination::Answer;
use crate::model::FailureReason;
use crate::protocol::headers as h;

/// The stream field holding the body; each header is the field `header:<name>`.
pub const BODY_FIELD: &str = "body";

/// One Redis database's connection (multiplexed: every channel's commands share it).
pub struct RedisStreams {
    url: BrokerUrl,
    link: Link<MultiplexedConnection>,
    connect_timeout: Duration,
}

impl RedisStreams {
    pub fn new(url: &BrokerUrl, connect_timeout: Duration) -> RedisStreams {
        RedisStreams {
            link: Link::new(url.broker.to_string(), connect_timeout),
            url: url.clone(),
            connect_timeout,
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let client = redis::Client::open(self.url.url.as_str()).map_err(|e| e.to_string())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn publish(&self, target: &Target, message: &Message<'_>) -> Answer {
        let Target::RedisStream { key, maxlen } = target else {
            unreachable!("a Redis broker is given Redis targets")
        };
        let mut connection = match self.link.client(|| self.connect()).await {
            Ok(connection) => connection,
            Err(f) => return retry(f),
        };
        let id = message.entry_id();
        let mut xadd = redis::cmd("XADD");
        xadd.arg(key);
        if let Some(maxlen) = maxlen {
            xadd.arg("MAXLEN").arg("~").arg(maxlen);
        }
        xadd.arg(&id).arg(BODY_FIELD).arg(message.body());
        for (name, value) in message.headers() {
            xadd.arg(format!("header:{name}")).arg(value);
        }
        let added: Result<String, RedisError> = xadd.query_async(&mut connection).await;
        match added {
            Ok(id) => acked("acked", format!("entry {id} of {key}")),
            Err(e) if is_not_after_top(&e) => self.repeat(&mut connection, key, &id, message).await,
            Err(e) => self.error(e, key).await,
        }
    }

    /// `XADD` refused the ID as not after the stream's newest: delivered if the entry
    /// under it is this notification (a repeat), else another writer is ahead.
    async fn repeat(
        &self,
        connection: &mut MultiplexedConnection,
        key: &str,
        id: &str,
        message: &Message<'_>,
    ) -> Answer {
        let found: Result<Value, RedisError> = redis::cmd("XRANGE")
            .arg(key)
            .arg(id)
            .arg(id)
            .query_async(connection)
            .await;
        let channel_field = format!("header:{}", h::CHANNEL_ID);
        let channel = message
            .rendered
            .header(h::CHANNEL_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match found {
            Ok(entries) if entry_field(&entries, &channel_field).as_deref() == Some(channel) => {
                acked("duplicate", format!("entry {id} of {key} was already there"))
            }
            Ok(_) => failed(failure(
                FailureReason::StreamAhead,
                format!(
                    "the stream {key:?} on {} already holds entries after {id} that this channel did not write: another writer uses the key, and a stream takes entries only in order",
                    self.link.name()
                ),
            )),
            Err(e) => self.error(e, key).await,
        }
    }

    async fn error(&self, e: RedisError, key: &str) -> Answer {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            let text = e.to_string();
            self.link.broken(|_| true, &text).await;
            return retry(self.link.unavailable(text));
        }
        retry(failure(
            FailureReason::BrokerError,
            format!("{} refused XADD to {key:?}: {e}", self.link.name()),
        ))
    }
}

/// Redis's refusal of an entry ID that is not after the stream's newest.
fn is_not_after_top(e: &RedisError) -> bool {
    e.to_string()
        .contains("equal or smaller than the target stream top item")
}

/// The value of `field` in the first entry of an `XRANGE` answer.
fn entry_field(entries: &Value, field: &str) -> Option<String> {
    let Value::Array(entries) = entries else {
        return None;
    };
    let Value::Array(entry) = entries.first()? else {
        return None;
    };
    let Value::Array(fields) = entry.get(1)? else {
        return None;
    };
    fields.chunks(2).find_map(|pair| match pair {
        [Value::BulkString(name), Value::BulkString(value)] if name == field.as_bytes() => {
            String::from_utf8(value.clone()).ok()
        }
        _ => None,
    })
}
