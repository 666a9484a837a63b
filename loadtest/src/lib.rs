//! `strata-loadtest`: a load generator for Strata and its peers.
//!
//! Layout: [`cli`] (arguments), [`target`] (the loopback-only rule),
//! [`spawn`] (`--spawn` a fresh server), [`systems`] (Strata, NATS
//! JetStream and Redis started on loopback for a comparison), [`driver`]
//! (protocol clients), [`scenario`] (Strata-specific load shapes),
//! [`compare`] (scenarios 1–4 on any system, charts), [`stats`]
//! (histograms and rate math), [`procstat`] (server CPU and RSS) and
//! [`report`] (JSON and Markdown output).

#![allow(clippy::disallowed_methods)] // the load tester measures and paces real time

pub mod cli;
pub mod compare;
pub mod driver;
pub mod procstat;
pub mod report;
pub mod scenario;
pub mod spawn;
pub mod stats;
pub mod systems;
pub mod target;

use std::time::Duration;

use anyhow::Result;

use crate::cli::{Cli, Command, OutputArgs, TargetArgs};
use crate::compare::report::CompareReport;
use crate::compare::tenants::TenantsReport;
use crate::driver::strata_http::StrataHttp;
use crate::report::{Render, Report};
use crate::scenario::catchup::CatchupReport;
use crate::scenario::queues::QueuesReport;
use crate::spawn::SpawnedServer;

/// The report of whichever scenario ran.
#[derive(Debug, Clone)]
pub enum Outcome {
    Publish(Report),
    Catchup(Box<CatchupReport>),
    Queues(QueuesReport),
    Compare(Box<CompareReport>),
    Tenants(Box<TenantsReport>),
}

impl Outcome {
    /// The `publish` report, if that scenario ran.
    pub fn into_publish(self) -> Option<Report> {
        match self {
            Self::Publish(r) => Some(r),
            _ => None,
        }
    }

    pub fn into_catchup(self) -> Option<CatchupReport> {
        match self {
            Self::Catchup(r) => Some(*r),
            _ => None,
        }
    }

    pub fn into_queues(self) -> Option<QueuesReport> {
        match self {
            Self::Queues(r) => Some(r),
            _ => None,
        }
    }

    pub fn into_tenants(self) -> Option<TenantsReport> {
        match self {
            Self::Tenants(r) => Some(*r),
            _ => None,
        }
    }

    pub fn into_compare(self) -> Option<CompareReport> {
        match self {
            Self::Compare(r) => Some(*r),
            _ => None,
        }
    }

    pub fn markdown(&self) -> String {
        match self {
            Self::Compare(r) => Render::markdown(r.as_ref()),
            Self::Tenants(r) => Render::markdown(r.as_ref()),
            Self::Publish(r) => r.markdown(),
            Self::Catchup(r) => Render::markdown(r.as_ref()),
            Self::Queues(r) => Render::markdown(r),
        }
    }
}

/// Runs the chosen scenario, prints the Markdown on stdout, writes the
/// requested files, and returns the report.
pub async fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Publish(args) => {
            let report = scenario::publish::run(&args).await?;
            emit(&report, &args.output)?;
            Ok(Outcome::Publish(report))
        }
        Command::Catchup(args) => {
            let report = scenario::catchup::run(&args).await?;
            emit(&report, &args.output)?;
            Ok(Outcome::Catchup(Box::new(report)))
        }
        Command::Compare(args) => {
            let report = compare::run(&args).await?;
            print!("{}", Render::markdown(&report));
            Ok(Outcome::Compare(Box::new(report)))
        }
        Command::Render(args) => {
            let report = compare::report::merge_files(&args.report)?;
            let dir = match &args.out {
                Some(d) => d.clone(),
                None => args.report[0]
                    .parent()
                    .map_or_else(|| ".".into(), |p| p.to_path_buf()),
            };
            report.write(&dir)?;
            print!("{}", Render::markdown(&report));
            Ok(Outcome::Compare(Box::new(report)))
        }
        Command::Tenants(args) => {
            let report = compare::tenants::run(&args).await?;
            print!("{}", Render::markdown(&report));
            Ok(Outcome::Tenants(Box::new(report)))
        }
        Command::Queues(args) => {
            let report = scenario::queues::run(&args).await?;
            emit(&report, &args.output)?;
            Ok(Outcome::Queues(report))
        }
    }
}

fn emit<R: Render>(report: &R, output: &OutputArgs) -> Result<()> {
    print!("{}", report.markdown());
    report::write_files(
        report,
        output.json_out.as_deref(),
        output.markdown_out.as_deref(),
    )
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
    let mut env = args.server_env.clone();
    if args.no_auth {
        env.push(("STRATA_AUTH_ANONYMOUS".into(), "true".into()));
    }
    let spawned = match &args.spawn {
        Some(binary) => Some(SpawnedServer::start(binary, args.spawn_dir.as_deref(), &env).await?),
        None => None,
    };
    let url = match &spawned {
        Some(s) => target::loopback_url(s.url())?,
        None => target::loopback_url(&args.server)?,
    };
    target::check_resolves_to_loopback(&url).await?;
    let credentials = match (&spawned, &args.access_key, &args.secret_key) {
        _ if args.no_auth => None,
        (Some(s), _, _) => Some(s.admin_credentials()?),
        (None, Some(ak), Some(sk)) => Some((ak.clone(), sk.clone())),
        (None, None, None) => None,
        _ => anyhow::bail!("give both --access-key and --secret-key"),
    };
    let authorization = credentials.map(|(ak, sk)| format!("Bearer {ak}:{sk}"));
    let client = StrataHttp::with_authorization(url.as_str(), request_timeout, authorization)?;
    Ok(Target { client, spawned })
}
