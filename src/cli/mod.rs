//! The command line: `watchwire serve` and `watchwire receive`, parsed by clap and
//! handed to the library. `main.rs` only calls [`main`].

pub mod duration;
pub mod receive;
pub mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "watchwire",
    version,
    about = "Push-notification gateway with Google-compatible watch channels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(Box<crate::config::ServeArgs>),
    /// Run a local receiver that validates and prints notifications.
    Receive(receive::ReceiveArgs),
}

/// The value of every on/off option (`--dev`, `--json`) given in the environment:
/// `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`, in any letter case, as shells,
/// systemd units and container platforms write switches.
pub fn switch(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!(
            "{value:?} is not on or off: use true or false (or 1/0, yes/no, on/off)"
        )),
    }
}

/// Parses the command line and runs the command on a multi-threaded runtime.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(*args)),
        Command::Receive(args) => runtime.block_on(receive::run(args)),
    };
    // What is still queued goes out before the process ends, and before its error.
    crate::output::flush(EXIT_FLUSH);
    result
}

/// How long an exiting process waits for its queued output: bounded, since an output
/// nobody reads would otherwise keep it from ever exiting.
pub const EXIT_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);
