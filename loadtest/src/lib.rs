//! `strata-loadtest`: a load generator for Strata's HTTP/JSON API.
//!
//! Layout: [`cli`] (arguments), [`target`] (the loopback-only rule),
//! [`spawn`] (`--spawn` a fresh server), [`driver`] (protocol clients),
//! [`scenario`] (load shapes), [`stats`] (histograms and rate math) and
//! [`report`] (JSON and Markdown output).

pub mod cli;
pub mod driver;
pub mod report;
pub mod scenario;
pub mod spawn;
pub mod stats;
pub mod target;

use std::time::Duration;

use anyhow::Result;

use crate::cli::{Cli, Command, OutputArgs, TargetArgs};
use crate::driver::strata_http::StrataHttp;
use crate::report::Report;
use crate::spawn::SpawnedServer;

/// Runs the chosen scenario, prints the Markdown table on stdout, writes the
/// requested files, and returns the report.
pub async fn run(cli: Cli) -> Result<Report> {
    let (report, output) = match cli.command {
        Command::Publish(args) => (scenario::publish::run(&args).await?, args.output),
    };
    emit(&report, &output)?;
    Ok(report)
}

fn emit(report: &Report, output: &OutputArgs) -> Result<()> {
    print!("{}", report.markdown());
    report.write_files(output.json_out.as_deref(), output.markdown_out.as_deref())
}

/// The server under load: a client for it and, with `--spawn`, the child
/// process (killed and its data deleted when this is dropped).
#[derive(Debug)]
pub struct Target {
    pub client: StrataHttp,
    pub spawned: Option<SpawnedServer>,
}

/// Checks the loopback rule, starts a server if asked to, and returns a
/// client for it.
pub async fn connect(args: &TargetArgs, request_timeout: Duration) -> Result<Target> {
    let spawned = match &args.spawn {
        Some(binary) => Some(SpawnedServer::start(binary, args.spawn_dir.as_deref()).await?),
        None => None,
    };
    let url = match &spawned {
        Some(s) => target::loopback_url(s.url())?,
        None => target::loopback_url(&args.server)?,
    };
    target::check_resolves_to_loopback(&url).await?;
    let client = StrataHttp::new(url.as_str(), request_timeout)?;
    Ok(Target { client, spawned })
}
