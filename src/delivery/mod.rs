//! Delivery: routes each committed event to the channels that cover it and pushes
//! notifications to them.
//!
//! The router is one task that reads the store's feed in commit order and owns the
//! in-memory index (resource → channels). Because channel creation and removal come
//! through the same feed as events, a channel sees exactly the events committed after
//! it (its `start_seq`), and a stop is in force once the router has passed it.
//!
//! Each covering channel's `Outbox` (`outbox/`) takes the event; its worker delivers
//! one notification at a time, each attempt a pipeline of small steps: admission by
//! host (`hosts.rs`), rendering (`render.rs`), the lease fence, then the one seam,
//! `Destination::send` (`destination.rs`; HTTP in `webhook.rs`); the answer is decided
//! on (`attempt.rs`, `retry.rs`) and recorded. The periodic jobs (expiry, pruning, the
//! hosts gauge) are in `upkeep.rs`.

pub mod attempt;
pub mod brokers;
pub mod cancel;
pub mod destination;
pub mod egress;
pub mod hosts;
pub mod http_client;
pub mod identity;
pub mod lease;
pub mod oauth;
pub mod outbox;
pub mod render;
pub mod retry;
pub mod target;
pub mod upkeep;
pub mod webhook;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
// "watch" is the API's word for creating a channel; tokio's channel that keeps only
// the latest value goes by another name here.
use tokio::sync::watch as latest;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::destination::Outbound;
use self::outbox::Outbox;
use self::retry::RetryPolicy;
use crate::filter::Verdicts;
use crate::model::{ChannelSpec, Coverage, Outcome, Seq, SharedEvent, StoredChannel};
use crate::protocol::resource::{is_operational, self_and_ancestors, WHOLE_NAMESPACE};
use crate::store::{Committed, FeedItem, Store, StoreError};

/// What every channel worker uses.
pub struct DeliveryContext {
    pub store: Arc<dyn Store>,
    /// Spans of attempts and the `traceparent` they send (docs/api.md §18).
    pub tracing: Arc<crate::trace::Tracing>,
    /// Where attempts go out: admission by host, then a destination (`destination.rs`).
    pub outbound: Outbound,
    pub retry: RetryPolicy,
    /// Cancelled at shutdown: no new attempt starts after it.
    pub shutdown: CancellationToken,
    /// Cancelled when the shutdown's grace period is over: attempts still waiting for
    /// an answer stop waiting and are logged as interrupted.
    pub cut_short: CancellationToken,
    /// Cancelled when the gateway starts to stop, before connections drain: open
    /// streams end with `event: shutdown` and the cursor to resume from.
    pub closing: CancellationToken,
    /// Whether this node may start attempts (always, without a cluster).
    pub lease: Arc<lease::Lease>,
    /// Every worker task, so shutdown can wait for in-flight deliveries.
    pub tasks: TaskTracker,
    /// A channel whose endpoint fails this long without a success is disabled.
    pub disable_after: Duration,
    /// Signing secrets of API keys, by owner, for channels without their own.
    pub key_signing: HashMap<String, render::KeySigning>,
    /// The last hour's attempts and publishes, per minute, for the overview.
    pub activity: crate::telemetry::activity::Activity,
    /// Idle channels, whose specs are put away after a while (`outbox/idle.rs`).
    pub sleepers: outbox::idle::Sleepers,
    /// Reads the specs of idle channels that wake up, many at once.
    pub specs: Arc<outbox::spec_loader::SpecLoader>,
}

/// How long attempts cut short (`DeliveryContext::cut_short`) get to log themselves;
/// they do it without waiting for anything.
pub const CUT_SHORT_WAIT: Duration = Duration::from_secs(1);

/// Live channel handles by key, shared with the API (state, replay, enable).
pub type Registry = Arc<RwLock<HashMap<i64, Arc<Outbox>>>>;

/// The live channels by covered path: their resource, or the prefixes a channel on
/// `/` is kept within (`ChannelSpec::within`). Owned by the router task; the by-key
/// registry is shared.
struct ChannelIndex {
    by_resource: HashMap<Box<str>, OnPath>,
    by_pk: Registry,
}

/// The channels covering one path, and that path's `Coverage`, which every channel
/// covering just this path shares (one allocation per resource, not per channel).
struct OnPath {
    coverage: Arc<Coverage>,
    channels: Vec<Arc<Outbox>>,
}

impl ChannelIndex {
    /// What a channel of `spec` covers: the shared coverage of its resource, or its
    /// own for a channel kept within prefixes.
    fn coverage(&self, spec: &ChannelSpec) -> Arc<Coverage> {
        if spec.within.is_some() {
            return Arc::new(spec.coverage());
        }
        match self.by_resource.get(&*spec.resource) {
            Some(on_path) => on_path.coverage.clone(),
            None => Arc::new(spec.coverage()),
        }
    }

    fn insert(&mut self, handle: Arc<Outbox>) {
        // What a channel covers never changes (a renewal changes only its expiration).
        for path in handle.coverage().paths() {
            // The key is allocated only for a path's first channel.
            match self.by_resource.get_mut(path.as_str()) {
                Some(on_path) => on_path.channels.push(handle.clone()),
                None => {
                    let on_path = OnPath {
                        coverage: Arc::new(Coverage::path(path)),
                        channels: vec![handle.clone()],
                    };
                    self.by_resource.insert(path.as_str().into(), on_path);
                }
            }
        }
        self.by_pk.write().unwrap().insert(handle.pk, handle);
    }

    fn remove(&mut self, pk: i64) {
        let Some(handle) = self.by_pk.write().unwrap().remove(&pk) else {
            return;
        };
        handle.close();
        for path in handle.coverage().paths() {
            if let Some(on_path) = self.by_resource.get_mut(path.as_str()) {
                on_path.channels.retain(|h| h.pk != pk);
                if on_path.channels.is_empty() {
                    self.by_resource.remove(path.as_str());
                }
            }
        }
    }

    /// A renewal committed (docs/api.md §8.6): the channel, if this node delivers it,
    /// now expires at `expiration_ms`.
    fn renew(&self, pk: i64, expiration_ms: i64, ctx: &Arc<DeliveryContext>) {
        let handle = self.by_pk.read().unwrap().get(&pk).cloned();
        if let Some(handle) = handle {
            handle.renew(expiration_ms, ctx);
        }
    }

    fn contains(&self, pk: i64) -> bool {
        self.by_pk.read().unwrap().contains_key(&pk)
    }

    fn len(&self) -> usize {
        self.by_pk.read().unwrap().len()
    }

    /// Offers an event to every channel that covers it. A channel's paths never cover
    /// one another, so it is offered each event once.
    /// Channels with a filter are offered only the events it matches.
    fn route(&self, event: &SharedEvent, ctx: &Arc<DeliveryContext>) {
        // `/` covers everything but the gateway's operational events (docs/api.md §18).
        let whole = (!is_operational(&event.resource)).then_some(WHOLE_NAMESPACE);
        let covering = self_and_ancestors(&event.resource).chain(whole);
        let mut verdicts = Verdicts::new(event);
        for path in covering {
            let on_path = self.by_resource.get(path).map(|p| &p.channels);
            for handle in on_path.into_iter().flatten() {
                handle.route(event, &mut verdicts, ctx);
            }
        }
    }
}

/// A channel a node takes on: what it is, how many notifications it still owes, and
/// where a delivery its previous node interrupted stood.
#[derive(Debug, Clone)]
pub struct Adopted {
    pub channel: StoredChannel,
    pub owed: u64,
    pub awaiting_retry: Option<Outcome>,
}

/// Which channels this process delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivers {
    /// Every channel: the embedded store's one process.
    Every,
    /// Those the cluster gives it (`Dispatcher::adopt`).
    Claimed,
}

/// Batches of committed events for live readers (the stream), in log order.
pub type EventBatch = Arc<Vec<SharedEvent>>;

/// Batches a live reader may fall behind before it lags (and is cut off).
const LIVE_CAPACITY: usize = 4096;

/// What the rest of the node asks of the router, which alone changes the index.
pub enum RouterCommand {
    /// Channels this node now delivers (docs/api.md §13), owing every event up to
    /// `counted_through` as counted when they were claimed.
    Adopt {
        channels: Vec<Adopted>,
        counted_through: Seq,
    },
    /// Channels this node no longer delivers: closed (no attempt starts) and dropped;
    /// `None`: every channel it delivers when the command is applied.
    Drop {
        pks: Option<Vec<i64>>,
        done: oneshot::Sender<()>,
    },
}

/// The running delivery side of the gateway. Cheap to clone: every clone reaches the
/// same router.
#[derive(Clone)]
pub struct Dispatcher {
    ctx: Arc<DeliveryContext>,
    commands: mpsc::UnboundedSender<RouterCommand>,
    routed: latest::Receiver<u64>,
    registry: Registry,
    live: broadcast::Sender<EventBatch>,
    /// Highest seq routed: every event at or below it has been offered and broadcast.
    routed_head: Arc<AtomicU64>,
}

/// Events read per step while catching up at startup.
const RECOVERY_CHUNK: usize = 4096;

/// Channels read per step at startup.
const LOAD_CHUNK: usize = 4096;

impl Dispatcher {
    /// Loads every channel, re-offers what each still owes from the log, then follows
    /// the store's feed. In a cluster it starts with no channel: the node claims its
    /// share (`cluster::node`).
    pub async fn start(
        ctx: Arc<DeliveryContext>,
        delivers: Delivers,
    ) -> Result<Dispatcher, StoreError> {
        let feed = ctx
            .store
            .take_feed()
            .ok_or_else(|| StoreError::Backend("the store's feed was already taken".into()))?;
        let registry: Registry = Arc::default();
        let mut index = ChannelIndex {
            by_resource: HashMap::new(),
            by_pk: registry.clone(),
        };
        let mut from = u64::MAX;
        let mut after_pk = i64::MIN;
        if delivers == Delivers::Every {
            loop {
                let page = ctx.store.load_channels(after_pk, LOAD_CHUNK).await?;
                let complete = page.len() < LOAD_CHUNK;
                for channel in page {
                    from = from.min(channel.progress_seq);
                    after_pk = channel.pk;
                    let coverage = index.coverage(&channel.spec);
                    // Its spec waits in the store until it has something to do.
                    index.insert(Outbox::new(channel, coverage, false));
                }
                if complete {
                    break;
                }
            }
        }
        for interrupted in ctx.store.awaiting_retry().await? {
            if let Some(handle) = registry.read().unwrap().get(&interrupted.channel_pk) {
                handle.resume(interrupted);
            }
        }
        // Re-offer the events that some channel has not finished. Channels skip what
        // they are past; a channel whose queue fills reads the rest from the store.
        if from != u64::MAX {
            let mut after = from;
            loop {
                let events = ctx.store.read_log(after, RECOVERY_CHUNK).await?;
                let Some(last) = events.last() else { break };
                after = last.seq;
                for event in &events {
                    index.route(event, &ctx);
                }
                if events.len() < RECOVERY_CHUNK {
                    break;
                }
            }
        }
        for handle in registry.read().unwrap().values() {
            handle.kick(&ctx);
        }
        metrics::gauge!("watchwire_channels_live").set(index.len() as f64);
        tracing::info!(channels = index.len(), "delivery recovered");

        let routed_head = Arc::new(AtomicU64::new(ctx.store.head().await?));
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let (routed_tx, routed) = latest::channel(0);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        tokio::spawn(put_idle_specs_away(ctx.clone()));
        tokio::spawn(route_feed(
            feed,
            commands_rx,
            index,
            ctx.clone(),
            routed_tx,
            live.clone(),
            routed_head.clone(),
        ));
        Ok(Dispatcher {
            ctx,
            commands,
            routed,
            registry,
            live,
            routed_head,
        })
    }

    /// Waits until the router has applied feed entry `no` (for example a stop).
    pub async fn wait_routed(&self, no: u64) {
        let mut routed = self.routed.clone();
        let _ = routed.wait_for(|&done| done >= no).await;
    }

    pub fn context(&self) -> &Arc<DeliveryContext> {
        &self.ctx
    }

    /// The live handle of a channel.
    pub fn handle(&self, pk: i64) -> Option<Arc<Outbox>> {
        self.registry.read().unwrap().get(&pk).cloned()
    }

    /// The channels this node delivers.
    pub fn local_pks(&self) -> Vec<i64> {
        self.registry.read().unwrap().keys().copied().collect()
    }

    /// Starts delivering channels this node took on.
    pub fn adopt(&self, channels: Vec<Adopted>, counted_through: Seq) {
        let _ = self.commands.send(RouterCommand::Adopt {
            channels,
            counted_through,
        });
    }

    /// Stops and drops channels: once this returns, no attempt on them starts here.
    pub async fn drop_channels(&self, pks: Vec<i64>) {
        self.drop_where(Some(pks)).await
    }

    /// Stops and drops every channel this node delivers, adopted ones still on their
    /// way to the router included.
    pub async fn drop_all(&self) {
        self.drop_where(None).await
    }

    async fn drop_where(&self, pks: Option<Vec<i64>>) {
        let (done, dropped) = oneshot::channel();
        if self
            .commands
            .send(RouterCommand::Drop { pks, done })
            .is_ok()
        {
            let _ = dropped.await;
        }
    }

    /// Every event committed from now on, in batches, in log order.
    pub fn subscribe(&self) -> broadcast::Receiver<EventBatch> {
        self.live.subscribe()
    }

    /// Highest seq routed and broadcast so far.
    pub fn routed_head(&self) -> Seq {
        self.routed_head.load(Ordering::Acquire)
    }
}

/// Every `SWEEP_EVERY`, the specs of channels idle long enough go back to the store
/// (`outbox/idle.rs`), until shutdown.
async fn put_idle_specs_away(ctx: Arc<DeliveryContext>) {
    let mut every = tokio::time::interval(outbox::idle::SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = every.tick() => {
                let put_away = ctx.sleepers.sweep();
                metrics::counter!("watchwire_channel_specs_put_away_total").increment(put_away as u64);
            }
        }
    }
}

async fn route_feed(
    mut feed: mpsc::UnboundedReceiver<FeedItem>,
    mut commands: mpsc::UnboundedReceiver<RouterCommand>,
    mut index: ChannelIndex,
    ctx: Arc<DeliveryContext>,
    routed: latest::Sender<u64>,
    live: broadcast::Sender<EventBatch>,
    routed_head: Arc<AtomicU64>,
) {
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(RouterCommand::Adopt { channels, counted_through }) => {
                    for adopted in channels {
                        if index.contains(adopted.channel.pk) {
                            continue; // Already delivered here.
                        }
                        let coverage = index.coverage(&adopted.channel.spec);
                        let handle = Outbox::adopted(adopted.channel, coverage, adopted.owed, counted_through);
                        if let Some(interrupted) = adopted.awaiting_retry {
                            handle.resume(interrupted);
                        }
                        handle.kick(&ctx);
                        index.insert(handle);
                    }
                }
                Some(RouterCommand::Drop { pks, done }) => {
                    let pks = pks.unwrap_or_else(|| index.by_pk.read().unwrap().keys().copied().collect());
                    for pk in pks {
                        index.remove(pk);
                    }
                    let _ = done.send(());
                }
                None => {}
            },
            item = feed.recv() => {
                let Some(item) = item else { return };
                match item.change {
                    Committed::Events(events) => {
                        for event in &events {
                            index.route(event, &ctx);
                        }
                        let last = events.last().map(|e| e.seq);
                        // No live reader is fine; the events are in the log.
                        let _ = live.send(Arc::new(events));
                        // After the send: a reader that sees this head finds the batch queued.
                        if let Some(last) = last {
                            routed_head.store(last, Ordering::Release);
                        }
                    }
                    Committed::ChannelCreated(channel) => {
                        let coverage = index.coverage(&channel.spec);
                        let handle = Outbox::new(channel, coverage, true);
                        handle.kick(&ctx);
                        index.insert(handle);
                    }
                    Committed::ChannelRemoved { pk } => index.remove(pk),
                    Committed::ChannelRenewed { pk, expiration_ms } => {
                        index.renew(pk, expiration_ms, &ctx)
                    }
                }
                routed.send_replace(item.no);
            }
        }
        metrics::gauge!("watchwire_channels_live").set(index.len() as f64);
    }
}
