//! The checks `serve` runs before it starts, on what no option's own syntax refuses
//! (zeros, combinations, a public URL resource paths cannot follow), and the
//! [`Settings`] it derives from the options.

use std::time::Duration;

use super::{FileConfig, ServeArgs, Settings, MAX_STREAM_BUFFER};
use crate::cidr::Cidr;
use crate::delivery::brokers::address::BrokerUrl;
use crate::protocol::resource::ServicePrefixes;

impl ServeArgs {
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
        let egress_proxy = match &self.egress_proxy {
            Some(url) => Some(
                crate::delivery::egress::ProxyAddress::parse(url)
                    .map_err(|e| anyhow::anyhow!("--egress-proxy: {e}"))?,
            ),
            None => None,
        };
        let brokers = self.brokers()?;
        let trace_export = self.trace_export(|name| std::env::var(name).ok())?;
        Ok(Settings {
            prefixes,
            keys: file.keys,
            allow_targets,
            cors,
            egress_proxy,
            brokers,
            trace_export,
        })
    }

    /// `--broker`, each checked; a broker named twice is refused (which of its URLs
    /// would a channel get?). Messages name the broker, never the URL's credentials.
    fn brokers(&self) -> anyhow::Result<Vec<BrokerUrl>> {
        let mut brokers: Vec<BrokerUrl> = Vec::new();
        for (i, text) in self.brokers.iter().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let url = BrokerUrl::parse(text.trim())
                .map_err(|e| anyhow::anyhow!("--broker (the {}. one): {e}", i + 1))?;
            if let Some(same) = brokers.iter().find(|b| b.broker == url.broker) {
                anyhow::bail!("--broker names {} twice", same.broker);
            }
            brokers.push(url);
        }
        if !brokers.is_empty() && !cfg!(feature = "brokers") {
            anyhow::bail!(
                "--broker: this watchwire was built without broker support (the cargo feature \"brokers\")"
            );
        }
        Ok(brokers)
    }

    /// Where spans go (docs/api.md §18): the `--otlp-*` options (the standard
    /// `OTEL_EXPORTER_OTLP_*` variables) and the standard variables `env` gives that have
    /// no option: `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER`, the protocol, and
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    fn trace_export(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<crate::trace::export::ExportOptions>> {
        let url = match (&self.otlp_traces_endpoint, &self.otlp_endpoint) {
            (Some(url), _) if !url.trim().is_empty() => url.trim().to_string(),
            (_, Some(base)) if !base.trim().is_empty() => {
                format!("{}/v1/traces", base.trim().trim_end_matches('/'))
            }
            _ => return Ok(None),
        };
        let off = |name: &str, value: &str| {
            env(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
        };
        if off("OTEL_SDK_DISABLED", "true") || off("OTEL_TRACES_EXPORTER", "none") {
            return Ok(None);
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = env(name).filter(|p| !p.trim().is_empty()) {
                anyhow::ensure!(
                    protocol.trim() == "http/protobuf",
                    "{name}={protocol:?}: spans are exported over OTLP/HTTP with protobuf only; set http/protobuf or leave it unset"
                );
                break;
            }
        }
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            anyhow::anyhow!("--otlp-endpoint / OTEL_EXPORTER_OTLP_ENDPOINT {url:?}: {e}")
        })?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https"),
            "--otlp-endpoint / OTEL_EXPORTER_OTLP_ENDPOINT {url:?}: give an http:// or https:// URL"
        );
        anyhow::ensure!(
            self.otlp_timeout > 0,
            "--otlp-timeout (OTEL_EXPORTER_OTLP_TIMEOUT) must be at least 1 ms"
        );
        let headers = key_values(self.otlp_headers.as_deref().unwrap_or(""))
            .map_err(|e| anyhow::anyhow!("--otlp-headers (OTEL_EXPORTER_OTLP_HEADERS): {e}"))?;
        for (name, value) in &headers {
            let valid = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && reqwest::header::HeaderValue::from_str(value).is_ok();
            anyhow::ensure!(valid, "--otlp-headers (OTEL_EXPORTER_OTLP_HEADERS): {name:?} is not a header name with a value a header can carry");
        }
        let mut resource = key_values(&env("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("OTEL_RESOURCE_ATTRIBUTES: {e}"))?;
        resource.retain(|(k, _)| k != "service.name");
        resource.insert(0, ("service.name".into(), self.service_name.clone()));
        resource.push(("service.version".into(), env!("CARGO_PKG_VERSION").into()));
        Ok(Some(crate::trace::export::ExportOptions {
            url,
            headers,
            timeout: Duration::from_millis(self.otlp_timeout),
            resource,
        }))
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
}

/// `key=value,…` as the OpenTelemetry variables write lists, values percent-decoded.
/// A message names an entry by its place, never by its text (it may hold a secret).
fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .enumerate()
        .map(|(n, pair)| {
            let (key, value) = pair
                .split_once('=')
                .filter(|(key, _)| !key.trim().is_empty())
                .ok_or_else(|| format!("entry {} is not key=value", n + 1))?;
            let value = url::form_urlencoded::parse(
                format!("v={}", value.trim().replace('+', "%2B")).as_bytes(),
            )
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
            Ok((key.trim().to_string(), value))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The span export the options and these variables ask for, or why not.
    fn export(
        configure: impl FnOnce(&mut ServeArgs),
        vars: &[(&str, &str)],
    ) -> Result<Option<crate::trace::export::ExportOptions>, String> {
        let mut args = crate::config::tests::dev();
        configure(&mut args);
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        args.trace_export(env).map_err(|e| e.to_string())
    }

    #[test]
    fn spans_go_where_the_standard_variables_say() {
        assert!(
            export(|_| {}, &[]).unwrap().is_none(),
            "off without an endpoint"
        );
        let base = |a: &mut ServeArgs| a.otlp_endpoint = Some("http://collector:4318/".into());
        let options = export(
            base,
            &[(
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,team=a%20b",
            )],
        )
        .unwrap()
        .unwrap();
        assert_eq!(options.url, "http://collector:4318/v1/traces");
        assert_eq!(
            options.resource[0],
            ("service.name".into(), "watchwire".into())
        );
        assert!(options.resource.contains(&("team".into(), "a b".into())));
        let options = export(
            |a| {
                base(a);
                a.otlp_traces_endpoint = Some("https://traces.example/ingest".into());
                a.otlp_headers = Some("x-api-key=k%3D1,other=2".into());
            },
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(options.url, "https://traces.example/ingest");
        assert_eq!(options.headers[0], ("x-api-key".into(), "k=1".into()));
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert!(export(base, &[off]).unwrap().is_none(), "{off:?}");
        }
        let err = export(base, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(err.contains("http/protobuf"), "{err}");
        let err = export(
            |a| {
                base(a);
                a.otlp_headers = Some("secret-token-without-a-name".into());
            },
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("entry 1 is not key=value") && !err.contains("secret-token"),
            "{err}"
        );
        let err = export(|a| a.otlp_endpoint = Some("collector:4318".into()), &[]).unwrap_err();
        assert!(err.contains("http:// or https://"), "{err}");
    }
    use crate::config::tests::{dev, parse};

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
}
