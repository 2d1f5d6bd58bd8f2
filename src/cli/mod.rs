//! The command line: `watchwire serve` and `watchwire receive`, parsed by clap and
//! handed to the library. `main.rs` only calls [`main`].

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each option's flag and variable, in the README's option table and in the
    /// reference's (docs/api.md §12), so neither leaves one out.
    #[test]
    fn every_option_is_in_the_readme_and_the_reference() {
        use clap::Args;
        let serve = crate::config::ServeArgs::augment_args(clap::Command::new("serve"));
        let receive = receive::ReceiveArgs::augment_args(clap::Command::new("receive"));
        let rows = |text: &str| -> String {
            let rows = text.lines().filter(|l| l.starts_with("| `--"));
            rows.collect::<Vec<_>>().join("\n")
        };
        let readme = rows(include_str!("../../README.md"));
        let reference = rows(include_str!("../../docs/api.md"));
        let tables = [
            (
                serve,
                vec![("README.md", &readme), ("docs/api.md", &reference)],
            ),
            (receive, vec![("docs/api.md", &reference)]),
        ];
        let mut checked = 0;
        for (command, documents) in tables {
            for arg in command.get_arguments() {
                let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                    continue;
                };
                checked += 1;
                for (document, table) in &documents {
                    for name in [
                        format!("`--{long}`"),
                        format!("`{}`", env.to_string_lossy()),
                    ] {
                        assert!(
                            table.contains(&name),
                            "{name} is not in {document}'s option table"
                        );
                    }
                }
            }
        }
        assert!(checked > 40, "only {checked} options were found");
    }
}
