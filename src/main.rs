//! The `watchwire` command: parse arguments, call into the library.

use clap::{Parser, Subcommand};

// glibc's allocator serialises on an arena lock when notifications allocated on the
// runtime's threads are freed in batches on the store's writer thread; mimalloc frees
// cross-thread without that lock (BENCHMARKS.md has the before and after).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Serve(watchwire::config::ServeArgs),
    /// Run a local receiver that validates and prints notifications.
    Receive(watchwire::receive_cmd::ReceiveArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(watchwire::server::run(args)),
        Command::Receive(args) => runtime.block_on(watchwire::receive_cmd::run(args)),
    }
}
