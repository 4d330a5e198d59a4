//! The `credgate` binary: parses the command line and hands over to `credgate::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    credgate::cli::run(credgate::cli::Cli::parse())
}
