//! One monotonic clock for the whole benchmark process, in µs. Publishers stamp payloads
//! with it and the receiver (same process) reads it on arrival, so latencies need no
//! clock synchronisation.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Starts the clock (idempotent). Call before any timestamp is taken.
pub fn start() {
    EPOCH.get_or_init(Instant::now);
}

/// µs since [`start`]; never 0 once started, so 0 can mean "not yet".
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1
}

/// Seconds between two [`now_us`] readings.
pub fn secs_between(from_us: u64, to_us: u64) -> f64 {
    to_us.saturating_sub(from_us) as f64 / 1e6
}
