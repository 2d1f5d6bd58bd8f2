//! soak: a steady load for minutes against a gateway with short retention, sampling the
//! store's size on disk and the gateway's memory as it goes. Once the retention window
//! (plus one prune interval) has passed, pruning removes as much as publishing adds, so
//! both must stay flat: a store or a heap that keeps growing means retention cannot keep
//! up with the load.
//!
//! `soak_channels` channels watch one collection; `soak_rate` single-event publishes per
//! second (an open loop, as in the latency scenario) each go to a new resource below it,
//! with 1 KiB of data, so the events, the delivery log and the polling index all turn
//! over. Every notification must arrive, in order per channel.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{check_delivery, watched, Ctx};
use crate::format::{duration_arg, format_count, mb};
use crate::gateway::Gateway;
use crate::load;
use crate::receiver::Receiver;
use crate::stats::Percentiles;

const COLLECTION: &str = "/bench/soak";
/// Size of every event's `data`.
pub const EVENT_BYTES: usize = 1024;
/// The last third of the run counts as flat when it grew less than this.
pub const FLAT_GROWTH: f64 = 0.10;

/// One reading, taken every `soak_sample_seconds`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Since the first publish.
    pub seconds: f64,
    /// Every file in the gateway's data directory (`watchwire.db`, `-wal`, `-shm`).
    pub store_bytes: u64,
    /// `VmRSS` and `RssAnon` of the gateway.
    pub rss_bytes: u64,
    pub anon_bytes: u64,
    /// Distinct event notifications the receiver had so far.
    pub delivered: u64,
    /// The gateway's own gauges, when its `/metrics` has them (null otherwise).
    pub watchwire_store_bytes: Option<f64>,
    pub watchwire_prune_lag_seconds: Option<f64>,
}

/// How one quantity (store size, RSS, anonymous memory) moved after the retention window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Growth {
    /// At the first sample at or after `window_seconds` (null: the run ended before).
    pub at_window_bytes: Option<u64>,
    /// At the last sample.
    pub end_bytes: u64,
    /// `end_bytes / at_window_bytes`.
    pub ratio_after_window: Option<f64>,
    /// Over the last third of the run: last sample / first sample in it − 1.
    pub last_third_growth: Option<f64>,
    /// `last_third_growth` under 10 %; null when the last third starts inside the window
    /// (the run was too short to tell).
    pub flat: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Soak {
    pub channels: usize,
    /// Events per second asked for, and what the publisher achieved.
    pub rate: u64,
    pub achieved_rate: f64,
    pub event_bytes: usize,
    /// How long publishing took.
    pub seconds: f64,
    pub retention_seconds: f64,
    pub log_retention_seconds: f64,
    pub prune_interval_seconds: f64,
    /// Whether the samples read the gateway's `/metrics` (`--soak-no-metrics`: no).
    #[serde(default)]
    pub scraped_metrics: bool,
    /// The longer retention plus one prune interval: from here on nothing should grow.
    pub window_seconds: f64,
    pub events: u64,
    /// events × channels; every one arrived (the scenario fails otherwise).
    pub notifications: u64,
    pub delivered: u64,
    pub duplicates: u64,
    /// Publish sent → its durable `200`, over the whole run.
    pub ack: Percentiles,
    /// Oldest first; the last is taken once everything was delivered.
    pub samples: Vec<Sample>,
    pub store: Growth,
    pub rss: Growth,
    pub anon: Growth,
}

impl Soak {
    /// The soak's load and the gateway's retention flags, as the report states them.
    pub fn conditions(&self) -> String {
        format!(
            "{} ev/s to {} channels ({} notifications/s), {} B events, {:.0} s; --retention {} --log-retention {} --prune-interval {}{}",
            self.rate,
            self.channels,
            format_count((self.rate * self.channels as u64) as f64),
            self.event_bytes,
            self.seconds,
            duration_arg(self.retention_seconds),
            duration_arg(self.log_retention_seconds),
            duration_arg(self.prune_interval_seconds),
            if self.scraped_metrics {
                ""
            } else {
                "; /metrics never scraped"
            }
        )
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Soak> {
    let sizes = &ctx.sizes;
    let launch = ctx
        .launch("soak")
        .await?
        .arg("--retention", &duration_arg(sizes.soak_retention_seconds))
        .arg(
            "--log-retention",
            &duration_arg(sizes.soak_log_retention_seconds),
        )
        .arg(
            "--prune-interval",
            &duration_arg(sizes.soak_prune_interval_seconds),
        );
    let channels = sizes.soak_channels;
    let (gateway, receiver, _) = watched(ctx, &launch, channels, COLLECTION).await?;

    let rate = sizes.soak_rate;
    let events = ((rate as f64 * sizes.soak_seconds).round() as u64).max(1);
    let notifications = events * channels as u64;
    let client = load::client(sizes.connections)?;
    let scrape = sizes.soak_scrape_metrics;
    let done = CancellationToken::new();
    let began = Instant::now();
    let publishing = async {
        let sent = async {
            let sent = load::paced(
                &client,
                std::slice::from_ref(&gateway.url),
                rate,
                events,
                |i| load::sized_event_json(&format!("{COLLECTION}/items/{i}"), EVENT_BYTES),
            )
            .await?;
            receiver.wait_events(notifications, sizes.stall()).await?;
            anyhow::Ok(sent)
        }
        .await;
        done.cancel();
        sent
    };
    let sampling = async {
        let mut samples = Vec::new();
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(sizes.soak_sample_seconds.max(0.1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = done.cancelled() => break,
            }
            let s = sample(&gateway, &receiver, &client, began, scrape).await?;
            println!(
                "  soak {:>5.0} s: store {:>6.1} MB, RSS {:>5.1} MB (anon {:>5.1}), {} delivered",
                s.seconds,
                mb(s.store_bytes),
                mb(s.rss_bytes),
                mb(s.anon_bytes),
                s.delivered
            );
            samples.push(s);
        }
        anyhow::Ok(samples)
    };
    // A failed sample stops the publishing too, and the other way round.
    let (sent, mut samples) = tokio::try_join!(publishing, sampling)?;
    samples.push(sample(&gateway, &receiver, &client, began, scrape).await?);
    check_delivery(&receiver, notifications)?;
    ctx.finish(gateway).await?;

    let sending = sent.sending.as_secs_f64();
    let window = sizes
        .soak_retention_seconds
        .max(sizes.soak_log_retention_seconds)
        + sizes.soak_prune_interval_seconds;
    Ok(Soak {
        channels,
        rate,
        achieved_rate: events as f64 / (sending + 1.0 / rate.max(1) as f64),
        event_bytes: EVENT_BYTES,
        seconds: sending,
        retention_seconds: sizes.soak_retention_seconds,
        log_retention_seconds: sizes.soak_log_retention_seconds,
        prune_interval_seconds: sizes.soak_prune_interval_seconds,
        scraped_metrics: sizes.soak_scrape_metrics,
        window_seconds: window,
        events,
        notifications,
        delivered: receiver.counts().distinct.load(Relaxed),
        duplicates: super::duplicates(&receiver),
        ack: Percentiles::of_micros(sent.acks_us),
        store: Growth::of(&samples, window, |s| s.store_bytes),
        rss: Growth::of(&samples, window, |s| s.rss_bytes),
        anon: Growth::of(&samples, window, |s| s.anon_bytes),
        samples,
    })
}

/// One reading; the gauges only when `scrape`.
async fn sample(
    gateway: &Gateway,
    receiver: &Receiver,
    client: &reqwest::Client,
    began: Instant,
    scrape: bool,
) -> anyhow::Result<Sample> {
    let gauge = |name: &'static str| async move {
        match scrape {
            true => gateway.metric(client, name).await,
            false => Ok(None),
        }
    };
    Ok(Sample {
        seconds: began.elapsed().as_secs_f64(),
        store_bytes: dir_bytes(&gateway.data_dir)?,
        rss_bytes: gateway.rss()?,
        anon_bytes: gateway.anon_rss()?,
        delivered: receiver.counts().distinct.load(Relaxed),
        watchwire_store_bytes: gauge("watchwire_store_bytes").await?,
        watchwire_prune_lag_seconds: gauge("watchwire_prune_lag_seconds").await?,
    })
}

/// The sizes of every file below `dir`. A file removed while it is being read (SQLite
/// drops `-wal` and `-shm` on close) counts as empty.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        match entry.metadata() {
            Ok(m) if m.is_dir() => total += dir_bytes(&entry.path())?,
            Ok(m) => total += m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(total)
}

impl Growth {
    /// How `value` moved over `samples` (oldest first) once `window` seconds had passed.
    pub fn of(samples: &[Sample], window: f64, value: impl Fn(&Sample) -> u64) -> Growth {
        let end = samples.last().map_or(0, &value);
        let at_window = samples.iter().find(|s| s.seconds >= window).map(&value);
        let ratio = |from: u64| (from > 0).then(|| end as f64 / from as f64);
        let end_seconds = samples.last().map_or(0.0, |s| s.seconds);
        let third = samples
            .iter()
            .find(|s| s.seconds >= end_seconds * 2.0 / 3.0)
            .filter(|_| samples.len() >= 2);
        let last_third_growth = third.map(&value).and_then(ratio).map(|r| r - 1.0);
        Growth {
            at_window_bytes: at_window,
            end_bytes: end,
            ratio_after_window: at_window.and_then(ratio),
            last_third_growth,
            flat: last_third_growth
                .filter(|_| third.is_some_and(|s| s.seconds >= window))
                .map(|g| g < FLAT_GROWTH),
        }
    }

    /// "45.0 → 47.0 MB (last third +2.0 %: flat)": from the end of the window to the end.
    pub fn note(&self) -> String {
        let at = self
            .at_window_bytes
            .map_or("—".to_string(), |b| format!("{:.1}", mb(b)));
        let third = match (self.last_third_growth, self.flat) {
            (Some(growth), Some(flat)) => format!(
                " (last third {:+.1} %: {})",
                growth * 100.0,
                if flat { "flat" } else { "growing" }
            ),
            (Some(growth), None) => format!(
                " (last third {:+.1} %, inside the window: too short to tell)",
                growth * 100.0
            ),
            _ => String::new(),
        };
        format!("{at} → {:.1} MB{third}", mb(self.end_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(values: &[(f64, u64)]) -> Vec<Sample> {
        values
            .iter()
            .map(|&(seconds, store_bytes)| Sample {
                seconds,
                store_bytes,
                rss_bytes: 1,
                anon_bytes: 1,
                delivered: 0,
                watchwire_store_bytes: None,
                watchwire_prune_lag_seconds: None,
            })
            .collect()
    }

    #[test]
    fn growth_after_the_window_and_over_the_last_third() {
        // Grows until the window (4 s), then flat within a few percent.
        let flat = samples(&[(0.0, 10), (2.0, 50), (4.0, 100), (8.0, 104), (12.0, 105)]);
        let g = Growth::of(&flat, 4.0, |s| s.store_bytes);
        assert_eq!(g.at_window_bytes, Some(100));
        assert_eq!(g.end_bytes, 105);
        assert!((g.ratio_after_window.unwrap() - 1.05).abs() < 1e-9);
        assert!((g.last_third_growth.unwrap() - 105.0 / 104.0 + 1.0).abs() < 1e-9);
        assert_eq!(g.flat, Some(true));

        let growing = samples(&[(0.0, 10), (4.0, 100), (8.0, 200), (12.0, 300)]);
        let g = Growth::of(&growing, 4.0, |s| s.store_bytes);
        assert_eq!(g.ratio_after_window, Some(3.0));
        assert_eq!(g.flat, Some(false));

        // The last third starts inside the window: too short to tell.
        let short = samples(&[(0.0, 10), (2.0, 20), (3.0, 20)]);
        let g = Growth::of(&short, 4.0, |s| s.store_bytes);
        assert_eq!(
            (g.at_window_bytes, g.ratio_after_window, g.flat),
            (None, None, None)
        );
        assert_eq!(g.end_bytes, 20);

        let g = Growth::of(&[], 4.0, |s| s.store_bytes);
        assert_eq!((g.end_bytes, g.last_third_growth, g.flat), (0, None, None));
    }

    #[test]
    fn a_directory_counts_every_file_below_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("watchwire.db"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("watchwire.db-wal"), [0u8; 20]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("x"), [0u8; 3]).unwrap();
        assert_eq!(dir_bytes(dir.path()).unwrap(), 123);
    }
}
