//! Wires the gateway together: store → dispatcher → HTTP, and shuts it down in order.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::listener::{self, ConnectionLimits};
use crate::api::{self, auth::Keys, App};
use crate::config::ServeArgs;
use crate::delivery::client::OutboundClient;
use crate::delivery::retry::RetryPolicy;
use crate::delivery::target::TargetPolicy;
use crate::delivery::{Dispatcher, Shared};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::telemetry;

/// A gateway that is serving.
pub struct RunningServer {
    pub addr: SocketAddr,
    app: Arc<App>,
    stop_http: CancellationToken,
    http: tokio::task::JoinHandle<()>,
    sqlite: Arc<SqliteStore>,
}

/// Opens the store, recovers delivery, binds the listener and starts serving.
pub async fn start(args: ServeArgs) -> anyhow::Result<RunningServer> {
    let settings = args.validate()?;
    let keys = Keys::new(&args.api_keys, &settings.keys, &settings.prefixes)?;
    let metrics = telemetry::metrics();
    let sqlite = Arc::new(
        SqliteStore::open(&args.data_dir)
            .with_context(|| format!("opening the store in {}", args.data_dir.display()))?,
    );
    let store: Arc<dyn Store> = sqlite.clone();
    let target_policy = TargetPolicy {
        allow_all: args.dev,
        allow: settings.allow_targets,
    };
    let ca_pem = match &args.ca_file {
        Some(path) => Some(
            std::fs::read(path).with_context(|| format!("reading --ca-file {}", path.display()))?,
        ),
        None => None,
    };
    let shared = Arc::new(Shared {
        store: store.clone(),
        client: OutboundClient::new(
            target_policy.clone(),
            args.connect_timeout,
            args.delivery_timeout,
            ca_pem.as_deref(),
            args.max_in_flight,
        )?,
        retry: RetryPolicy {
            schedule: args.retry_schedule.clone(),
            budget: args.retry_budget,
        },
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
        disable_after: args.disable_after,
        key_signing: keys.signing.clone(),
    });
    let dispatcher = Dispatcher::start(shared).await?;
    dispatcher.spawn_expiry_sweep(args.expiry_sweep);
    dispatcher.spawn_pruning(args.prune_interval, args.retention, args.log_retention);

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let limits = ConnectionLimits {
        header_read_timeout: args.header_read_timeout,
        drain: args.shutdown_grace,
    };
    let app = Arc::new(App {
        keys,
        config: args,
        store,
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
    Ok(RunningServer {
        addr,
        app,
        stop_http,
        http,
        sqlite,
    })
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets in-flight deliveries finish within the grace
    /// period, makes recorded progress durable, and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let RunningServer {
            app,
            stop_http,
            http,
            sqlite,
            ..
        } = self;
        stop_http.cancel();
        let _ = http.await;
        let shared = app.dispatcher.shared().clone();
        shared.shutdown.cancel();
        shared.tasks.close();
        if tokio::time::timeout(app.config.shutdown_grace, shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "deliveries still in flight after the grace period; they resume after restart"
            );
        }
        app.store.flush().await?;
        tokio::task::spawn_blocking(move || sqlite.close()).await?;
        Ok(())
    }
}

/// `watchwire serve`: run until SIGTERM or ctrl-c.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init_logging(&args.log);
    let server = start(args).await?;
    // Scripts and tests wait for this line.
    println!("watchwire listening on {}", server.url());
    tracing::info!(addr = %server.addr, "watchwire listening");
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("can listen for SIGTERM");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
