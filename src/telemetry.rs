//! Logs (`tracing`) and metrics (Prometheus). Both are process-wide, installed once.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder on first use and returns its handle.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("watchwire_delivery_latency_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            recorder
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "watchwire_events_published_total",
        "Events appended to the log."
    );
    metrics::describe_counter!(
        "watchwire_notifications_total",
        "Notification attempts by outcome: delivered, retried, failed."
    );
    metrics::describe_histogram!(
        "watchwire_delivery_latency_seconds",
        "From publish to a delivered notification."
    );
    metrics::describe_gauge!("watchwire_channels_live", "Channels currently registered.");
    metrics::describe_gauge!(
        "watchwire_pending_notifications",
        "Notifications queued in memory, not yet done."
    );
    metrics::describe_gauge!(
        "watchwire_channels_backlogged",
        "Channels whose pending notifications are read from the store."
    );
    metrics::describe_counter!(
        "watchwire_store_commits_total",
        "Store transactions committed (each one fsync)."
    );
}

/// Installs the log subscriber once; later calls do nothing.
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
