//! This node's right to start delivery attempts (docs/api.md §13): a node keeps its
//! channels while it renews its lease in the database. The node stops starting
//! attempts on its own clock *before* the lease can lapse in the database's, so by the
//! time another node may take a channel over, this one can no longer start an attempt
//! on it: per-channel order holds across the handover.
//!
//! Delivery owns it because delivery is what it fences (every attempt checks it right
//! before it starts); the cluster only renews and revokes it (`cluster::node`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The time before the database's deadline at which this node stops starting
/// attempts, as a share of the lease.
const SAFETY_SHARE: u32 = 5;

/// Until when this node may start attempts.
#[derive(Debug)]
pub struct Lease {
    origin: Instant,
    /// ms after `origin` until which attempts may start; `u64::MAX`: always (a store
    /// with one process).
    valid_until_ms: AtomicU64,
}

impl Lease {
    /// The lease of a node that is alone with its store: always valid.
    pub fn forever() -> Lease {
        Lease {
            origin: Instant::now(),
            valid_until_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// A lease not yet granted.
    pub fn pending() -> Lease {
        Lease {
            origin: Instant::now(),
            valid_until_ms: AtomicU64::new(0),
        }
    }

    /// A renewal sent at `sent` succeeded: the database's deadline is at least `ttl`
    /// after `sent`, so attempts may start until `ttl` less a safety margin after it.
    pub fn renewed(&self, sent: Instant, ttl: Duration) -> Instant {
        let margin = (ttl / SAFETY_SHARE)
            .max(Duration::from_millis(500))
            .min(ttl / 2);
        let until = sent + ttl - margin;
        let ms = until.saturating_duration_since(self.origin).as_millis() as u64;
        self.valid_until_ms.fetch_max(ms, Ordering::AcqRel);
        until
    }

    /// The node lost its lease (it was taken for dead): no attempt may start.
    pub fn revoke(&self) {
        self.valid_until_ms.store(0, Ordering::Release);
    }

    /// Whether an attempt may start now.
    pub fn valid(&self) -> bool {
        let until = self.valid_until_ms.load(Ordering::Acquire);
        until == u64::MAX || (self.origin.elapsed().as_millis() as u64) < until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_ends_before_the_database_would_let_it_lapse() {
        let lease = Lease::pending();
        assert!(!lease.valid(), "not before the first renewal");
        let sent = Instant::now();
        let until = lease.renewed(sent, Duration::from_secs(10));
        assert!(lease.valid());
        assert_eq!(
            until - sent,
            Duration::from_secs(8),
            "a fifth of the lease to spare"
        );
        // A renewal answered late never shortens what an earlier one gave.
        lease.renewed(sent - Duration::from_secs(5), Duration::from_secs(10));
        assert!(lease.valid());
        lease.revoke();
        assert!(!lease.valid());
        assert!(Lease::forever().valid());
        let short = Lease::pending();
        short.renewed(
            Instant::now() - Duration::from_secs(10),
            Duration::from_secs(10),
        );
        assert!(!short.valid(), "a renewal sent a lease ago gives nothing");
    }
}
