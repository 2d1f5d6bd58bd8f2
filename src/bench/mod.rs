//! PLACEHOLDER for helper-3: `watchwire bench` (issue 5). Replace this file entirely.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {}
pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("the benchmark harness is not built yet")
}
