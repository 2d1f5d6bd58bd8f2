//! `watchwire serve`: the gateway until SIGTERM or ctrl-c; a second one during the
//! shutdown ends it at once.

use std::time::Duration;

use crate::config::ServeArgs;
use crate::output;
use crate::server;
use crate::telemetry;

/// How long a process ended by a second signal waits for its queued log lines.
const SECOND_SIGNAL_FLUSH: Duration = Duration::from_millis(500);

/// `watchwire serve`: run until SIGTERM or ctrl-c.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init_logging(&args.log, args.log_format);
    let grace = args.shutdown_grace;
    let server = server::start(args).await?;
    let mut signals = Signals::register();
    // Scripts and tests wait for this line; the log has `watchwire started` instead.
    // A stdout nobody reads (`| head -1`, a full disk) must not stop the gateway.
    output::line(
        output::Stream::Stdout,
        format!("watchwire listening on {}\n", server.url()).into_bytes(),
    );
    let first = signals.next().await;
    tracing::info!(
        signal = first.name(),
        grace = ?grace,
        deliveries_in_flight = server.deliveries_in_flight(),
        "shutting down: open requests and deliveries in flight get up to the grace period each to finish; a second SIGTERM or ctrl-c exits at once"
    );
    tokio::select! {
        stopped = server.shutdown() => stopped,
        second = signals.next() => {
            tracing::warn!(
                signal = second.name(),
                "second signal: exiting at once; what did not finish resumes at the next start"
            );
            output::flush(SECOND_SIGNAL_FLUSH);
            std::process::exit(second.exit_code())
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Terminate,
    Interrupt,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        }
    }

    /// 128 plus the signal's number, as a shell reports a process the signal ended.
    fn exit_code(self) -> i32 {
        match self {
            Signal::Terminate => 143,
            Signal::Interrupt => 130,
        }
    }
}

/// SIGTERM and ctrl-c, listened for from registration on. Registered before the
/// listening line: a script that signals as soon as it sees the line must get a clean
/// stop, not the default action of a signal nobody listens to yet.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).expect("can listen for SIGTERM"),
                interrupt: signal(SignalKind::interrupt()).expect("can listen for SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next signal.
    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => Signal::Terminate,
                _ = self.interrupt.recv() => Signal::Interrupt,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}
