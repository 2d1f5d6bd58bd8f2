//! `watchwire serve` options (SPEC §12). Every flag also reads from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::protocol::resource::ServicePrefixes;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WATCHWIRE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory of the embedded store.
    #[arg(long, env = "WATCHWIRE_DATA_DIR", default_value = "./watchwire-data")]
    pub data_dir: PathBuf,

    /// Development mode: no API keys needed, http:// and private targets allowed,
    /// loopback listen address only.
    #[arg(long, env = "WATCHWIRE_DEV")]
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

    /// How often expired channels are removed.
    #[arg(long, env = "WATCHWIRE_EXPIRY_SWEEP", default_value = "30s", value_parser = parse_duration)]
    pub expiry_sweep: Duration,

    /// Largest API request body.
    #[arg(long, env = "WATCHWIRE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// How long in-flight deliveries may finish after SIGTERM / ctrl-c.
    #[arg(long, env = "WATCHWIRE_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "WATCHWIRE_LOG", default_value = "info")]
    pub log: String,
}

impl ServeArgs {
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

    /// Checks option combinations and builds what the server needs from them.
    pub fn validate(&self) -> anyhow::Result<ServicePrefixes> {
        if !self.dev && self.api_keys.is_empty() {
            anyhow::bail!("no API key configured: pass --api-key KEY (or WATCHWIRE_API_KEYS), or run with --dev for local development");
        }
        if self.dev && !self.listen.ip().is_loopback() {
            anyhow::bail!("--dev refuses to listen on the non-loopback address {}; use 127.0.0.1 or configure API keys", self.listen);
        }
        if self.retry_schedule.is_empty() {
            anyhow::bail!("--retry-schedule needs at least one delay");
        }
        if self.default_channel_ttl > self.max_channel_ttl {
            anyhow::bail!("--default-channel-ttl is longer than --max-channel-ttl");
        }
        ServicePrefixes::with_extra(&self.strip_prefixes)
            .map_err(|e| anyhow::anyhow!("--strip-prefix: {e}"))
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h`, `7d` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 5s, 2m, 1h or 7d"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return Err(format!("{s:?} has an unknown unit; use ms, s, m, h or d")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
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
}
