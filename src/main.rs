//! The `credgate` binary: parses the command line and hands over to `credgate::cli`.

use clap::Parser;

/// mimalloc instead of glibc malloc: the pipeline allocates many short-lived strings per
/// record, and profiling showed a third of its time in malloc/free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    credgate::cli::run(credgate::cli::Cli::parse())
}
