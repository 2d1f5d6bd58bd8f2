//! `watchwire-bench`: throughput, latency and memory of the watchwire gateway on this
//! machine.
//!
//! One run starts a counting hyper receiver on loopback ([`receiver`]), runs the gateway
//! binary (`--gateway`) as `watchwire serve` child processes with the embedded store
//! (`synchronous=FULL`, [`gateway`]), drives it ([`load`]) through each scenario
//! ([`scenarios`]), and writes `results.json`, `results.md` and `chart.svg` ([`report`],
//! [`chart`]). With `--database-url` the fan-out, publish and latency scenarios run a
//! second time right after, on the PostgreSQL store ([`postgres`]), and the report puts
//! both stores side by side. The raw loopback ceiling always runs first: every
//! throughput is also given as a ratio to it, because absolute numbers drift on a shared
//! machine. BENCHMARKS.md explains the figures.
//!
//! Imports go one way, from the top: [`run`] (given [`args`]) → [`report`] (renders),
//! [`targets`] and [`comparison`] (judge) → [`results`] → [`scenarios`] (each measures
//! and returns its own results type) → what they measure with ([`gateway`], [`load`],
//! [`receiver`], [`postgres`], [`cpu`], [`clock`], [`stats`]) and the leaves [`check`],
//! [`format`](mod@format) and [`chart`] (which only the report draws with).

mod args;
mod chart;
mod check;
mod clock;
mod comparison;
mod cpu;
mod format;
mod gateway;
mod load;
mod postgres;
mod receiver;
mod report;
mod results;
mod run;
mod scenarios;
mod stats;
mod targets;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = args::BenchArgs::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run::run(args))
}
