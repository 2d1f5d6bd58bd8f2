//! One node of a cluster at work (docs/api.md §13), as three tasks that never wait
//! for one another's work:
//!
//! - **The lease keeper.** It joins, then renews the lease every third of
//!   `--lease-ttl` on a database connection of its own. Nothing a delivery does (a
//!   dead endpoint, a drain, a busy pool) can delay it. A renewal that succeeds extends
//!   `Lease`; one that fails leaves it to run out, and every attempt checks the lease
//!   right before it starts (`Outbox::deliver`), so the node starts none once another
//!   node may take its channels. A renewal that finds the node's row gone (it was taken
//!   for dead) drops every channel at once and joins again.
//! - **The balancer.** Every second, and whenever another node hands channels back or
//!   joins, it claims: dead nodes are reaped and it takes unowned channels up to its
//!   fair share (`fair_share.rs`). Holding more than its share while another
//!   node lacks, it hands the surplus back, idle channels first: each stops starting
//!   attempts (a worker waiting for a retry or its host stops waiting), its worker
//!   finishes what is in flight, its progress is made durable, and only then does
//!   another node see it unowned. So a new owner begins only after the old one can no
//!   longer start an attempt.
//! - **The messenger.** A stop made through another node names this one: it drops the
//!   channel (no attempt starts after) and settles the removal, which is what the
//!   stopping call waits for before it answers. Enables and replays go to the owner. A
//!   renewal through another node names this one too: it reads the channel's
//!   expiration again through its own writer, so that the router gets it in commit
//!   order with this node's own renewals, whatever order the messages came in.
//!
//! A claim and its adoption, and a rejoin's drop and join, hold one lock, so channels
//! claimed under a lease that was then lost are dropped with the rest.
//!
//! **Leaving.** On shutdown it marks itself leaving, stops starting attempts, flushes,
//! and hands everything back, so the others take over at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{ClusterMessage, Membership, RENEWALS_PER_LEASE};
use crate::delivery::lease::Lease;
use crate::delivery::{Dispatcher, CUT_SHORT_WAIT};
use crate::store::{Store, StoreError};

/// Most channels one claim round takes.
const CLAIM_BATCH: usize = 1000;
/// How often a node claims without being woken.
const CLAIM_INTERVAL: Duration = Duration::from_secs(1);
/// How long a leaving node lets attempts in flight finish before it hands over.
const HANDOVER_WAIT: Duration = Duration::from_millis(1500);
/// How long a node handing channels back for balance lets attempts in flight finish
/// (at least a whole attempt's timeout).
const REBALANCE_WAIT: Duration = Duration::from_secs(30);

/// A running node; `leave` hands its channels over.
pub struct Node {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    store: Arc<dyn Store>,
    membership: Arc<dyn Membership>,
    dispatcher: Dispatcher,
    lease: Arc<Lease>,
}

impl Node {
    /// Joins the cluster, then starts the node's work. `address` is its public URL.
    /// Joining comes first: it hands back what an earlier process under the same id
    /// owned, which must not touch channels this one creates.
    pub async fn start(
        store: Arc<dyn Store>,
        membership: Arc<dyn Membership>,
        dispatcher: Dispatcher,
        lease: Arc<Lease>,
        address: String,
        ttl: Duration,
    ) -> Node {
        let stop = CancellationToken::new();
        let messages = membership
            .take_messages()
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
        let work = Arc::new(Work {
            store: store.clone(),
            membership: membership.clone(),
            dispatcher: dispatcher.clone(),
            lease: lease.clone(),
            address,
            ttl,
            ownership: tokio::sync::Mutex::new(()),
            rebalance: Notify::new(),
        });
        work.join(&stop).await;
        let tasks = vec![
            tokio::spawn(work.clone().keep_lease(stop.clone())),
            tokio::spawn(work.clone().balance(stop.clone())),
            tokio::spawn(work.listen(messages, stop.clone())),
        ];
        Node {
            stop,
            tasks,
            store,
            membership,
            dispatcher,
            lease,
        }
    }

    /// Hands every channel to the other nodes and leaves the cluster: they take over at
    /// once rather than after the lease.
    pub async fn leave(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let membership = self.membership;
        if let Err(e) = membership.leaving().await {
            tracing::warn!(error = %e, "could not mark this node as leaving");
        }
        let pks = self.dispatcher.local_pks();
        if !drain(&self.dispatcher, &pks, HANDOVER_WAIT).await {
            // Attempts still waiting for an answer may have reached their receivers:
            // cut short, they are logged as interrupted before the channels go.
            self.dispatcher.context().cut_short.cancel();
            drain(&self.dispatcher, &pks, CUT_SHORT_WAIT).await;
        }
        self.lease.revoke();
        // The progress of what was delivered goes with the channels.
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %e, "could not flush before handing channels over");
        }
        self.dispatcher.drop_all().await;
        match membership.leave().await {
            Ok(()) => tracing::info!(
                channels = pks.len(),
                "left the cluster; channels handed over"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not hand channels over; others take them when the lease lapses")
            }
        }
    }
}

/// Stops starting attempts on `pks` and waits (at most `wait`) for their workers to
/// finish what is in flight. `false` if some were still busy when the wait ended.
async fn drain(dispatcher: &Dispatcher, pks: &[i64], wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let handles: Vec<_> = pks.iter().filter_map(|pk| dispatcher.handle(*pk)).collect();
    loop {
        let busy = handles.iter().filter(|h| !h.drain()).count();
        if busy == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Work {
    store: Arc<dyn Store>,
    membership: Arc<dyn Membership>,
    dispatcher: Dispatcher,
    lease: Arc<Lease>,
    address: String,
    ttl: Duration,
    /// Held while this node's set of channels changes against the database's: a claim
    /// and its adoption, or a rejoin's drop and join.
    ownership: tokio::sync::Mutex<()>,
    /// Wakes the balancer: another node joined, left or handed channels back.
    rebalance: Notify,
}

impl Work {
    fn membership(&self) -> &dyn Membership {
        self.membership.as_ref()
    }

    /// Renews the lease every third of it, and joins again when the node was taken for
    /// dead.
    async fn keep_lease(self: Arc<Self>, stop: CancellationToken) {
        let mut renew = tokio::time::interval(self.ttl / RENEWALS_PER_LEASE);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = renew.tick() => {}
            }
            let sent = Instant::now();
            match self.membership().renew(self.ttl).await {
                Ok(true) => {
                    self.lease.renewed(sent, self.ttl);
                }
                Ok(false) => {
                    tracing::warn!(
                        "this node was taken for dead; its channels were taken over; joining again"
                    );
                    metrics::counter!("watchwire_cluster_leases_lost_total").increment(1);
                    self.lease.revoke();
                    let _held = self.ownership.lock().await;
                    self.dispatcher.drop_all().await;
                    self.join(&stop).await;
                }
                Err(e) => tracing::warn!(error = %e, "could not renew this node's lease"),
            }
        }
    }

    /// Claims its share every [`CLAIM_INTERVAL`] and when woken; hands back a surplus.
    async fn balance(self: Arc<Self>, stop: CancellationToken) {
        let mut claim = tokio::time::interval(CLAIM_INTERVAL);
        claim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = claim.tick() => {}
                _ = self.rebalance.notified() => {}
            }
            let surplus = self.claim().await;
            if surplus > 0 {
                self.hand_back(surplus, &stop).await;
            }
        }
    }

    /// Stops channels removed through other nodes, then says so.
    async fn settle(&self, pks: Vec<i64>) {
        self.dispatcher.drop_channels(pks.clone()).await;
        if let Err(e) = self.membership().settle_removals(&pks).await {
            tracing::warn!(error = %e, "could not settle a removal");
        }
    }

    /// Answers the other nodes' messages.
    async fn listen(
        self: Arc<Self>,
        mut messages: mpsc::UnboundedReceiver<ClusterMessage>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                message = messages.recv() => match message {
                    Some(message) => self.on_message(message).await,
                    None => return,
                },
            }
        }
    }

    /// Joins, retrying until the database answers.
    async fn join(&self, stop: &CancellationToken) {
        let membership = self.membership();
        loop {
            let sent = Instant::now();
            match membership.join(&self.address, self.ttl).await {
                Ok(()) => {
                    self.lease.renewed(sent, self.ttl);
                    tracing::info!(node = membership.node_id(), "joined the cluster");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "could not join the cluster; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Reaps dead nodes and adopts unowned channels up to this node's share; how many
    /// it holds beyond its share that it should hand back.
    async fn claim(&self) -> usize {
        let _held = self.ownership.lock().await;
        if !self.lease.valid() {
            return 0;
        }
        let claim = match self.membership().claim(CLAIM_BATCH).await {
            Ok(claim) => claim,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim channels");
                return 0;
            }
        };
        if !claim.adopted.is_empty() {
            tracing::info!(channels = claim.adopted.len(), "took channels over");
            self.dispatcher.adopt(claim.adopted, claim.head);
        }
        if !claim.removed.is_empty() {
            self.settle(claim.removed).await;
        }
        claim.excess
    }

    /// Hands `count` channels to the others, for balance: idle ones first, so the
    /// handover waits for as few attempts in flight as it can.
    async fn hand_back(&self, count: usize, stop: &CancellationToken) {
        let mut candidates: Vec<(bool, i64)> = self
            .dispatcher
            .local_pks()
            .into_iter()
            .filter_map(|pk| self.dispatcher.handle(pk).map(|h| (h.busy(), pk)))
            .collect();
        candidates.sort_unstable_by_key(|&(busy, pk)| (busy, std::cmp::Reverse(pk)));
        let pks: Vec<i64> = candidates
            .into_iter()
            .take(count)
            .map(|(_, pk)| pk)
            .collect();
        let drained = tokio::select! {
            _ = stop.cancelled() => false,
            drained = drain(&self.dispatcher, &pks, REBALANCE_WAIT) => drained,
        };
        if !drained || self.store.flush().await.is_err() {
            // They stay here after all; the next round may try again.
            for pk in &pks {
                if let Some(handle) = self.dispatcher.handle(*pk) {
                    handle.undrain(self.dispatcher.context());
                }
            }
            return;
        }
        self.dispatcher.drop_channels(pks.clone()).await;
        match self.membership().release(&pks).await {
            Ok(()) => tracing::info!(channels = pks.len(), "handed channels back for balance"),
            Err(e) => {
                tracing::warn!(error = %e, "could not hand channels back; the next claim round retries")
            }
        }
    }

    /// Channel `pk`, which this node delivered as it was renewed through another node,
    /// expires when the store says now. Read under the ownership lock: a claim that
    /// read the channel before the renewal committed has handed it to the router first,
    /// so the router applies the expiration read here after it, not before.
    async fn renewed(&self, pk: i64) {
        let _held = self.ownership.lock().await;
        match self.store.reread_expiration(pk).await {
            // The router applies it if this node still delivers the channel.
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not read a renewed channel's expiration")
            }
        }
    }

    async fn on_message(&self, message: ClusterMessage) {
        let membership = self.membership();
        match message {
            ClusterMessage::Rebalance => self.rebalance.notify_one(),
            ClusterMessage::Removed { pk, node } if node == membership.node_id() => {
                self.settle(vec![pk]).await
            }
            ClusterMessage::Removed { .. } => {}
            ClusterMessage::Enable { pk } => {
                if let Some(handle) = self.dispatcher.handle(pk) {
                    handle.enable(self.dispatcher.context());
                }
            }
            ClusterMessage::Replay { pk, since } => {
                if let Some(handle) = self.dispatcher.handle(pk) {
                    handle.replay(since, self.dispatcher.context());
                }
            }
            ClusterMessage::Renewed { pk, node } if node == membership.node_id() => {
                self.renewed(pk).await
            }
            ClusterMessage::Renewed { .. } => {}
        }
    }
}
