//! The `watchwire` binary: the command line lives in `watchwire::cli`.

// glibc's allocator serialises on an arena lock when notifications allocated on the
// runtime's threads are freed in batches on the store's writer thread; mimalloc frees
// cross-thread without that lock (BENCHMARKS.md has the before and after).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    watchwire::cli::main()
}
