//! The gateway's periodic jobs, each on its own timer until shutdown: removing expired
//! channels, pruning what is past retention, and counting receiving hosts by state.
//!
//! They run beside delivery, not inside the router: the expiry sweep only removes the
//! channels from the store, and the removal reaches the router through the feed like
//! a stop, which is where the channel is closed and dropped (workers refuse an expired
//! channel on their own until then). Pruning takes only what every channel is past.

use std::sync::Arc;
use std::time::Duration;

use super::{DeliveryContext, Dispatcher};
use crate::model::now_ms;
use crate::store::{PruneReport, Removal};

impl Dispatcher {
    /// Runs `task` every `interval` until shutdown.
    fn every<F, Fut>(&self, interval: Duration, mut task: F)
    where
        F: FnMut(Arc<DeliveryContext>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                task(ctx.clone()).await;
            }
        });
    }

    /// Reports how many receiving hosts are open, backing off or limited (the gauge
    /// `watchwire_hosts`). By difference, not by setting: gateways that share a
    /// process (tests) share the metrics recorder.
    pub fn spawn_host_census(&self, interval: Duration) {
        let mut reported = [0usize; 3];
        self.every(interval, move |ctx| {
            let census = ctx.outbound.hosts().census();
            for (i, (state, count)) in census.into_iter().enumerate() {
                let delta = count as f64 - reported[i] as f64;
                if delta != 0.0 {
                    metrics::gauge!("watchwire_hosts", "state" => state.as_str()).increment(delta);
                }
                reported[i] = count;
            }
            std::future::ready(())
        });
    }

    /// Removes expired channels every `interval`, and tells of those expiring within
    /// `notice` (docs/api.md §18).
    pub fn spawn_expiry_sweep(&self, interval: Duration, notice: Duration) {
        let notice_ms = notice.as_millis().min(i64::MAX as u128) as i64;
        self.every(interval, move |ctx| async move {
            let removal = Removal::ExpiredAt {
                now_ms: now_ms(),
                notice_ms,
            };
            match ctx.store.remove_channels(removal).await {
                Ok(removed) if !removed.pks.is_empty() => {
                    tracing::info!(count = removed.pks.len(), "removed expired channels")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
            }
        });
    }

    /// Every `interval`, prunes what is past retention (docs/api.md §7, §8) in bounded
    /// steps until nothing more is due, so pruning keeps up with any sustained rate;
    /// then reports the store's size and how far pruning is behind.
    pub fn spawn_pruning(&self, interval: Duration, retention: Duration, log_retention: Duration) {
        self.every(interval, move |ctx| async move {
            let now = now_ms();
            let before =
                |d: Duration| now.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64);
            let (events_before, outcomes_before) = (before(retention), before(log_retention));
            let mut total = PruneReport::default();
            let last = loop {
                match ctx.store.prune(events_before, outcomes_before).await {
                    Ok(step) => {
                        total.events += step.events;
                        total.outcomes += step.outcomes;
                        total.collections += step.collections;
                        total.removed_channels += step.removed_channels;
                        if !step.more || ctx.shutdown.is_cancelled() {
                            break Some(step);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "pruning failed");
                        break None;
                    }
                }
            };
            if total.events + total.outcomes + total.collections + total.removed_channels > 0 {
                tracing::info!(
                    events = total.events,
                    outcomes = total.outcomes,
                    collections = total.collections,
                    removed_channels = total.removed_channels,
                    "pruned the log"
                );
            }
            if let Some(last) = last {
                let lag = |oldest: Option<i64>, cutoff: i64| {
                    oldest.map_or(0, |ms| (cutoff - ms).max(0)) as f64 / 1000.0
                };
                let lag = lag(last.oldest_event_ms, events_before)
                    .max(lag(last.oldest_outcome_ms, outcomes_before));
                metrics::gauge!("watchwire_prune_lag_seconds").set(lag);
            }
            match ctx.store.size_bytes().await {
                Ok(bytes) => metrics::gauge!("watchwire_store_bytes").set(bytes as f64),
                Err(e) => tracing::warn!(error = %e, "could not read the store's size"),
            }
        });
    }
}
