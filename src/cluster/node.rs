//! One node of a cluster at work (docs/api.md §13):
//!
//! - **Lease.** It joins, then renews its lease every third of `--lease-ttl`. A
//!   renewal that succeeds extends `Lease`; one that fails leaves it to run out, and
//!   the node stops starting attempts before the database would let another node take
//!   its channels. A renewal that finds the node's row gone (it was taken for dead)
//!   drops every channel at once and joins again.
//! - **Ownership.** Every second, and whenever another node hands channels back or
//!   joins, it claims: dead nodes are reaped and it takes unowned channels up to its
//!   fair share. Holding more than its share, it hands the excess back: each channel
//!   first stops starting attempts, its worker finishes what is in flight, its
//!   progress is made durable, and only then does another node see it unowned. So a
//!   new owner begins only after the old one can no longer start an attempt.
//! - **Removals through other nodes.** A stop made through another node names this
//!   one: it drops the channel (no attempt starts after) and settles the removal,
//!   which is what the stopping call waits for before it answers.
//! - **Leaving.** On shutdown it marks itself leaving, stops starting attempts,
//!   flushes, and hands everything back, so the others take over at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lease::Lease;
use crate::delivery::{Dispatcher, CUT_SHORT_WAIT};
use crate::store::{ClusterMessage, Store};

/// Most channels one claim round takes.
const CLAIM_BATCH: usize = 1000;
/// How often a node claims without being woken.
const CLAIM_INTERVAL: Duration = Duration::from_secs(1);
/// How long a leaving node lets attempts in flight finish before it hands over.
const HANDOVER_WAIT: Duration = Duration::from_millis(1500);

/// A running node; `leave` hands its channels over.
pub struct Node {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    store: Arc<dyn Store>,
    dispatcher: Dispatcher,
    lease: Arc<Lease>,
}

impl Node {
    /// Joins the cluster, then starts the node's work. `address` is its public URL.
    /// Joining comes first: it hands back what an earlier process under the same id
    /// owned, which must not touch channels this one creates.
    pub async fn start(
        store: Arc<dyn Store>,
        dispatcher: Dispatcher,
        lease: Arc<Lease>,
        address: String,
        ttl: Duration,
    ) -> Node {
        let stop = CancellationToken::new();
        let messages = store
            .membership()
            .and_then(|m| m.take_messages())
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
        let work = Work {
            store: store.clone(),
            dispatcher: dispatcher.clone(),
            lease: lease.clone(),
            address,
            ttl,
        };
        work.join(&stop).await;
        let task = tokio::spawn(work.run(messages, stop.clone()));
        Node {
            stop,
            task,
            store,
            dispatcher,
            lease,
        }
    }

    /// Hands every channel to the other nodes and leaves the cluster: they take over at
    /// once rather than after the lease.
    pub async fn leave(self) {
        self.stop.cancel();
        let _ = self.task.await;
        let Some(membership) = self.store.membership() else {
            return;
        };
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
        self.dispatcher.drop_channels(pks.clone()).await;
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
/// finish what is in flight; `true` once they all have.
async fn drain(dispatcher: &Dispatcher, pks: &[i64], wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let handles: Vec<_> = pks.iter().filter_map(|pk| dispatcher.handle(*pk)).collect();
    loop {
        let busy = handles.iter().filter(|h| !h.drain()).count();
        if busy == 0 || Instant::now() >= deadline {
            return busy == 0;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Work {
    store: Arc<dyn Store>,
    dispatcher: Dispatcher,
    lease: Arc<Lease>,
    address: String,
    ttl: Duration,
}

impl Work {
    async fn run(
        self,
        mut messages: mpsc::UnboundedReceiver<ClusterMessage>,
        stop: CancellationToken,
    ) {
        let Some(membership) = self.store.membership() else {
            return;
        };
        let mut renew = tokio::time::interval(self.ttl / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut claim = tokio::time::interval(CLAIM_INTERVAL);
        claim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = renew.tick() => {
                    let sent = Instant::now();
                    match membership.renew(self.ttl).await {
                        Ok(true) => {
                            self.lease.renewed(sent, self.ttl);
                        }
                        Ok(false) => {
                            tracing::warn!("this node was taken for dead; its channels were taken over; joining again");
                            self.lease.revoke();
                            self.dispatcher.drop_channels(self.dispatcher.local_pks()).await;
                            self.join(&stop).await;
                        }
                        Err(e) => tracing::warn!(error = %e, "could not renew this node's lease"),
                    }
                }
                _ = claim.tick() => self.claim().await,
                message = messages.recv() => match message {
                    Some(message) => self.on_message(message).await,
                    None => return,
                },
            }
        }
    }

    /// Joins, retrying until the database answers.
    async fn join(&self, stop: &CancellationToken) {
        let membership = self.store.membership().expect("a cluster store");
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

    async fn claim(&self) {
        let membership = self.store.membership().expect("a cluster store");
        if !self.lease.valid() {
            return;
        }
        let claim = match membership.claim(CLAIM_BATCH).await {
            Ok(claim) => claim,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim channels");
                return;
            }
        };
        if !claim.adopted.is_empty() {
            tracing::info!(channels = claim.adopted.len(), "took channels over");
            self.dispatcher.adopt(claim.adopted, claim.head);
        }
        if claim.excess > 0 {
            self.hand_back(claim.excess).await;
        }
    }

    /// Hands `count` channels to the others, for balance.
    async fn hand_back(&self, count: usize) {
        let membership = self.store.membership().expect("a cluster store");
        let mut pks = self.dispatcher.local_pks();
        pks.sort_unstable();
        let pks: Vec<i64> = pks.into_iter().rev().take(count).collect();
        drain(&self.dispatcher, &pks, Duration::from_secs(30)).await;
        if self.store.flush().await.is_err() {
            return; // They stay drained here; the next round retries.
        }
        self.dispatcher.drop_channels(pks.clone()).await;
        match membership.release(&pks).await {
            Ok(()) => tracing::info!(channels = pks.len(), "handed channels back for balance"),
            Err(e) => {
                tracing::warn!(error = %e, "could not hand channels back; the next claim round retries")
            }
        }
    }

    async fn on_message(&self, message: ClusterMessage) {
        let membership = self.store.membership().expect("a cluster store");
        match message {
            ClusterMessage::Rebalance => self.claim().await,
            ClusterMessage::Removed { pk, node } if node == membership.node_id() => {
                self.dispatcher.drop_channels(vec![pk]).await;
                if let Err(e) = membership.settle_removals(&[pk]).await {
                    tracing::warn!(error = %e, "could not settle a removal");
                }
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
        }
    }
}
