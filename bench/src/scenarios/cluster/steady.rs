//! The publisher of the failover runs: events at a steady rate through the nodes that
//! are still up, each carrying its index, so the receiver's record shows which
//! acknowledged event reached which channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::load;

/// The collection the channels of the failover runs watch.
pub(super) const COLLECTION: &str = "/bench/cluster";

/// Events published at a steady rate through the nodes that are still up, each carrying
/// its index.
pub(super) struct Steady {
    shared: Arc<SteadyShared>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

#[derive(Default)]
struct SteadyShared {
    /// The nodes publishes go to, in turn.
    live: Mutex<Vec<Arc<str>>>,
    /// Publishes sent to each node and not answered yet.
    in_flight: Mutex<HashMap<Arc<str>, usize>>,
    acked: Mutex<Vec<u64>>,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl Steady {
    pub(super) fn start(urls: Vec<String>, rate: u64) -> anyhow::Result<Steady> {
        let shared = Arc::new(SteadyShared {
            live: Mutex::new(urls.iter().map(|u| Arc::from(u.as_str())).collect()),
            ..SteadyShared::default()
        });
        let stop = CancellationToken::new();
        let client = load::client(16)?;
        let task = tokio::spawn(publish_steadily(client, shared.clone(), rate, stop.clone()));
        Ok(Steady { shared, stop, task })
    }

    /// Sends nothing more to `url` and waits until what was sent there is answered.
    pub(super) async fn retire(&self, url: &str) -> anyhow::Result<()> {
        self.shared.live.lock().unwrap().retain(|u| &**u != url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let busy = self
                .shared
                .in_flight
                .lock()
                .unwrap()
                .get(url)
                .copied()
                .unwrap_or(0);
            if busy == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "publishes to {url} still unanswered after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops publishing, waits for every answer; returns the acknowledged indexes and the
    /// publishes that failed.
    pub(super) async fn finish(self) -> anyhow::Result<(Vec<u64>, u64, Option<String>)> {
        self.stop.cancel();
        self.task.await??;
        let mut acked = std::mem::take(&mut *self.shared.acked.lock().unwrap());
        acked.sort_unstable();
        let first = self.shared.first_failure.lock().unwrap().take();
        Ok((acked, self.shared.failures.load(Relaxed), first))
    }
}

async fn publish_steadily(
    client: reqwest::Client,
    shared: Arc<SteadyShared>,
    rate: u64,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = tokio::time::Instant::now();
    let mut sent = JoinSet::new();
    for i in 0u64.. {
        tokio::select! {
            _ = tokio::time::sleep_until(start + interval.mul_f64(i as f64)) => {}
            _ = stop.cancelled() => break,
        }
        let url = {
            let live = shared.live.lock().unwrap();
            anyhow::ensure!(!live.is_empty(), "no node left to publish to");
            live[i as usize % live.len()].clone()
        };
        *shared
            .in_flight
            .lock()
            .unwrap()
            .entry(url.clone())
            .or_insert(0) += 1;
        let (client, shared) = (client.clone(), shared.clone());
        sent.spawn(async move {
            let outcome = load::publish(&client, &url, indexed_event(i)).await;
            match outcome {
                Ok(()) => shared.acked.lock().unwrap().push(i),
                Err(e) => {
                    shared.failures.fetch_add(1, Relaxed);
                    shared
                        .first_failure
                        .lock()
                        .unwrap()
                        .get_or_insert(format!("{e:#}"));
                }
            }
            *shared
                .in_flight
                .lock()
                .unwrap()
                .get_mut(&url)
                .expect("counted when sent") -= 1;
        });
        while sent.try_join_next().is_some() {}
    }
    while sent.join_next().await.is_some() {}
    Ok(())
}

/// Event `i` of a failover run: its data is `{"t":"<send time>","i":<i>}`.
fn indexed_event(i: u64) -> String {
    format!(
        r#"{{"resource":"{COLLECTION}/items/{}","state":"exists","data":{{"t":"{:020}","i":{i}}}}}"#,
        i % 100,
        clock::now_us()
    )
}

/// The index an [`indexed_event`]'s notification body carries.
pub(super) fn event_index(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = &text[text.find("\"i\":")? + 4..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_indexed_event_carries_its_send_time_and_index() {
        let event = indexed_event(42);
        assert!(serde_json::from_str::<serde_json::Value>(&event).is_ok());
        // The notification's body is the data as published, byte for byte.
        let data = &event[event.find(r#""data":"#).unwrap() + 7..event.len() - 1];
        assert!(load::payload_timestamp(data.as_bytes()).is_some());
        assert_eq!(event_index(data.as_bytes()), Some(42));
        assert_eq!(event_index(b"{}"), None);
    }
}
