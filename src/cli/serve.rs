//! `watchwire serve`: the gateway until SIGTERM or ctrl-c.

use crate::config::ServeArgs;
use crate::output;
use crate::server;
use crate::telemetry;

/// `watchwire serve`: run until SIGTERM or ctrl-c.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init_logging(&args.log, args.log_format);
    let server = server::start(args).await?;
    let stop = shutdown_signal();
    // Scripts and tests wait for this line; the log has `watchwire started` instead.
    // A stdout nobody reads (`| head -1`, a full disk) must not stop the gateway.
    output::line(
        output::Stream::Stdout,
        format!("watchwire listening on {}\n", server.url()).into_bytes(),
    );
    stop.await;
    tracing::info!("shutting down");
    server.shutdown().await
}

/// Registers for SIGTERM and ctrl-c at once and resolves when one arrives. Called
/// before the listening line: a script that signals as soon as it sees the line must
/// get a clean stop, not the default action of a signal nobody listens to yet.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("can listen for SIGTERM");
        let mut interrupt = signal(SignalKind::interrupt()).expect("can listen for SIGINT");
        async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
