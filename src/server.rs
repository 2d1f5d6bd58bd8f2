//! Wires the gateway together: store → dispatcher → HTTP, and shuts it down in order.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::listener::{self, ConnectionLimits};
use crate::api::{self, auth::Keys, App};
use crate::cluster::node::Node;
use crate::cluster::postgres::PgMembership;
use crate::cluster::Membership;
use crate::config::ServeArgs;
use crate::delivery::brokers::BrokerOptions;
use crate::delivery::destination::Outbound;
use crate::delivery::identity::ClientIdentities;
use crate::delivery::lease::Lease;
use crate::delivery::retry::RetryPolicy;
use crate::delivery::target::TargetPolicy;
use crate::delivery::webhook::WebhookOptions;
use crate::delivery::{Delivers, DeliveryContext, Dispatcher, CUT_SHORT_WAIT};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::telemetry;

/// How often the `watchwire_hosts` gauge is brought up to date.
const HOST_CENSUS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A gateway that is serving.
pub struct RunningServer {
    pub addr: SocketAddr,
    app: Arc<App>,
    stop_http: CancellationToken,
    http: tokio::task::JoinHandle<()>,
    /// This gateway as a node of a cluster (a PostgreSQL store).
    node: Option<Node>,
}

/// Opens the store, recovers delivery, binds the listener and starts serving.
pub async fn start(args: ServeArgs) -> anyhow::Result<RunningServer> {
    let settings = args.validate()?;
    let keys = Keys::new(&args.api_keys, &settings.keys, &settings.prefixes)?;
    let key_count = args.api_keys.iter().filter(|k| !k.is_empty()).count() + settings.keys.len();
    let node_id = args.node_id();
    let metrics = telemetry::metrics(args.database_url.as_ref().map(|_| node_id.as_str()));
    let (store, membership) = open_store(&args, &node_id).await?;
    let target_policy = TargetPolicy {
        allow_all: args.dev,
        allow: settings.allow_targets,
        brokers: settings.brokers.iter().map(|b| b.broker.clone()).collect(),
    };
    let extra_ca_pem = match &args.ca_file {
        Some(path) => Some(
            std::fs::read(path).with_context(|| format!("reading --ca-file {}", path.display()))?,
        ),
        None => None,
    };
    let identities = ClientIdentities::load(
        (args.client_cert.as_deref(), args.client_key.as_deref()),
        &settings.keys,
    )?;
    let webhooks = WebhookOptions {
        policy: target_policy.clone(),
        connect_timeout: args.connect_timeout,
        timeout: args.delivery_timeout,
        extra_ca_pem,
        max_idle_per_host: args.max_in_flight,
        local_address: args.outbound_address,
        identities,
        egress_proxy: settings.egress_proxy.clone(),
    };
    let tracing = Arc::new(
        crate::trace::Tracing::start(settings.trace_export.clone(), !args.no_trace_propagation)
            .context("starting the span exporter")?,
    );
    let ctx = Arc::new(DeliveryContext {
        store: store.clone(),
        tracing,
        outbound: Outbound::new(
            webhooks,
            BrokerOptions {
                urls: settings.brokers.clone(),
                connect_timeout: args.connect_timeout,
                timeout: args.delivery_timeout,
            },
            args.max_in_flight,
            args.max_host_rate.map(f64::from),
        )
        .with_context(|| match &args.ca_file {
            Some(path) => format!("--ca-file {}", path.display()),
            None => "building the delivery client".into(),
        })?,
        retry: RetryPolicy {
            schedule: args.retry_schedule.clone(),
            budget: args.retry_budget,
        },
        shutdown: CancellationToken::new(),
        cut_short: CancellationToken::new(),
        closing: CancellationToken::new(),
        lease: Arc::new(match &membership {
            Some(_) => Lease::pending(),
            None => Lease::forever(),
        }),
        tasks: TaskTracker::new(),
        disable_after: args.disable_after,
        key_signing: keys.signing.clone(),
        activity: Default::default(),
        sleepers: Default::default(),
        specs: Default::default(),
    });
    let lease = ctx.lease.clone();
    let delivers = match &membership {
        Some(_) => Delivers::Claimed,
        None => Delivers::Every,
    };
    let dispatcher = Dispatcher::start(ctx, delivers).await?;
    dispatcher.spawn_expiry_sweep(args.expiry_sweep, args.expiring_notice);
    dispatcher.spawn_host_census(HOST_CENSUS_INTERVAL);
    dispatcher.spawn_pruning(args.prune_interval, args.retention, args.log_retention);

    let listener = TcpListener::bind(args.listen.addrs())
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    // Joined before the first request is served (see `Node::start`).
    let node = match &membership {
        Some(membership) => Some(
            Node::start(
                store.clone(),
                membership.clone(),
                dispatcher.clone(),
                lease,
                public_url.clone(),
                args.lease_ttl,
            )
            .await,
        ),
        None => None,
    };
    let limits = ConnectionLimits {
        header_read_timeout: args.header_read_timeout,
        drain: args.shutdown_grace,
        max_headers: args.max_headers,
    };
    let app = Arc::new(App {
        resource_ids: api::resource_id::ResourceIds::new(store.instance_secret()),
        keys,
        cors: settings.cors,
        config: args,
        store,
        membership,
        dispatcher,
        prefixes: settings.prefixes,
        target_policy,
        public_url,
        metrics,
    });

    let stop_http = CancellationToken::new();
    let http = tokio::spawn(listener::serve(
        listener,
        api::router(app.clone()),
        limits,
        stop_http.clone(),
    ));

    log_startup(&app.config, key_count, addr, &app.public_url, &node_id);
    Ok(RunningServer {
        addr,
        app,
        stop_http,
        http,
        node,
    })
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Channels with a delivery in flight (or about to start one).
    pub fn deliveries_in_flight(&self) -> usize {
        self.app.dispatcher.context().tasks.len()
    }

    /// Stops accepting requests, lets in-flight deliveries finish within the grace
    /// period, makes recorded progress durable, and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let RunningServer {
            app,
            stop_http,
            http,
            node,
            ..
        } = self;
        // Streams first: they say goodbye with a cursor and end, so the drain below
        // does not wait for them.
        app.dispatcher.context().closing.cancel();
        // In a cluster, the other nodes take this one's channels over now.
        if let Some(node) = node {
            node.leave().await;
        }
        stop_http.cancel();
        let _ = http.await;
        let ctx = app.dispatcher.context().clone();
        ctx.shutdown.cancel();
        ctx.tasks.close();
        if !ctx.tasks.is_empty() {
            tracing::info!(
                channels = ctx.tasks.len(),
                grace = ?app.config.shutdown_grace,
                "waiting for deliveries in flight to finish"
            );
        }
        if tokio::time::timeout(app.config.shutdown_grace, ctx.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "deliveries still in flight after the grace period; they resume after restart"
            );
            // The receivers may have got them: each is logged as an interrupted
            // attempt, at once, so that the restart counts it.
            ctx.cut_short.cancel();
            let _ = tokio::time::timeout(CUT_SHORT_WAIT, ctx.tasks.wait()).await;
        }
        app.store.flush().await?;
        app.store.close().await;
        ctx.tracing.flush().await;
        Ok(())
    }
}

/// The store `--database-url` names, with this process's membership of the cluster
/// its processes form; else the embedded one in `--data-dir`, without.
async fn open_store(
    args: &ServeArgs,
    node_id: &str,
) -> anyhow::Result<(Arc<dyn Store>, Option<Arc<dyn Membership>>)> {
    Ok(match &args.database_url {
        Some(url) => {
            let store =
                Arc::new(PgStore::open(url, node_id).await.with_context(|| {
                    format!("opening the PostgreSQL store at {}", redacted(url))
                })?);
            let membership: Arc<dyn Membership> = Arc::new(PgMembership::new(store.clone()));
            (store, Some(membership))
        }
        None => (
            Arc::new(
                SqliteStore::open(&args.data_dir)
                    .with_context(|| format!("opening the store in {}", args.data_dir.display()))?,
            ),
            None,
        ),
    })
}

/// A database URL without its password, for logs and messages: neither the one in
/// `user:password@` nor a `password=` parameter (`?password=…`, or a key=value
/// connection string's `password=…`, quoted or not).
pub fn redacted(url: &str) -> String {
    let url = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    };
    let mut out = String::with_capacity(url.len());
    let mut rest = url.as_str();
    while let Some(at) = rest.find("password=") {
        let (before, value) = rest.split_at(at + "password=".len());
        out.push_str(before);
        out.push_str("***");
        let end = match value.strip_prefix('\'') {
            Some(quoted) => quoted.find('\'').map_or(value.len(), |q| q + 2),
            None => value.find(['&', ' ']).unwrap_or(value.len()),
        };
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// The one startup line that says what this process runs as: how callers authenticate
/// (`dev`, or `keys` and how many), where it stores, where it listens, and the URL it
/// gives out, so that a log alone tells which gateway wrote it.
fn log_startup(
    args: &ServeArgs,
    key_count: usize,
    addr: SocketAddr,
    public_url: &str,
    node_id: &str,
) {
    let mode = if args.dev { "dev" } else { "keys" };
    let store = match &args.database_url {
        Some(url) => format!("{} node={node_id}", redacted(url)),
        None => {
            let dir =
                std::fs::canonicalize(&args.data_dir).unwrap_or_else(|_| args.data_dir.clone());
            format!("sqlite:{}", dir.display())
        }
    };
    tracing::info!(
        mode = %mode,
        keys = key_count,
        store = %store,
        listen = %addr,
        public_url = %public_url,
        "watchwire started"
    );
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn database_urls_lose_their_passwords() {
        for (url, shown) in [
            (
                "postgres://ww:s3cret@db:5432/ww",
                "postgres://ww@db:5432/ww",
            ),
            (
                "postgres://db/ww?password=s3cret&sslmode=disable",
                "postgres://db/ww?password=***&sslmode=disable",
            ),
            (
                "host=db password='s3 cret' user=ww",
                "host=db password=*** user=ww",
            ),
            ("host=db password=s3cret", "host=db password=***"),
            ("postgres://db/ww", "postgres://db/ww"),
        ] {
            assert_eq!(redacted(url), shown);
        }
    }
}
