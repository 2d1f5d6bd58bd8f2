//! `watchwire serve` options (docs/api.md §12). Every flag also reads from the environment.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cidr::Cidr;
use crate::protocol::resource::ServicePrefixes;

pub mod duration;
pub mod switch;

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

/// `--listen`: `HOST:PORT` as given, and the addresses it resolved to at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    given: String,
    addrs: Vec<SocketAddr>,
}

impl ListenAddr {
    /// Every address the host resolved to; binding takes the first that works.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Only this machine can connect: every address it names is a loopback one.
    pub fn is_loopback(&self) -> bool {
        self.addrs.iter().all(|a| a.ip().is_loopback())
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.given)
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const FORM: &str = "give HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080, localhost:8080 or 0.0.0.0:8080 for every interface";
        let given = s.trim().to_string();
        if let Ok(addr) = given.parse::<SocketAddr>() {
            return Ok(ListenAddr {
                given,
                addrs: vec![addr],
            });
        }
        if given.parse::<u16>().is_ok() {
            return Err(format!("{given:?} is a port alone; {FORM}"));
        }
        let Some((host, port)) = given.rsplit_once(':') else {
            return Err(format!("{given:?} has no port; {FORM}"));
        };
        if host.is_empty() {
            return Err(format!("{given:?} has no host; {FORM}"));
        }
        if port.parse::<u16>().is_err() {
            return Err(format!(
                "{given:?}: {port:?} is not a port (0 to 65535); {FORM}"
            ));
        }
        let addrs: Vec<SocketAddr> = given
            .to_socket_addrs()
            .map_err(|e| format!("{given:?}: the host {host:?} does not resolve ({e}); {FORM}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!(
                "{given:?}: the host {host:?} resolves to no address; {FORM}"
            ));
        }
        Ok(ListenAddr { given, addrs })
    }
}

/// Which browser origins may call the `/v1` API (`--cors-origins`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all: browsers on other origins cannot call the API.
    None,
    /// `Access-Control-Allow-Origin: *`.
    Any,
    /// These exact origins (scheme, host and port, as browsers send `Origin`).
    List(Vec<String>),
}

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
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        let mut args = Wrapper::parse_from(["watchwire"]).args;
        args.data_dir = data_dir.into();
        args
    }

    /// Checks option combinations, reads the config file, and builds what the server
    /// needs from them.
    pub fn validate(&self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        if !self.dev && self.api_keys.is_empty() && file.keys.is_empty() {
            anyhow::bail!("no API key configured: pass --api-key KEY (or WATCHWIRE_API_KEYS), or run with --dev for local development");
        }
        if self.dev && !self.listen.is_loopback() {
            anyhow::bail!("--dev refuses to listen on the non-loopback address {}; use 127.0.0.1 or configure API keys", self.listen);
        }
        if self.retry_schedule.is_empty() {
            anyhow::bail!("--retry-schedule needs at least one delay");
        }
        // Zeros first: a zero maximum is the mistake, not the default that exceeds it.
        self.check_nonzero()?;
        if self.default_channel_ttl > self.max_channel_ttl {
            anyhow::bail!("--default-channel-ttl is longer than --max-channel-ttl");
        }
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| anyhow::anyhow!("--log {:?}: {e}", self.log))?;
        if let Some(url) = &self.public_url {
            check_public_url(url).map_err(|e| anyhow::anyhow!("--public-url: {e}"))?;
        }
        let cors = self.cors()?;
        let prefixes = ServicePrefixes::with_extra(&self.strip_prefixes)
            .map_err(|e| anyhow::anyhow!("--strip-prefix: {e}"))?;
        let allow_targets = self
            .allow_targets
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.parse::<Cidr>()
                    .map_err(|e| anyhow::anyhow!("--allow-targets: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Settings {
            prefixes,
            keys: file.keys,
            allow_targets,
            cors,
        })
    }

    /// Refuses zeros that make no sense, naming the option (docs/api.md §12): a zero limit
    /// refuses every request, a zero tokio interval panics, a zero timeout or retry
    /// budget fails every attempt, a zero retry delay retries in a busy loop, a zero
    /// retention keeps no log to resume from, a zero `--disable-after` disables a
    /// channel at its first failure.
    fn check_nonzero(&self) -> anyhow::Result<()> {
        let counts = [
            ("--max-body-bytes", self.max_body_bytes as u64),
            ("--max-in-flight", self.max_in_flight as u64),
            ("--max-host-rate", self.max_host_rate.map_or(1, u64::from)),
            ("--max-batch", self.max_batch as u64),
            ("--stream-buffer", self.stream_buffer as u64),
            ("--max-header-bytes", self.max_header_bytes as u64),
            ("--max-headers", self.max_headers as u64),
            ("--max-channels-per-key", self.max_channels_per_key),
        ];
        if let Some((option, _)) = counts.iter().find(|(_, value)| *value == 0) {
            anyhow::bail!("{option} must be at least 1");
        }
        // Each stream may hold this many events in memory.
        if self.stream_buffer > MAX_STREAM_BUFFER {
            anyhow::bail!("--stream-buffer must be at most {MAX_STREAM_BUFFER} events");
        }
        let durations = [
            ("--max-channel-ttl", self.max_channel_ttl),
            ("--default-channel-ttl", self.default_channel_ttl),
            ("--retry-budget", self.retry_budget),
            ("--connect-timeout", self.connect_timeout),
            ("--delivery-timeout", self.delivery_timeout),
            ("--expiry-sweep", self.expiry_sweep),
            ("--header-read-timeout", self.header_read_timeout),
            ("--request-timeout", self.request_timeout),
            ("--prune-interval", self.prune_interval),
            ("--checkpoint-interval", self.checkpoint_interval),
            ("--stream-stall-timeout", self.stream_stall_timeout),
            ("--lease-ttl", self.lease_ttl),
            ("--retention", self.retention),
            ("--log-retention", self.log_retention),
            ("--disable-after", self.disable_after),
        ];
        if let Some((option, _)) = durations.iter().find(|(_, value)| value.is_zero()) {
            anyhow::bail!("{option} must be longer than 0, e.g. 500ms or 5s");
        }
        if self.lease_ttl < Duration::from_secs(1) {
            anyhow::bail!(
                "--lease-ttl must be at least 1s: a node renews its lease three times per lease"
            );
        }
        if let Some(id) = &self.node_id {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                anyhow::bail!("--node-id {id:?} must be 1 to 64 characters of A-Z a-z 0-9 - _ .");
            }
        }
        if let Some(i) = self.retry_schedule.iter().position(Duration::is_zero) {
            anyhow::bail!(
                "--retry-schedule: delay {} is 0; every delay must be longer than 0, e.g. 500ms",
                i + 1
            );
        }
        Ok(())
    }

    /// `--cors-origins`, or its default: any origin in `--dev` (a local tool's page
    /// may call it), none otherwise (a deployment names the sites it trusts).
    pub fn cors(&self) -> anyhow::Result<CorsOrigins> {
        let given: Vec<&str> = self
            .cors_origins
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if given.is_empty() {
            return Ok(if self.dev {
                CorsOrigins::Any
            } else {
                CorsOrigins::None
            });
        }
        if given.contains(&"*") {
            if given.len() > 1 {
                anyhow::bail!("--cors-origins: `*` already allows every origin; give it alone");
            }
            return Ok(CorsOrigins::Any);
        }
        let origins = given
            .into_iter()
            .map(|origin| parse_origin(origin).map_err(|e| anyhow::anyhow!("--cors-origins: {e}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(CorsOrigins::List(origins))
    }
}

/// `--public-url` goes in front of every `resourceUri`: without a scheme and host, or
/// with a query or fragment, those would be no URLs a client could use.
fn check_public_url(given: &str) -> Result<(), String> {
    let url = url::Url::parse(given).map_err(|_| {
        format!("{given:?} is not a URL like https://push.example.com or https://example.com/push")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{given:?} must be an http:// or https:// URL with a host"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{given:?} must be a scheme, host, port and path only: resource paths are appended to it"
        ));
    }
    Ok(())
}

/// An origin as browsers send it in `Origin`: `scheme://host[:port]`, lower case, no
/// path. Anything else could never match, so it is refused rather than ignored.
fn parse_origin(origin: &str) -> Result<String, String> {
    let url = url::Url::parse(origin)
        .map_err(|_| format!("{origin:?} is not an origin like https://app.example.com"))?;
    let serialized = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") || serialized == "null" {
        return Err(format!("{origin:?} must be an http:// or https:// origin"));
    }
    if origin.trim_end_matches('/') != serialized {
        return Err(format!(
            "{origin:?} is not an origin as browsers send it; write {serialized:?} (scheme, host and port only, lower case)"
        ));
    }
    Ok(serialized)
}

/// What `validate` derives from the options.
#[derive(Debug, Clone)]
pub struct Settings {
    pub prefixes: ServicePrefixes,
    pub keys: Vec<KeyConfig>,
    pub allow_targets: Vec<Cidr>,
    pub cors: CorsOrigins,
}

/// The `--config` file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

/// One named API key (docs/api.md §10).
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Owner name of what the key creates; shown in logs, never secret.
    pub name: String,
    /// The key itself, or
    pub key: Option<String>,
    /// its SHA-256 as hex, so the file need not hold the key.
    pub key_sha256: Option<String>,
    /// `publish`, `subscribe`, `admin`; all three when omitted.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Resource prefixes the key is limited to; everything when omitted.
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
    /// `whsec_…` that signs notifications of this key's channels without their own.
    pub signing_secret: Option<String>,
    /// The secret being rotated out: notifications carry signatures with both until
    /// `previous_signing_secret_until` (RFC 3339).
    pub previous_signing_secret: Option<String>,
    pub previous_signing_secret_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

impl KeyConfig {
    /// Whether two entries sign their channels' notifications alike.
    pub fn same_signing(&self, other: &KeyConfig) -> bool {
        (
            &self.signing_secret,
            &self.previous_signing_secret,
            self.previous_signing_secret_until,
        ) == (
            &other.signing_secret,
            &other.previous_signing_secret,
            other.previous_signing_secret_until,
        )
    }
}

impl FileConfig {
    pub fn load(path: &std::path::Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading --config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_keys() {
        let file: FileConfig = toml::from_str(
            r#"
            [[keys]]
            name = "photos"
            key = "k1"
            scopes = ["publish"]
            prefixes = ["/b/photos"]
            "#,
        )
        .unwrap();
        assert_eq!(file.keys[0].name, "photos");
        assert!(
            !format!("{:?}", file.keys[0]).contains("k1"),
            "Debug must not show the key"
        );
        assert!(toml::from_str::<FileConfig>("[[keys]]\nname = 1").is_err());
    }

    #[test]
    fn defaults_and_checks() {
        let mut args = ServeArgs::for_data_dir("/tmp/x");
        assert_eq!(args.retry_schedule.len(), 7);
        assert!(
            args.validate().is_err(),
            "no keys and no --dev must not start"
        );
        args.dev = true;
        assert!(args.validate().is_ok());
        args.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(
            args.validate().is_err(),
            "--dev must refuse a public listen address"
        );
    }

    /// Parses a `serve` command line as clap does, into its error text on failure.
    fn parse(args: &[&str]) -> Result<ServeArgs, String> {
        use clap::Parser;
        #[derive(Parser, Debug)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        Wrapper::try_parse_from(std::iter::once("watchwire").chain(args.iter().copied()))
            .map(|w| w.args)
            .map_err(|e| e.to_string())
    }

    fn dev() -> ServeArgs {
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
    fn zeros_that_make_no_sense_are_refused_naming_the_option() {
        type Zero = fn(&mut ServeArgs);
        let zero_counts: [(&str, Zero); 8] = [
            ("--max-body-bytes", |a| a.max_body_bytes = 0),
            ("--max-in-flight", |a| a.max_in_flight = 0),
            ("--max-host-rate", |a| a.max_host_rate = Some(0)),
            ("--max-batch", |a| a.max_batch = 0),
            ("--stream-buffer", |a| a.stream_buffer = 0),
            ("--max-header-bytes", |a| a.max_header_bytes = 0),
            ("--max-headers", |a| a.max_headers = 0),
            ("--max-channels-per-key", |a| a.max_channels_per_key = 0),
        ];
        let zero_durations: [(&str, Zero); 15] = [
            ("--prune-interval", |a| a.prune_interval = Duration::ZERO),
            ("--expiry-sweep", |a| a.expiry_sweep = Duration::ZERO),
            ("--checkpoint-interval", |a| {
                a.checkpoint_interval = Duration::ZERO
            }),
            ("--delivery-timeout", |a| {
                a.delivery_timeout = Duration::ZERO
            }),
            ("--connect-timeout", |a| a.connect_timeout = Duration::ZERO),
            ("--request-timeout", |a| a.request_timeout = Duration::ZERO),
            ("--header-read-timeout", |a| {
                a.header_read_timeout = Duration::ZERO
            }),
            ("--retry-budget", |a| a.retry_budget = Duration::ZERO),
            ("--stream-stall-timeout", |a| {
                a.stream_stall_timeout = Duration::ZERO
            }),
            ("--default-channel-ttl", |a| {
                a.default_channel_ttl = Duration::ZERO
            }),
            // Not refused for being shorter than the default channel lifetime.
            ("--max-channel-ttl", |a| a.max_channel_ttl = Duration::ZERO),
            ("--retention", |a| a.retention = Duration::ZERO),
            ("--log-retention", |a| a.log_retention = Duration::ZERO),
            ("--disable-after", |a| a.disable_after = Duration::ZERO),
            ("--retry-schedule", |a| {
                a.retry_schedule = vec![Duration::from_secs(1), Duration::ZERO]
            }),
        ];
        for (option, set) in zero_counts.iter().chain(zero_durations.iter()) {
            let mut args = dev();
            set(&mut args);
            let err = args.validate().unwrap_err().to_string();
            assert!(err.starts_with(option), "{option}: {err}");
        }
        let mut args = dev();
        args.stream_buffer = usize::MAX;
        let err = args.validate().unwrap_err().to_string();
        assert_eq!(err, "--stream-buffer must be at most 1000000 events");
        // Zero is meaningful for these: no grace, no caching.
        let mut args = dev();
        args.shutdown_grace = Duration::ZERO;
        args.changes_max_age = Duration::ZERO;
        args.changes_expected_max_age = Duration::ZERO;
        assert!(args.validate().is_ok());
        // From the command line too.
        let err = parse(&["--dev", "--max-body-bytes", "0"])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(err, "--max-body-bytes must be at least 1");
    }

    #[test]
    fn listen_takes_a_host_name_or_says_what_form_it_wants() {
        let args = parse(&["--dev", "--listen", "localhost:8080"]).unwrap();
        assert_eq!(args.listen.to_string(), "localhost:8080");
        assert!(!args.listen.addrs().is_empty());
        assert!(args
            .listen
            .addrs()
            .iter()
            .all(|a| a.port() == 8080 && a.ip().is_loopback()));
        assert!(args.validate().is_ok(), "localhost is loopback for --dev");
        let ipv6 = parse(&["--listen", "[::1]:0"]).unwrap();
        assert_eq!(ipv6.listen.addrs(), ["[::1]:0".parse().unwrap()]);
        for (bad, says) in [
            ("localhost", "has no port"),
            ("8080", "is a port alone"),
            (":8080", "has no host"),
            ("localhost:http", "is not a port"),
            ("no-such-host.invalid:80", "does not resolve"),
        ] {
            let err = parse(&["--listen", bad]).unwrap_err();
            assert!(
                err.contains("--listen") && err.contains(says) && err.contains("HOST:PORT"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn cors_origins() {
        assert_eq!(dev().cors().unwrap(), CorsOrigins::Any);
        let mut keyed = ServeArgs::for_data_dir("/tmp/x");
        keyed.api_keys = vec!["k".into()];
        assert_eq!(keyed.validate().unwrap().cors, CorsOrigins::None);
        keyed.cors_origins = vec![
            "https://app.example.com".into(),
            " http://localhost:3000 ".into(),
        ];
        assert_eq!(
            keyed.cors().unwrap(),
            CorsOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        keyed.cors_origins = vec!["*".into()];
        assert_eq!(keyed.cors().unwrap(), CorsOrigins::Any);
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "https://App.example.com",
            "https://app.example.com:443",
            "ftp://app.example.com",
        ] {
            keyed.cors_origins = vec![bad.into()];
            let err = keyed.validate().unwrap_err().to_string();
            assert!(err.starts_with("--cors-origins"), "{bad}: {err}");
        }
        keyed.cors_origins = vec!["*".into(), "https://a.example".into()];
        assert!(keyed.cors().is_err());
        // A trailing slash is how people paste origins; it means the same.
        keyed.cors_origins = vec!["https://app.example.com/".into()];
        assert_eq!(
            keyed.cors().unwrap(),
            CorsOrigins::List(vec!["https://app.example.com".into()])
        );
    }

    #[test]
    fn public_url_must_be_a_url_resource_paths_can_follow() {
        let mut args = dev();
        for good in [
            "https://push.example.com",
            "http://127.0.0.1:8080/",
            "https://a.example/push",
        ] {
            args.public_url = Some(good.into());
            assert!(args.validate().is_ok(), "{good}");
        }
        for bad in [
            "push.example.com",
            "ftp://push.example.com",
            "https://a.example/?x=1",
            "https://a.example/#f",
            "https://u:p@a.example",
        ] {
            args.public_url = Some(bad.into());
            let err = args.validate().unwrap_err().to_string();
            assert!(err.starts_with("--public-url"), "{bad}: {err}");
        }
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
