//! The `strata-loadtest` binary: argument parsing; everything else is in the library.

use std::process::ExitCode;

use clap::Parser;
use strata_loadtest::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    match strata_loadtest::run(Cli::parse()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
