//! Isolation of receiving hosts (docs/api.md §5.1): endpoints that are
//! slow, dead, or accept connections and never answer cannot delay delivery to others.
//!
//! Every attempt is admitted by its host (`scheme://host:port`) first:
//! - **Two pools.** Hosts that have answered draw from the main pool
//!   (`--max-in-flight`); hosts that have not yet, or that are recovering, draw from a
//!   small pool of their own. Thousands of endpoints that never answer — on one host
//!   or on many — can fill only the small pool, never the one healthy hosts use.
//! - **Fair shares.** No host holds more than its share of the main pool: the pool
//!   divided among the hosts using it *plus one*, but never less than [`MIN_SHARE`].
//!   The extra share is headroom: a host that starts hanging holds at most half the
//!   pool while it is the only busy one, so a healthy host always finds room. An
//!   unproven host holds at most [`PROBES_PER_HOST`] attempts at once (a slow start).
//!   Each attempt is one connection (HTTP/1.1), so this bounds connections per host.
//! - **Circuit breaking.** After [`TRIP_AFTER`] failures in a row (no answer,
//!   refused, 5xx, 429; [`PROBES_PER_HOST`] for a host that never answered) a host is
//!   backed off as a whole: no attempt starts until the backoff ends, then one probe;
//!   a success closes the circuit, a failure doubles the backoff (up to
//!   [`MAX_BACKOFF`]). Probes of recovering hosts use at most half the small pool, so
//!   long-dead hosts cannot keep new ones from proving themselves.
//! - **Limits.** A `Retry-After` on 429/503 holds every channel of the host until
//!   then; `--max-host-rate` caps each host's attempts per second.
//!
//! One idea, kept whole: the table, these rules and the tests that hold them are read
//! together, which is why the file runs past 600 lines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::brokers::address::BrokerKind;
use crate::model::now_ms;

/// Every host may hold at least this many attempts of the main pool.
pub const MIN_SHARE: usize = 8;
/// Attempts an unproven or recovering host may have in flight at once.
pub const PROBES_PER_HOST: usize = 2;
/// The small pool of unproven and recovering hosts.
pub const PROBE_POOL: usize = 128;
/// Failures in a row that back a host off.
pub const TRIP_AFTER: u32 = 5;
/// The first backoff of a tripped host; it doubles at each failed probe.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a waiter sleeps at most before it looks again (a lost wake-up only delays).
const BACKSTOP: Duration = Duration::from_millis(250);
/// Hosts unused this long are forgotten (their state is rebuilt on next use).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Where a host stands, as metrics and a channel's delivery state show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Answering, or not known yet.
    Open,
    /// Failing: no attempt until the backoff ends, then one probe.
    BackingOff,
    /// Told to wait (`Retry-After`), or at its rate cap.
    Limited,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Open => "open",
            HostState::BackingOff => "backingOff",
            HostState::Limited => "limited",
        }
    }
}

/// What an attempt to a host came to, for the host's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOutcome {
    /// The host answered with a status that is not a failure of the host (any 2xx,
    /// 4xx other than 408/429, a 410).
    Answered,
    /// No answer, a refused or broken connection, a 5xx, 408 or 429.
    Failed,
}

#[derive(Debug)]
struct Host {
    /// The host's key, shared with its admissions.
    key: Arc<str>,
    in_flight: usize,
    /// Of `in_flight`, those drawn from the main pool.
    in_main: usize,
    /// Whether it ever answered (then it draws from the main pool).
    proven: bool,
    failures: u32,
    backoff: Duration,
    backing_off_until: Option<Instant>,
    /// A `Retry-After` holds every attempt until then.
    not_before: Option<Instant>,
    /// `--max-host-rate`: the next attempt may start at this instant.
    next_slot: Option<Instant>,
    last_used: Instant,
    /// Wakes the host's waiters when one of its attempts ends.
    freed: Arc<Notify>,
}

impl Host {
    fn new(key: &str, now: Instant) -> Host {
        Host {
            key: Arc::from(key),
            in_flight: 0,
            in_main: 0,
            proven: false,
            failures: 0,
            backoff: FIRST_BACKOFF,
            backing_off_until: None,
            not_before: None,
            next_slot: None,
            last_used: now,
            freed: Arc::new(Notify::new()),
        }
    }

    fn state(&self, now: Instant) -> HostState {
        // Between the end of a backoff and the probe's answer the host is still
        // failing: it shows as backing off until a probe succeeds.
        if self.probing() || self.backing_off_until.is_some_and(|until| until > now) {
            HostState::BackingOff
        } else if self.not_before.is_some_and(|t| t > now)
            || self.next_slot.is_some_and(|t| t > now)
        {
            HostState::Limited
        } else {
            HostState::Open
        }
    }

    /// Until when it holds every attempt (a backoff, a `Retry-After`, its rate cap).
    fn held_until(&self, now: Instant) -> Option<Instant> {
        [self.backing_off_until, self.not_before, self.next_slot]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .max()
    }

    /// Backed off, or recovering after a backoff: one probe at a time.
    fn probing(&self) -> bool {
        self.failures >= self.trip_after()
    }

    fn trip_after(&self) -> u32 {
        if self.proven {
            TRIP_AFTER
        } else {
            PROBES_PER_HOST as u32
        }
    }
}

#[derive(Debug, Default)]
struct Pools {
    hosts: HashMap<Arc<str>, Host>,
    main_used: usize,
    probe_used: usize,
    /// Of `probe_used`, probes of recovering hosts.
    recovery_used: usize,
    /// Hosts with attempts from the main pool in flight.
    busy_hosts: usize,
}

impl Pools {
    fn host(&mut self, key: &str, now: Instant) -> &mut Host {
        if !self.hosts.contains_key(key) {
            let host = Host::new(key, now);
            self.hosts.insert(host.key.clone(), host);
        }
        self.hosts.get_mut(key).expect("just inserted")
    }
}

/// A host in trouble (`Hosts::troubled`).
#[derive(Debug, Clone)]
pub struct Troubled {
    pub host: Arc<str>,
    pub state: HostState,
    /// Failed attempts in a row since it last answered.
    pub failures: u32,
    /// When what holds its attempts now ends.
    pub until: Option<Instant>,
}

/// Which pool an admission draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    Main,
    Probe,
    Recovery,
}

/// Why an attempt cannot start yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Until this instant (a backoff, a `Retry-After`, a rate cap).
    Until(Instant, HostState),
    /// Until an attempt of the host (or of its pool) ends.
    Slot,
}

/// Admission of attempts by host.
#[derive(Debug)]
pub struct Hosts {
    pools: Mutex<Pools>,
    main: usize,
    /// `--max-host-rate`: the least time between two attempts to one host.
    host_interval: Option<Duration>,
    /// Wakes a waiter for a pool when an attempt ends.
    pool_freed: Notify,
}

/// An admitted attempt; its end is reported with [`Hosts::finish`] (dropping it
/// unreported counts as neither a success nor a failure).
#[derive(Debug)]
pub struct Admission {
    hosts: Arc<Hosts>,
    host: Arc<str>,
    pool: Pool,
    reported: bool,
}

impl Hosts {
    /// `max_in_flight`: the main pool. `max_host_rate`: attempts per second per host.
    pub fn new(max_in_flight: usize, max_host_rate: Option<f64>) -> Arc<Hosts> {
        Arc::new(Hosts {
            pools: Mutex::default(),
            main: max_in_flight.max(1),
            host_interval: max_host_rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            pool_freed: Notify::new(),
        })
    }

    /// Admits an attempt to `host` now, or says what it waits for.
    pub fn try_admit(self: &Arc<Self>, host: &str, now: Instant) -> Result<Admission, Hold> {
        let mut guard = self.pools.lock().unwrap();
        let pools = &mut *guard;
        let (main_used, probe_used, recovery_used, busy_hosts) = (
            pools.main_used,
            pools.probe_used,
            pools.recovery_used,
            pools.busy_hosts,
        );
        let entry = pools.host(host, now);
        entry.last_used = now;
        if let Some(until) = entry.backing_off_until.filter(|u| *u > now) {
            return Err(Hold::Until(until, HostState::BackingOff));
        }
        if let Some(t) = entry.not_before.filter(|t| *t > now) {
            return Err(Hold::Until(t, HostState::Limited));
        }
        if let Some(t) = entry.next_slot.filter(|t| *t > now) {
            return Err(Hold::Until(t, HostState::Limited));
        }
        let pool = if entry.probing() {
            Pool::Recovery
        } else if entry.proven {
            Pool::Main
        } else {
            Pool::Probe
        };
        let allowed = match pool {
            Pool::Main => {
                let others = busy_hosts - usize::from(entry.in_main > 0);
                // One share more than the busy hosts: room for a host not busy yet.
                let share = (self.main / (others + 2)).max(MIN_SHARE);
                entry.in_main < share && main_used < self.main
            }
            Pool::Probe => entry.in_flight < PROBES_PER_HOST && probe_used < PROBE_POOL,
            Pool::Recovery => {
                entry.in_flight == 0 && probe_used < PROBE_POOL && recovery_used < PROBE_POOL / 2
            }
        };
        if !allowed {
            return Err(Hold::Slot);
        }
        entry.in_flight += 1;
        if let Some(interval) = self.host_interval {
            entry.next_slot = Some(paced(entry.next_slot, now, interval));
        }
        let key = entry.key.clone();
        match pool {
            Pool::Main => {
                entry.in_main += 1;
                if entry.in_main == 1 {
                    pools.busy_hosts += 1;
                }
                pools.main_used += 1;
            }
            Pool::Probe => pools.probe_used += 1,
            Pool::Recovery => {
                pools.probe_used += 1;
                pools.recovery_used += 1;
            }
        }
        Ok(Admission {
            hosts: self.clone(),
            host: key,
            pool,
            reported: false,
        })
    }

    /// Waits until an attempt to `host` may start; `None` if `cancelled` completes first.
    pub async fn admit(
        self: &Arc<Self>,
        host: &str,
        cancelled: impl std::future::Future<Output = ()>,
    ) -> Option<Admission> {
        tokio::pin!(cancelled);
        loop {
            let hold = match self.try_admit(host, Instant::now()) {
                Ok(admission) => return Some(admission),
                Err(hold) => hold,
            };
            let freed = self.freed(host);
            let wait = match hold {
                Hold::Until(until, _) => until.saturating_duration_since(Instant::now()),
                Hold::Slot => BACKSTOP,
            };
            tokio::select! {
                _ = &mut cancelled => return None,
                _ = tokio::time::sleep(wait) => {}
                _ = freed.notified(), if hold == Hold::Slot => {}
                _ = self.pool_freed.notified(), if hold == Hold::Slot => {}
            }
        }
    }

    fn freed(&self, host: &str) -> Arc<Notify> {
        let mut pools = self.pools.lock().unwrap();
        pools.host(host, Instant::now()).freed.clone()
    }

    /// Where a host stands now, and until when it holds attempts.
    pub fn state(&self, host: &str) -> (HostState, Option<Instant>) {
        self.state_at(host, Instant::now())
    }

    /// Until when, as ms since the epoch, a host holds every attempt (a backoff, a
    /// `Retry-After`, its rate cap); `None` when it admits one now.
    pub fn held_until_ms(&self, host: &str) -> Option<i64> {
        self.state(host).1.map(wall_clock_ms)
    }

    fn state_at(&self, host: &str, now: Instant) -> (HostState, Option<Instant>) {
        let pools = self.pools.lock().unwrap();
        match pools.hosts.get(host) {
            None => (HostState::Open, None),
            Some(h) => (h.state(now), h.held_until(now)),
        }
    }

    /// The hosts that failed since they last answered, or that a `Retry-After` holds:
    /// what the overview lists (docs/api.md §12.2). A host only at its rate cap is not
    /// in trouble.
    pub fn troubled(&self) -> Vec<Troubled> {
        let now = Instant::now();
        let pools = self.pools.lock().unwrap();
        pools
            .hosts
            .values()
            .filter(|h| h.failures > 0 || h.not_before.is_some_and(|t| t > now))
            .map(|h| Troubled {
                host: h.key.clone(),
                state: h.state(now),
                failures: h.failures,
                until: h.held_until(now),
            })
            .collect()
    }

    /// How many hosts are in each state (for the metrics), forgetting long-unused ones.
    pub fn census(&self) -> [(HostState, usize); 3] {
        self.census_at(Instant::now())
    }

    fn census_at(&self, now: Instant) -> [(HostState, usize); 3] {
        let mut pools = self.pools.lock().unwrap();
        pools
            .hosts
            .retain(|_, h| h.in_flight > 0 || now.duration_since(h.last_used) < FORGET_AFTER);
        let mut counts = [
            (HostState::Open, 0),
            (HostState::BackingOff, 0),
            (HostState::Limited, 0),
        ];
        for host in pools.hosts.values() {
            let state = host.state(now);
            if let Some(count) = counts.iter_mut().find(|(s, _)| *s == state) {
                count.1 += 1;
            }
        }
        counts
    }

    /// Gives an admission's slot back, with how the host did when the attempt got that far.
    fn give_back(&self, admission: &Admission, outcome: Option<(HostOutcome, Option<Duration>)>) {
        let now = Instant::now();
        let mut guard = self.pools.lock().unwrap();
        let pools = &mut *guard;
        match admission.pool {
            Pool::Main => pools.main_used -= 1,
            Pool::Probe => pools.probe_used -= 1,
            Pool::Recovery => {
                pools.probe_used -= 1;
                pools.recovery_used -= 1;
            }
        }
        let Some(host) = pools.hosts.get_mut(&admission.host) else {
            return;
        };
        host.in_flight -= 1;
        if admission.pool == Pool::Main {
            host.in_main -= 1;
            if host.in_main == 0 {
                pools.busy_hosts -= 1;
            }
        }
        match outcome {
            Some((HostOutcome::Answered, _)) => {
                host.proven = true;
                host.failures = 0;
                host.backoff = FIRST_BACKOFF;
                host.backing_off_until = None;
            }
            Some((HostOutcome::Failed, retry_after)) => {
                host.failures += 1;
                if let Some(after) = retry_after {
                    host.not_before = Some(now + after);
                }
                if host.failures >= host.trip_after() {
                    host.backing_off_until = Some(now + host.backoff);
                    if host.failures == host.trip_after() {
                        tracing::warn!(host = %admission.host, backoff = ?host.backoff, "a receiving host keeps failing; backing it off as a whole");
                    }
                    host.backoff = (host.backoff * 2).min(MAX_BACKOFF);
                }
            }
            None => {}
        }
        host.freed.notify_one();
        drop(guard);
        self.pool_freed.notify_one();
    }
}

impl Admission {
    /// The attempt ended: how the host did, and its `Retry-After` if it gave one.
    pub fn finish(mut self, outcome: HostOutcome, retry_after: Option<Duration>) {
        self.reported = true;
        self.hosts.give_back(&self, Some((outcome, retry_after)));
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.reported {
            self.hosts.give_back(self, None);
        }
    }
}

/// An instant of this process as ms since the epoch, for what the API shows.
pub fn wall_clock_ms(at: Instant) -> i64 {
    let now = Instant::now();
    match at.checked_duration_since(now) {
        Some(ahead) => now_ms() + ahead.as_millis() as i64,
        None => now_ms() - now.duration_since(at).as_millis() as i64,
    }
}

/// When the attempt after one starting `now` may start, at one per `interval`: on
/// the schedule `scheduled` set, so a late start is made up by the next one and the
/// rate holds over time; an idle spell earns at most one attempt ahead.
pub fn paced(scheduled: Option<Instant>, now: Instant, interval: Duration) -> Instant {
    let on_schedule = scheduled.map_or(now, |at| at.max(now.checked_sub(interval).unwrap_or(now)));
    on_schedule + interval
}

/// The host an address belongs to for admission: `scheme://host:port`, lowercase,
/// with the scheme's default port filled in. A plain split, not a URL parse: it runs
/// once per worker wake-up, and channel addresses were validated when they were made.
pub fn host_key(address: &str) -> String {
    let Some((scheme, rest)) = address.split_once("://") else {
        return address.to_ascii_lowercase();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let scheme = scheme.to_ascii_lowercase();
    // A port follows the last ':' unless that ':' is inside an IPv6 literal.
    let has_port = authority
        .rfind(':')
        .is_some_and(|colon| !authority[colon..].contains(']'));
    let mut key = format!("{scheme}://{}", authority.to_ascii_lowercase());
    if !has_port {
        let port = match BrokerKind::of_scheme(&scheme) {
            Some((kind, tls)) => kind.default_port(tls),
            None if scheme == "https" => 443,
            None => 80,
        };
        key.push_str(&format!(":{port}"));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unproven_hosts_never_take_the_pool_of_proven_ones() {
        let hosts = Hosts::new(64, None);
        let now = Instant::now();
        // A healthy host proves itself.
        hosts
            .try_admit("h://healthy:1", now)
            .unwrap()
            .finish(HostOutcome::Answered, None);
        // A thousand black holes on a thousand hosts: only the small pool fills.
        let holes: Vec<_> = (0..1000)
            .filter_map(|i| hosts.try_admit(&format!("h://hole{i}:1"), now).ok())
            .collect();
        assert_eq!(holes.len(), PROBE_POOL);
        let healthy: Vec<_> = (0..64)
            .filter_map(|_| hosts.try_admit("h://healthy:1", now).ok())
            .collect();
        assert_eq!(
            healthy.len(),
            32,
            "the main pool is whole: half of it, alone"
        );
    }

    #[test]
    fn a_proven_host_keeps_to_its_share_and_a_new_host_starts_slowly() {
        let hosts = Hosts::new(64, None);
        let now = Instant::now();
        for host in ["h://a:1", "h://b:1"] {
            hosts
                .try_admit(host, now)
                .unwrap()
                .finish(HostOutcome::Answered, None);
        }
        let a: Vec<_> = (0..64)
            .filter_map(|_| hosts.try_admit("h://a:1", now).ok())
            .collect();
        assert_eq!(
            a.len(),
            32,
            "alone, half the pool: the other half is headroom"
        );
        let b: Vec<_> = (0..64)
            .filter_map(|_| hosts.try_admit("h://b:1", now).ok())
            .collect();
        assert_eq!(b.len(), 21, "a second busy host finds room: a third");
        drop((a, b));
        let _b = hosts.try_admit("h://b:1", now).unwrap();
        let a: Vec<_> = (0..64)
            .filter_map(|_| hosts.try_admit("h://a:1", now).ok())
            .collect();
        assert_eq!(a.len(), 21, "with another host busy, a third");
        let new: Vec<_> = (0..10)
            .filter_map(|_| hosts.try_admit("h://new:1", now).ok())
            .collect();
        assert_eq!(new.len(), PROBES_PER_HOST);
    }

    #[test]
    fn a_failing_host_is_backed_off_as_a_whole_and_probed() {
        let hosts = Hosts::new(64, None);
        let start = Instant::now();
        hosts
            .try_admit("h://down:1", start)
            .unwrap()
            .finish(HostOutcome::Answered, None);
        for _ in 0..TRIP_AFTER {
            hosts
                .try_admit("h://down:1", start)
                .unwrap()
                .finish(HostOutcome::Failed, None);
        }
        let Err(Hold::Until(until, HostState::BackingOff)) = hosts.try_admit("h://down:1", start)
        else {
            panic!("backed off");
        };
        assert!(until - start >= FIRST_BACKOFF - Duration::from_millis(50));
        assert_eq!(hosts.state("h://down:1").0, HostState::BackingOff);
        let later = until + Duration::from_millis(1);
        let probe = hosts.try_admit("h://down:1", later).expect("one probe");
        assert_eq!(
            hosts.try_admit("h://down:1", later).err(),
            Some(Hold::Slot),
            "only one"
        );
        probe.finish(HostOutcome::Answered, None);
        assert!(hosts.try_admit("h://down:1", later).is_ok(), "recovered");
    }

    #[test]
    fn hosts_in_trouble_are_those_failing_since_they_last_answered() {
        let now = Instant::now();
        let attempt = |hosts: &Arc<Hosts>, host: &str, outcome| {
            hosts.try_admit(host, now).unwrap().finish(outcome, None)
        };
        // At its rate cap (one a second) but answering: not in trouble.
        let capped = Hosts::new(64, Some(1.0));
        attempt(&capped, "h://fine:1", HostOutcome::Answered);
        assert_eq!(capped.state("h://fine:1").0, HostState::Limited);
        assert!(capped.troubled().is_empty());

        let hosts = Hosts::new(64, None);
        attempt(&hosts, "h://fine:1", HostOutcome::Answered);
        for _ in 0..PROBES_PER_HOST {
            attempt(&hosts, "h://down:1", HostOutcome::Failed);
        }
        attempt(&hosts, "h://flaky:1", HostOutcome::Answered);
        attempt(&hosts, "h://flaky:1", HostOutcome::Failed);
        let mut troubled = hosts.troubled();
        troubled.sort_by(|a, b| a.host.cmp(&b.host));
        let seen: Vec<(&str, HostState, u32)> = troubled
            .iter()
            .map(|t| (&*t.host, t.state, t.failures))
            .collect();
        assert_eq!(
            seen,
            [
                ("h://down:1", HostState::BackingOff, PROBES_PER_HOST as u32),
                ("h://flaky:1", HostState::Open, 1),
            ]
        );
        assert!(troubled[0].until.is_some_and(|until| until > now));
        assert_eq!(troubled[1].until, None);
        // An answer ends the trouble.
        attempt(&hosts, "h://flaky:1", HostOutcome::Answered);
        assert_eq!(hosts.troubled().len(), 1);
    }

    #[test]
    fn a_host_failing_its_probes_shows_as_backing_off_between_them() {
        let hosts = Hosts::new(64, None);
        let start = Instant::now();
        for _ in 0..PROBES_PER_HOST {
            hosts
                .try_admit("h://refusing:1", start)
                .unwrap()
                .finish(HostOutcome::Failed, None);
        }
        let Err(Hold::Until(until, HostState::BackingOff)) =
            hosts.try_admit("h://refusing:1", start)
        else {
            panic!("backed off");
        };
        let census = |at| hosts.census_at(at);
        let between = until + Duration::from_millis(1);
        // The backoff is over and no probe has gone out yet: still failing.
        assert_eq!(
            hosts.state_at("h://refusing:1", between),
            (HostState::BackingOff, None)
        );
        assert_eq!(census(between)[1], (HostState::BackingOff, 1));
        assert_eq!(census(between)[0], (HostState::Open, 0));
        // The probe is in flight, then fails: backing off again, for longer.
        let probe = hosts.try_admit("h://refusing:1", between).expect("a probe");
        assert_eq!(
            hosts.state_at("h://refusing:1", between).0,
            HostState::BackingOff
        );
        probe.finish(HostOutcome::Failed, None);
        let (state, next) = hosts.state("h://refusing:1");
        assert_eq!(state, HostState::BackingOff);
        assert!(next.is_some_and(|next| next > until), "{next:?}");
        let held = hosts.held_until_ms("h://refusing:1").expect("held");
        assert!(held > now_ms() + 1000, "two seconds ahead: {held}");
        // Only an answer ends it.
        let later = next.unwrap() + Duration::from_millis(1);
        hosts
            .try_admit("h://refusing:1", later)
            .unwrap()
            .finish(HostOutcome::Answered, None);
        assert_eq!(
            hosts.state_at("h://refusing:1", later),
            (HostState::Open, None)
        );
        assert_eq!(hosts.held_until_ms("h://refusing:1"), None);
    }

    #[test]
    fn a_host_that_never_answered_is_backed_off_after_its_first_probes() {
        let hosts = Hosts::new(64, None);
        let now = Instant::now();
        let probes: Vec<_> = (0..3)
            .filter_map(|_| hosts.try_admit("h://hole:1", now).ok())
            .collect();
        assert_eq!(probes.len(), PROBES_PER_HOST);
        for probe in probes {
            probe.finish(HostOutcome::Failed, None);
        }
        assert_eq!(hosts.state("h://hole:1").0, HostState::BackingOff);
        // Recovering hosts use at most half the small pool.
        let later = now + MAX_BACKOFF;
        for i in 0..PROBE_POOL {
            let host = format!("h://dead{i}:1");
            for _ in 0..PROBES_PER_HOST {
                let _ = hosts
                    .try_admit(&host, now)
                    .map(|a| a.finish(HostOutcome::Failed, None));
            }
        }
        let recovering: Vec<_> = (0..PROBE_POOL)
            .filter_map(|i| hosts.try_admit(&format!("h://dead{i}:1"), later).ok())
            .collect();
        assert_eq!(recovering.len(), PROBE_POOL / 2);
        assert!(
            hosts.try_admit("h://new:1", later).is_ok(),
            "a new host still gets a probe"
        );
    }

    #[test]
    fn retry_after_holds_every_channel_of_the_host_and_rates_are_capped() {
        let hosts = Hosts::new(64, Some(10.0));
        let now = Instant::now();
        hosts
            .try_admit("h://busy:1", now)
            .unwrap()
            .finish(HostOutcome::Failed, Some(Duration::from_secs(3)));
        let Err(Hold::Until(until, HostState::Limited)) = hosts.try_admit("h://busy:1", now) else {
            panic!("held");
        };
        assert!(until >= now + Duration::from_secs(3));
        // 10 per second: the next attempt 100 ms after the last.
        let first = hosts.try_admit("h://rated:1", now).unwrap();
        drop(first);
        assert!(matches!(
            hosts.try_admit("h://rated:1", now),
            Err(Hold::Until(_, HostState::Limited))
        ));
        assert!(hosts
            .try_admit("h://rated:1", now + Duration::from_millis(100))
            .is_ok());
    }

    #[test]
    fn pacing_makes_up_late_starts_but_never_saves_up_a_burst() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(paced(None, t0, ms(100)), t0 + ms(100));
        // Started 30 ms late: the next is still due on the schedule.
        assert_eq!(
            paced(Some(t0 + ms(100)), t0 + ms(130), ms(100)),
            t0 + ms(200)
        );
        // Idle for a second: one attempt may follow at once, then the schedule.
        assert_eq!(
            paced(Some(t0 + ms(100)), t0 + ms(1100), ms(100)),
            t0 + ms(1100)
        );
    }

    #[test]
    fn hosts_are_scheme_host_and_port() {
        assert_eq!(
            host_key("https://Example.com/a?b"),
            "https://example.com:443"
        );
        assert_eq!(host_key("https://Example.com?b"), "https://example.com:443");
        assert_eq!(host_key("http://127.0.0.1:9000/x"), "http://127.0.0.1:9000");
        assert_eq!(host_key("http://u:p@h.example/x"), "http://h.example:80");
        assert_eq!(host_key("http://[::1]/x"), "http://[::1]:80");
        assert_eq!(host_key("http://[::1]:8080/x"), "http://[::1]:8080");
    }
}
