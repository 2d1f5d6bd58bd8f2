//! Delivery: routes each committed event to the channels that cover it and pushes
//! notifications to them.
//!
//! The router is one task that reads the store's feed in commit order and owns the
//! in-memory index (resource → channels). Because channel creation and removal come
//! through the same feed as events, a channel sees exactly the events committed after
//! it (its `start_seq`), and a stop is in force once the router has passed it.

pub mod channel;
pub mod client;
pub mod retry;
pub mod target;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::channel::ChannelHandle;
use self::client::OutboundClient;
use self::retry::RetryPolicy;
use crate::model::{Channel, SharedEvent};
use crate::protocol::resource::self_and_ancestors;
use crate::store::{Committed, FeedItem, Removal, Store, StoreError};

/// What every channel worker uses.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub client: OutboundClient,
    pub retry: RetryPolicy,
    /// Cancelled at shutdown: no new attempt starts after it.
    pub shutdown: CancellationToken,
    /// Every worker task, so shutdown can wait for in-flight deliveries.
    pub tasks: TaskTracker,
    /// Signing secrets of API keys, by owner, for channels without their own.
    pub key_signing: HashMap<String, client::KeySigning>,
}

/// The live channels, by watched resource and by key. Owned by the router task.
#[derive(Default)]
struct ChannelIndex {
    by_resource: HashMap<String, Vec<Arc<ChannelHandle>>>,
    by_pk: HashMap<i64, Arc<ChannelHandle>>,
}

impl ChannelIndex {
    fn insert(&mut self, handle: Arc<ChannelHandle>) {
        self.by_resource
            .entry(handle.spec.resource.clone())
            .or_default()
            .push(handle.clone());
        self.by_pk.insert(handle.pk, handle);
    }

    fn remove(&mut self, pk: i64) {
        let Some(handle) = self.by_pk.remove(&pk) else {
            return;
        };
        handle.close();
        if let Some(list) = self.by_resource.get_mut(&handle.spec.resource) {
            list.retain(|h| h.pk != pk);
            if list.is_empty() {
                self.by_resource.remove(&handle.spec.resource);
            }
        }
    }

    /// Offers an event to every channel whose resource covers it.
    fn route(&self, event: &SharedEvent, shared: &Arc<Shared>) {
        for path in self_and_ancestors(&event.resource) {
            for handle in self.by_resource.get(path).into_iter().flatten() {
                handle.offer(event, shared);
            }
        }
    }
}

/// The running delivery side of the gateway.
pub struct Dispatcher {
    shared: Arc<Shared>,
    routed: watch::Receiver<u64>,
}

/// Events read per step while catching up at startup.
const RECOVERY_CHUNK: usize = 4096;

impl Dispatcher {
    /// Loads every channel, re-offers what each still owes from the log, then follows
    /// the store's feed.
    pub async fn start(shared: Arc<Shared>) -> Result<Dispatcher, StoreError> {
        let feed = shared
            .store
            .take_feed()
            .ok_or_else(|| StoreError::Backend("the store's feed was already taken".into()))?;
        let mut index = ChannelIndex::default();
        let channels: Vec<Channel> = shared.store.load_channels().await?;
        let mut from = u64::MAX;
        for channel in channels {
            from = from.min(channel.progress_seq);
            index.insert(ChannelHandle::new(channel));
        }
        // Re-offer the events that some channel has not finished. Channels skip what
        // they are past; a channel whose queue fills reads the rest from the store.
        if from != u64::MAX {
            let mut after = from;
            loop {
                let events = shared.store.read_log(after, RECOVERY_CHUNK).await?;
                let Some(last) = events.last() else { break };
                after = last.seq;
                for event in &events {
                    index.route(event, &shared);
                }
                if events.len() < RECOVERY_CHUNK {
                    break;
                }
            }
        }
        for handle in index.by_pk.values() {
            handle.kick(&shared);
        }
        metrics::gauge!("watchwire_channels_live").set(index.by_pk.len() as f64);
        tracing::info!(channels = index.by_pk.len(), "delivery recovered");

        let (routed_tx, routed) = watch::channel(0);
        tokio::spawn(route_feed(feed, index, shared.clone(), routed_tx));
        Ok(Dispatcher { shared, routed })
    }

    /// Waits until the router has applied feed entry `no` (for example a stop).
    pub async fn wait_routed(&self, no: u64) {
        let mut routed = self.routed.clone();
        let _ = routed.wait_for(|&done| done >= no).await;
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Removes expired channels every `interval` until shutdown.
    pub fn spawn_expiry_sweep(&self, interval: Duration) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let now_ms = crate::model::now_ms();
                match shared
                    .store
                    .remove_channels(Removal::ExpiredAt { now_ms })
                    .await
                {
                    Ok((removed, _)) if !removed.is_empty() => {
                        tracing::info!(count = removed.len(), "removed expired channels")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
                }
            }
        });
    }
}

async fn route_feed(
    mut feed: mpsc::UnboundedReceiver<FeedItem>,
    mut index: ChannelIndex,
    shared: Arc<Shared>,
    routed: watch::Sender<u64>,
) {
    while let Some(item) = feed.recv().await {
        match item.change {
            Committed::Events(events) => {
                for event in &events {
                    index.route(event, &shared);
                }
            }
            Committed::ChannelCreated(channel) => {
                let handle = ChannelHandle::new(channel);
                handle.kick(&shared);
                index.insert(handle);
            }
            Committed::ChannelRemoved { pk } => index.remove(pk),
        }
        metrics::gauge!("watchwire_channels_live").set(index.by_pk.len() as f64);
        routed.send_replace(item.no);
    }
}
