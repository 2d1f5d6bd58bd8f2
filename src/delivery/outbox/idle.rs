//! Idle channels put their spec away. A channel's `ChannelSpec` (its address, token,
//! resource names, params, signing and auth) is most of what it costs, and only its
//! worker needs it: the router needs the filter and the coverage, which the `Outbox`
//! keeps. So a channel whose worker has found nothing to do for `IDLE_FOR` drops its
//! copy, and its next worker reads it again from the store (`Outbox::wake_spec`).
//! Channels that are busy or woken often keep theirs: the read is paid once per
//! wake-up after a quiet spell, not per notification.
//!
//! How: a worker that goes idle parks the channel here with the tick (second) it did;
//! each tick, `sweep` takes the channels parked at least `IDLE_FOR` ago and puts away
//! the spec of those idle since (not woken, still at that tick) and healthy (a failing
//! channel keeps its spec: the overview lists it).

use std::collections::VecDeque;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use super::Outbox;

/// How long a channel stays idle before it puts its spec away.
pub const IDLE_FOR: Duration = Duration::from_secs(2);

/// How often the parked channels are looked at.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The channels whose workers went idle, oldest first, with the tick they did.
pub struct Sleepers {
    started: Instant,
    parked: Mutex<VecDeque<(u32, Weak<Outbox>)>>,
}

impl Default for Sleepers {
    fn default() -> Self {
        Sleepers {
            started: Instant::now(),
            parked: Mutex::default(),
        }
    }
}

impl Sleepers {
    /// Seconds since this process started delivering, counted from 1: a channel's
    /// `idle_tick` of 0 means it never went idle, so a channel idle in the first
    /// second must not get tick 0 (it would never be parked). A tick never wraps in
    /// practice: 136 years.
    pub(super) fn tick(&self) -> u32 {
        self.started.elapsed().as_secs() as u32 + 1
    }

    /// A channel went idle at `tick`. Parked once per tick at most (`Outbox` checks).
    pub(super) fn park(&self, tick: u32, outbox: Weak<Outbox>) {
        self.parked.lock().unwrap().push_back((tick, outbox));
    }

    /// Puts away the spec of every channel idle since `IDLE_FOR` or longer. Returns how
    /// many were put away.
    pub fn sweep(&self) -> usize {
        let due_before = self.tick().saturating_sub(IDLE_FOR.as_secs() as u32);
        let due: Vec<(u32, Weak<Outbox>)> = {
            let mut parked = self.parked.lock().unwrap();
            let n = parked.partition_point(|(tick, _)| *tick < due_before);
            let due = parked.drain(..n).collect();
            if parked.capacity() > 4 * parked.len().max(64) {
                parked.shrink_to_fit();
            }
            due
        };
        due.into_iter()
            .filter_map(|(tick, outbox)| Some((tick, outbox.upgrade()?)))
            .filter(|(tick, outbox)| outbox.put_spec_away(*tick))
            .count()
    }

    /// Channels parked and not yet swept.
    pub fn parked(&self) -> usize {
        self.parked.lock().unwrap().len()
    }
}
