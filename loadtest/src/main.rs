//! The `strata-loadtest` binary: argument parsing; everything else is in the library.

#![allow(clippy::disallowed_methods)] // the load tester measures and paces real time

use std::process::ExitCode;

use clap::Parser;
use strata_loadtest::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // On Ctrl-C / SIGTERM the run is dropped, which stops every server it
    // started and deletes their data.
    let result = tokio::select! {
        r = strata_loadtest::run(cli) => r.map(|_| ()),
        () = interrupted() => Err(anyhow::anyhow!("interrupted; servers stopped, data deleted")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM (never, if neither can be watched).
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
