//! `watchwire serve` options (docs/api.md §12). Every flag also reads from the environment.
//!
//! Here: the options themselves and what `validate` makes of them. Beside them, one
//! idea a file: `listen.rs` (`--listen`), `cors.rs` (`--cors-origins`), `keys.rs` (the
//! `--config` key file), `validate.rs` (the checks before startup), and the value
//! syntax both commands share, `duration.rs` and `switch.rs`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cidr::Cidr;
use crate::protocol::resource::ServicePrefixes;

mod cors;
pub mod duration;
mod keys;
mod listen;
pub mod switch;
mod validate;

pub use cors::CorsOrigins;
pub use keys::{FileConfig, KeyConfig};
pub use listen::ListenAddr;
// `--log-format` takes the formats telemetry defines: telemetry sits below the options.
pub use crate::telemetry::LogFormat;
use duration::parse_duration;
use switch::parse_switch;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on: `HOST:PORT`, the host an IP address (`[::1]` for IPv6) or
    /// a name such as `localhost`.
    #[arg(long, env = "WATCHWIRE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: ListenAddr,

    /// Directory of the embedded store.
    #[arg(long, env = "WATCHWIRE_DATA_DIR", default_value = "./watchwire-data")]
    pub data_dir: PathBuf,

    /// Keep everything in PostgreSQL instead of the embedded store
    /// (`postgres://user@host:5432/db`); every `serve` on the same database is a node of
    /// one gateway.
    #[arg(long, env = "WATCHWIRE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// This node's name in a cluster (default: the host name and a random suffix).
    #[arg(long, env = "WATCHWIRE_NODE_ID")]
    pub node_id: Option<String>,

    /// How long a node of a cluster keeps its channels without renewing its lease;
    /// others take them over within this plus a few seconds.
    #[arg(long, env = "WATCHWIRE_LEASE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub lease_ttl: Duration,

    /// Development mode: no API keys needed, http:// and private targets allowed,
    /// loopback listen address only.
    #[arg(long, env = "WATCHWIRE_DEV", value_parser = parse_switch)]
    pub dev: bool,

    /// API key allowed to do everything (repeatable).
    #[arg(
        long = "api-key",
        env = "WATCHWIRE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// Base URL in front of resource paths in `resourceUri` (default `http://{listen}`).
    #[arg(long, env = "WATCHWIRE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Extra service prefix to strip from resource paths, e.g. `/gmail/v1` (repeatable).
    #[arg(
        long = "strip-prefix",
        env = "WATCHWIRE_STRIP_PREFIXES",
        value_delimiter = ','
    )]
    pub strip_prefixes: Vec<String>,

    /// Lifetime of a channel that asks for none.
    #[arg(long, env = "WATCHWIRE_DEFAULT_CHANNEL_TTL", default_value = "7d", value_parser = parse_duration)]
    pub default_channel_ttl: Duration,

    /// Longest lifetime a channel may have.
    #[arg(long, env = "WATCHWIRE_MAX_CHANNEL_TTL", default_value = "30d", value_parser = parse_duration)]
    pub max_channel_ttl: Duration,

    /// Delays between delivery attempts; the last one repeats. Each gets ±20 % jitter.
    #[arg(long, env = "WATCHWIRE_RETRY_SCHEDULE", default_value = "1s,5s,30s,2m,10m,30m,1h", value_delimiter = ',', value_parser = parse_duration)]
    pub retry_schedule: Vec<Duration>,

    /// How long one notification is retried before it is recorded as failed.
    #[arg(long, env = "WATCHWIRE_RETRY_BUDGET", default_value = "24h", value_parser = parse_duration)]
    pub retry_budget: Duration,

    /// Connect timeout of a delivery attempt.
    #[arg(long, env = "WATCHWIRE_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Timeout of a whole delivery attempt.
    #[arg(long, env = "WATCHWIRE_DELIVERY_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub delivery_timeout: Duration,

    /// Most delivery attempts in flight at once, across all channels; also the number
    /// of warm connections kept per receiving host.
    #[arg(long, env = "WATCHWIRE_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,

    /// Most delivery attempts per second to any one receiving host (scheme, host and
    /// port), across its channels; unset means no cap. A channel's own
    /// `params.maxRate` can only lower its rate further.
    #[arg(long, env = "WATCHWIRE_MAX_HOST_RATE")]
    pub max_host_rate: Option<u32>,

    /// How long before a channel expires its `channel.expiring` operational event is
    /// published.
    #[arg(long, env = "WATCHWIRE_EXPIRING_NOTICE", default_value = "24h", value_parser = parse_duration)]
    pub expiring_notice: Duration,

    /// How often expired channels are removed.
    #[arg(long, env = "WATCHWIRE_EXPIRY_SWEEP", default_value = "30s", value_parser = parse_duration)]
    pub expiry_sweep: Duration,

    /// Largest API request body.
    #[arg(long, env = "WATCHWIRE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// How long in-flight deliveries may finish after SIGTERM / ctrl-c.
    #[arg(long, env = "WATCHWIRE_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// TOML file with named API keys, their scopes, prefixes and signing secrets.
    #[arg(long, env = "WATCHWIRE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Networks (CIDR) that deliveries may reach even though they are private, over
    /// http:// too, e.g. `10.0.0.0/8,192.168.1.5/32`.
    #[arg(
        long = "allow-targets",
        env = "WATCHWIRE_ALLOW_TARGETS",
        value_delimiter = ','
    )]
    pub allow_targets: Vec<String>,

    /// PEM file of extra CA certificates trusted for outbound HTTPS.
    #[arg(long, env = "WATCHWIRE_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Local IP address deliveries connect from, on a host with several (the one
    /// receivers' firewalls allow); unset, the system picks one.
    #[arg(long, env = "WATCHWIRE_OUTBOUND_ADDRESS")]
    pub outbound_address: Option<std::net::IpAddr>,

    /// PEM client certificate every HTTPS delivery presents (mutual TLS), for keys
    /// without a `client_cert` of their own in `--config`; with `--client-key`.
    #[arg(long, env = "WATCHWIRE_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of `--client-cert`.
    #[arg(long, env = "WATCHWIRE_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,

    /// Forward proxy every delivery and token request goes through, `http://host:port`
    /// (`CONNECT` for https:// receivers). The target policy is still checked here: the
    /// proxy is asked for the checked address, never for a name.
    #[arg(long, env = "WATCHWIRE_EGRESS_PROXY")]
    pub egress_proxy: Option<String>,

    /// A broker channels may deliver to (`nats://`, `tls://`, `amqp://`, `amqps://`,
    /// `redis://`, `rediss://`), with the credentials and TLS the gateway connects
    /// with; repeat for each. A channel's address must name one of them.
    #[arg(long = "broker", env = "WATCHWIRE_BROKERS", value_delimiter = ',')]
    pub brokers: Vec<String>,

    /// OpenTelemetry: the OTLP/HTTP base URL spans are exported to (`/v1/traces` is
    /// appended); unset (with `--otlp-traces-endpoint`), no spans are exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// OpenTelemetry: the full URL spans are exported to, used as it is.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<String>,

    /// OpenTelemetry: headers of every export, `name=value,…` (credentials of the
    /// collector: never shown).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_HEADERS", hide_env_values = true)]
    pub otlp_headers: Option<String>,

    /// OpenTelemetry: how long one export may take, in milliseconds.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TIMEOUT", default_value_t = 10_000)]
    pub otlp_timeout: u64,

    /// OpenTelemetry: the `service.name` of exported spans.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "watchwire")]
    pub service_name: String,

    /// Notifications carry no `traceparent` header.
    #[arg(long, env = "WATCHWIRE_NO_TRACE_PROPAGATION")]
    pub no_trace_propagation: bool,

    /// Largest request line plus headers, in bytes (`431` beyond).
    #[arg(long, env = "WATCHWIRE_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Most headers in one request (`431` beyond).
    #[arg(long, env = "WATCHWIRE_MAX_HEADERS", default_value_t = 100)]
    pub max_headers: usize,

    /// A client must send its request head within this time, or the connection closes.
    #[arg(long, env = "WATCHWIRE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// A whole API request (body included) must arrive and be answered within this time.
    #[arg(long, env = "WATCHWIRE_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Most events in one publish.
    #[arg(long, env = "WATCHWIRE_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,

    /// Most live channels one API key may hold.
    #[arg(
        long,
        env = "WATCHWIRE_MAX_CHANNELS_PER_KEY",
        default_value_t = 100_000
    )]
    pub max_channels_per_key: u64,

    /// A channel whose endpoint fails this long without a single success is disabled.
    #[arg(long, env = "WATCHWIRE_DISABLE_AFTER", default_value = "3d", value_parser = parse_duration)]
    pub disable_after: Duration,

    /// How long events stay in the log for streams, polling and replay (pending
    /// deliveries are always kept).
    #[arg(long, env = "WATCHWIRE_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub retention: Duration,

    /// How long delivery-log entries are kept.
    #[arg(long, env = "WATCHWIRE_LOG_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub log_retention: Duration,

    /// How often old events and delivery-log entries are pruned.
    #[arg(long, env = "WATCHWIRE_PRUNE_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub prune_interval: Duration,

    /// Idle time after which a stream with `checkpoints=true` gets a checkpoint.
    #[arg(long, env = "WATCHWIRE_CHECKPOINT_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub checkpoint_interval: Duration,

    /// Events a stream may have waiting for a slow consumer before it is cut off.
    #[arg(long, env = "WATCHWIRE_STREAM_BUFFER", default_value_t = 1024)]
    pub stream_buffer: usize,

    /// A stream whose consumer takes no event for this long is cut off.
    #[arg(long, env = "WATCHWIRE_STREAM_STALL_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub stream_stall_timeout: Duration,

    /// `Cache-Control: max-age` of changeset answers.
    #[arg(long, env = "WATCHWIRE_CHANGES_MAX_AGE", default_value = "0s", value_parser = parse_duration)]
    pub changes_max_age: Duration,

    /// `max-age` when `_expected` is already satisfied (the URL then never changes meaning).
    #[arg(long, env = "WATCHWIRE_CHANGES_EXPECTED_MAX_AGE", default_value = "60s", value_parser = parse_duration)]
    pub changes_expected_max_age: Duration,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "WATCHWIRE_LOG", default_value = "info")]
    pub log: String,

    /// Log lines as human-readable text, or one JSON object per line for log shippers.
    #[arg(long, env = "WATCHWIRE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Browser origins allowed to call the `/v1` API (CORS): exact origins such as
    /// `https://app.example.com`, comma-separated, or `*` for any. Default: `*` with
    /// `--dev`, none otherwise.
    #[arg(
        long = "cors-origins",
        env = "WATCHWIRE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
}

/// The most events `--stream-buffer` may hold back for one stream.
pub const MAX_STREAM_BUFFER: usize = 1_000_000;

impl ServeArgs {
    /// This node's id: `--node-id`, or the host name and a random suffix.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node".into());
            let host: String = host
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .take(48)
                .collect();
            format!("{host}-{:08x}", rand::random::<u32>())
        })
    }

    /// Defaults as the command line has them, for tests and embedding.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut args = Self::try_parse(&[]).unwrap_or_else(|e| e.exit());
        args.data_dir = data_dir.into();
        args
    }

    /// Parses `serve`'s options (without the program's name) and the environment as
    /// the command line does.
    fn try_parse(args: &[&str]) -> Result<Self, clap::Error> {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        Wrapper::try_parse_from(std::iter::once("watchwire").chain(args.iter().copied()))
            .map(|w| w.args)
    }
}

/// What `validate` derives from the options.
#[derive(Debug, Clone)]
pub struct Settings {
    pub prefixes: ServicePrefixes,
    pub keys: Vec<KeyConfig>,
    pub allow_targets: Vec<Cidr>,
    pub cors: CorsOrigins,
    /// `--egress-proxy`, checked.
    pub egress_proxy: Option<crate::delivery::egress::ProxyAddress>,
    /// `--broker`, checked.
    pub brokers: Vec<crate::delivery::brokers::address::BrokerUrl>,
    /// Where spans are exported; `None`: nowhere.
    pub trace_export: Option<crate::trace::export::ExportOptions>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a `serve` command line as clap does, into its error text on failure.
    pub(super) fn parse(args: &[&str]) -> Result<ServeArgs, String> {
        ServeArgs::try_parse(args).map_err(|e| e.to_string())
    }

    /// The defaults with `--dev`, which needs no key.
    pub(super) fn dev() -> ServeArgs {
        let mut args = ServeArgs::for_data_dir("/tmp/x");
        args.dev = true;
        args
    }

    #[test]
    fn a_bare_number_is_refused_naming_the_option() {
        let err = parse(&["--retry-budget", "5"]).unwrap_err();
        assert!(
            err.contains("--retry-budget") && err.contains("needs a unit"),
            "{err}"
        );
        let err = parse(&["--retry-schedule", "1s,30"]).unwrap_err();
        assert!(
            err.contains("--retry-schedule") && err.contains("\"30\" needs a unit"),
            "{err}"
        );
        let args = parse(&["--retry-budget", "1.5h"]).unwrap();
        assert_eq!(args.retry_budget, Duration::from_secs(5400));
    }

    #[test]
    fn log_format() {
        assert_eq!(dev().log_format, LogFormat::Text);
        assert_eq!(
            parse(&["--log-format", "json"]).unwrap().log_format,
            LogFormat::Json
        );
        assert!(parse(&["--log-format", "xml"])
            .unwrap_err()
            .contains("--log-format"));
    }
}
