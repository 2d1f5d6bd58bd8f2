//! Redis Streams: a stream key per channel, `NAME:i`, to which the gateway `XADD`s each
//! notification under an entry ID made of its message number. One reader `XREAD`s
//! every key at once, from the last entry it read of each, waiting (`BLOCK`) while
//! there is nothing new; a key gives its entries in ID order.

use std::collections::HashMap;

use anyhow::{bail, Context};
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio::task::JoinSet;

use crate::receiver::Sink;

/// Entries `XREAD` takes of each key at a time.
const BATCH: usize = 1000;
/// How long an `XREAD` waits for something new, ms.
const BLOCK_MS: u64 = 1000;

/// The stream keys, to delete.
pub struct Made {
    connection: MultiplexedConnection,
    keys: Vec<String>,
}

impl Made {
    pub async fn remove(mut self) -> anyhow::Result<()> {
        let _: i64 = redis::cmd("DEL")
            .arg(&self.keys)
            .query_async(&mut self.connection)
            .await
            .context("deleting the stream keys")?;
        Ok(())
    }
}

/// `channels` stream keys named `name:i` on the server at `url` (made by the gateway's
/// first `XADD`), and their reader (counting into `sink`); what is to delete, the
/// channels' addresses and a description.
pub async fn create(
    url: &str,
    name: &str,
    channels: usize,
    sink: Sink,
    consumers: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<(Made, Vec<String>, String)> {
    let parsed = reqwest::Url::parse(url)?;
    // The database as the broker URL gives it (`/0`, or none: 0).
    let at = format!("{}{}", super::authority(&parsed, 6379)?, parsed.path());
    let client = redis::Client::open(url)?;
    // No response timeout: an XREAD answers only after BLOCK_MS when nothing is new.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    let connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("connecting")?;
    // The reader's own: a blocked XREAD would hold up every command behind it.
    let mut reader = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("connecting")?;
    let keys: Vec<String> = (0..channels).map(|i| format!("{name}:{i}")).collect();
    let addresses = keys.iter().map(|key| format!("{at}?key={key}")).collect();
    let index: HashMap<String, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (key.clone(), i))
        .collect();
    let read_keys = keys.clone();
    consumers.spawn(async move {
        let mut last = vec!["0-0".to_string(); read_keys.len()];
        loop {
            let answer: Value = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(&read_keys)
                .arg(&last)
                .query_async(&mut reader)
                .await
                .context("XREAD")?;
            for (key, entries) in streams(&answer)? {
                let i = *index.get(&key).context("XREAD answered a key not asked")?;
                let Value::Array(entries) = entries else {
                    bail!("XREAD answered {entries:?} for {key}");
                };
                for entry in entries {
                    last[i] = read_entry(entry, &sink)?;
                }
            }
        }
    });
    let description = format!(
        "a stream key per channel; one reader XREADing every key (BLOCK {BLOCK_MS} ms, COUNT {BATCH})"
    );
    Ok((Made { connection, keys }, addresses, description))
}

/// An `XREAD` answer as (key, entries) pairs: RESP2 `[[key, entries], …]`, RESP3
/// `{key: entries}`, nothing when it timed out.
fn streams(answer: &Value) -> anyhow::Result<Vec<(String, &Value)>> {
    let pairs: Vec<(&Value, &Value)> = match answer {
        Value::Nil => vec![],
        Value::Array(streams) => streams
            .iter()
            .map(|stream| match stream {
                Value::Array(pair) if pair.len() == 2 => Ok((&pair[0], &pair[1])),
                other => bail!("XREAD answered {other:?} for a stream"),
            })
            .collect::<anyhow::Result<_>>()?,
        Value::Map(streams) => streams
            .iter()
            .map(|(key, entries)| (key, entries))
            .collect(),
        other => bail!("XREAD answered {other:?}"),
    };
    pairs
        .into_iter()
        .map(|(key, entries)| Ok((text(key).context("a key that is no text")?, entries)))
        .collect()
}

/// Counts one entry `[id, [field, value, …]]` (the fields `body` and `header:NAME`) into
/// `sink`; its ID.
fn read_entry(entry: &Value, sink: &Sink) -> anyhow::Result<String> {
    let Value::Array(entry) = entry else {
        bail!("an entry that is not [id, fields]: {entry:?}");
    };
    let [id, Value::Array(fields)] = entry.as_slice() else {
        bail!("an entry that is not [id, fields]: {entry:?}");
    };
    let id = text(id).context("an entry ID that is no text")?;
    let field = |name: &str| {
        fields.chunks(2).find_map(|pair| match pair {
            [Value::BulkString(n), Value::BulkString(value)] if n == name.as_bytes() => {
                Some(value.as_slice())
            }
            _ => None,
        })
    };
    let (channel, number, state) = super::identity(|name| {
        field(&format!("header:{name}")).and_then(|v| std::str::from_utf8(v).ok())
    })
    .with_context(|| format!("entry {id}"))?;
    let body = Bytes::copy_from_slice(field("body").unwrap_or_default());
    sink.notification(channel, number, state, body);
    Ok(id)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
