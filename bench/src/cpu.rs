//! How busy the machine was with other work while a scenario ran. The machine is shared,
//! so every scenario records the CPU time that neither the benchmark nor its gateways
//! used: a large share means the figures of that scenario are depressed by a neighbour.
//! Kernel threads doing this benchmark's disk writes count as others (a few percent).
//! So would a broker the gateway delivers to, were it not read by its process name
//! ([`processes_seconds`]) and counted apart.

use serde::{Deserialize, Serialize};

/// `USER_HZ` (`getconf CLK_TCK`): 100 on every Linux this runs on.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// A reading of the machine's and this process tree's CPU counters.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    machine_busy: f64,
    ours: f64,
    at: std::time::Instant,
}

/// What others used between two readings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Foreign {
    pub scenario: String,
    pub wall_seconds: f64,
    /// CPU seconds used by processes other than the benchmark, its gateways, (with
    /// `--database-url`) the PostgreSQL server's work for them and the broker of a
    /// broker scenario.
    pub cpu_seconds: f64,
    /// CPU seconds the PostgreSQL server spent for this run's gateways (0 without
    /// `--database-url`).
    #[serde(default)]
    pub database_cpu_seconds: f64,
    /// CPU seconds the broker of a broker scenario used meanwhile (0 in the others).
    #[serde(default)]
    pub broker_cpu_seconds: f64,
    /// That as a share of the machine's capacity over the scenario (0 to 1).
    pub share: f64,
}

impl Reading {
    pub fn now() -> Reading {
        Reading {
            machine_busy: machine_busy_seconds().unwrap_or(0.0),
            ours: own_tree_seconds().unwrap_or(0.0),
            at: std::time::Instant::now(),
        }
    }

    /// Foreign CPU use since `self`. Gateways count as ours once they were reaped (every
    /// scenario stops its gateways before it returns); so do `database_seconds`, what
    /// the PostgreSQL server spent for them meanwhile, and `broker_seconds`, what the
    /// broker they delivered to used.
    pub fn foreign_since(
        &self,
        scenario: &str,
        database_seconds: f64,
        broker_seconds: f64,
    ) -> Foreign {
        let now = Reading::now();
        let wall = now.at.duration_since(self.at).as_secs_f64();
        let cpu = ((now.machine_busy - self.machine_busy)
            - (now.ours - self.ours)
            - database_seconds
            - broker_seconds)
            .max(0.0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Foreign {
            scenario: scenario.to_string(),
            wall_seconds: wall,
            cpu_seconds: cpu,
            database_cpu_seconds: database_seconds,
            broker_cpu_seconds: broker_seconds,
            share: (cpu / (wall * cores).max(1e-9)).min(1.0),
        }
    }
}

/// CPU time of the whole machine spent in processes (`/proc/stat` user, nice, system)
/// and stolen by the hypervisor. Interrupt and softirq time are left out: on loopback
/// they are mostly this benchmark's own packets, and no process is charged for them.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: f64 = [0, 1, 2, 7].iter().filter_map(|&i| fields.get(i)).sum();
    Some(busy / TICKS_PER_SECOND)
}

/// CPU time so far (user + system) of every process of this machine named `name` (its
/// `/proc/PID/comm`, e.g. `nats-server`), seconds; `None` when there is none (the
/// program runs elsewhere, or under another name).
pub fn processes_seconds(name: &str) -> Option<f64> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let path = entry.path();
        let is_pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        // Gone meanwhile, or not ours to read: not counted.
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if head.split_once('(').map(|(_, comm)| comm) != Some(name) {
            continue;
        }
        let fields: Vec<f64> = rest
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // utime and stime: fields 14 and 15, 10 and 11 of the numbers after the state.
        if let Some(times) = fields.get(10..12) {
            *found.get_or_insert(0.0) += times.iter().sum::<f64>() / TICKS_PER_SECOND;
        }
    }
    found
}

/// CPU time of this process alone (user + system, every thread), seconds: over a raw
/// measurement, what its client and receiver cost (no gateway runs then).
pub fn own_seconds() -> Option<f64> {
    own_stat_seconds(2)
}

/// CPU time of this process and of its reaped children (`/proc/self/stat` fields 14-17).
fn own_tree_seconds() -> Option<f64> {
    own_stat_seconds(4)
}

/// The sum of the first `count` of `/proc/self/stat`'s utime, stime, cutime, cstime
/// (fields 14-17), in seconds.
fn own_stat_seconds(count: usize) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    // After ')' the state (not a number) is dropped by the parse, so fields 14.. are
    // the numbers from index 10.
    let fields: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    Some(fields.get(10..10 + count)?.iter().sum::<f64>() / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_readable_and_an_idle_wait_is_not_foreign_work_of_ours() {
        assert!(machine_busy_seconds().is_some());
        assert!(own_tree_seconds().is_some());
        let start = Reading::now();
        let f = start.foreign_since("t", 0.0, 0.0);
        assert!(f.cpu_seconds >= 0.0 && (0.0..=1.0).contains(&f.share));
    }

    #[test]
    fn a_process_is_found_by_its_name() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let name = &stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()];
        assert!(processes_seconds(name).is_some_and(|s| s >= 0.0));
        assert_eq!(processes_seconds("no such program, surely"), None);
    }
}
