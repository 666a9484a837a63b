//! Command-line arguments. Parsing only: validation that needs more than one
//! flag lives with the code that uses them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "strata-loadtest",
    version,
    about = "Load generator for Strata (HTTP/JSON API). Targets loopback servers only.",
    after_help = "Example: strata-loadtest publish --spawn target/release/strata --concurrency 1,8,64"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish messages as fast as possible (or at a fixed rate) and measure
    /// durable-acknowledgement latency at each concurrency level.
    Publish(PublishArgs),
    /// Write a backlog, wait until it is in object storage, then measure
    /// fixed-rate publish latency without and with one catch-up reader per
    /// queue reading the backlog from offset 0 (then a second, warm read).
    Catchup(CatchupArgs),
    /// Publish a fixed number of messages over N queues (for each N in a
    /// list), wait until everything is uploaded, and report object-store
    /// PUTs, bytes and merges per GiB ingested.
    Queues(QueuesArgs),
    /// Scenarios 1-4 (max rate, fixed rate, tail consumers, catch-up)
    /// against Strata and its peers (NATS JetStream, Redis Streams), each
    /// started fresh on 127.0.0.1; JSON, Markdown and SVG charts in --out.
    Compare(crate::compare::args::CompareArgs),
    /// Scenario 6 (Strata only): many tenants publish at a modest fixed
    /// rate, first alone, then beside one noisy tenant publishing at max
    /// rate into its quota; per-tenant latency and the noisy tenant's
    /// accepted and throttled counts.
    Tenants(crate::compare::tenants::TenantsArgs),
    /// Rewrite report.json, report.md and the SVG charts of `compare` runs
    /// from their report.json files, merging several into one.
    Render(RenderArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// The report.json written by `compare`; repeat it to merge several runs
    /// (e.g. one system rerun on a quieter machine) into one report, in order.
    #[arg(long, value_name = "FILE", required = true)]
    pub report: Vec<PathBuf>,
    /// Where report.md and the charts go [default: next to the report].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Which server to load: an existing loopback one, or a fresh one we start.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Base URL of a running Strata server; the host must be loopback
    /// (127.0.0.0/8, ::1 or localhost). Ignored with --spawn.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Path to a `strata` binary: start `strata serve` on a fresh temporary data
    /// directory and a free loopback port, load it, then kill it and delete the data.
    #[arg(long, value_name = "PATH_TO_STRATA_BINARY")]
    pub spawn: Option<PathBuf>,
    /// Parent directory for the --spawn data directory (put it on the disk you
    /// want to measure; tmpfs makes fdatasync free) [default: the system temp dir].
    #[arg(long, value_name = "DIR", requires = "spawn")]
    pub spawn_dir: Option<PathBuf>,
    /// Extra environment variable for the --spawn server (repeatable), e.g.
    /// --server-env STRATA_LIMITS_MAX_QUEUES_PER_TOPIC=10000.
    #[arg(long, value_name = "KEY=VALUE", requires = "spawn", value_parser = parse_env_pair)]
    pub server_env: Vec<(String, String)>,
    /// Access key for --server (with --secret-key); --spawn uses the
    /// spawned server's bootstrap admin credential.
    #[arg(long, env = "STRATA_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Secret key of --access-key.
    #[arg(long, env = "STRATA_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Send no credentials; a --spawn server then runs with
    /// STRATA_AUTH_ANONYMOUS=true. Only for measuring the cost of
    /// authentication (compare with and without).
    #[arg(long, conflicts_with_all = ["access_key", "secret_key"])]
    pub no_auth: bool,
}

/// Where the report goes besides stdout.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Write the full report (results, parameters, machine info) as JSON.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Write the Markdown table (also printed on stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown_out: Option<PathBuf>,
    /// No per-second progress lines on stderr (they are also off when
    /// stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Topic to publish to; created if absent (an existing one is reused).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Queues of the topic when it is created.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub queues: u32,
    /// Comma-separated concurrency levels (publishing tasks), run one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: Vec<u32>,
    /// Message body size in bytes (random data).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=(64 << 20)))]
    pub message_size: u32,
    /// Messages per publish request.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Measured time per concurrency level (e.g. 10s, 1m, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured time before each level's measurement.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Fixed total rate in messages/s across all tasks; latency is measured from
    /// each request's intended send time (no coordinated omission).
    /// [default: as fast as possible]
    #[arg(long, value_name = "MSGS_PER_SEC")]
    pub rate: Option<f64>,
    /// Stop a level after this many messages (warm-up included; whole batches).
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Per-request timeout; a timed-out request counts as an error.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Seed for the random message bodies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Delayed messages: every message is due this long after the run
    /// starts (at most a year), and the topic is created as a DELAY topic.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub deliver_after: Option<Duration>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Flags shared by the tiered-storage scenarios (`catchup`, `queues`).
#[derive(Debug, Clone, Args)]
pub struct TieringArgs {
    /// Message body size in bytes (random data).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=(8 << 20)))]
    pub message_size: u32,
    /// Publishing tasks.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// Longest wait for the server to report `tiering.upload_lag_bytes == 0`.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub lag_timeout: Duration,
    /// Per-request timeout; a timed-out request counts as an error.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Seed for the random message bodies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Args)]
pub struct CatchupArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Topic to use; created if absent.
    #[arg(long, default_value = "catchup")]
    pub topic: String,
    /// Queues of the topic; one catch-up reader each.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub queues: u32,
    /// Backlog written (at max rate) before the measured phases, in MiB of bodies.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=(1 << 20)))]
    pub backlog_mib: u64,
    /// Messages per publish request.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Fixed total publish rate of the measured phases, in messages/s.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Length of each measured phase (baseline, with catch-up).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    #[command(flatten)]
    pub tiering: TieringArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct QueuesArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Topic name prefix; each level uses a fresh topic `<prefix>-<queues>`.
    #[arg(long, default_value = "queues")]
    pub topic: String,
    /// Comma-separated queue counts, run one after another (the server's
    /// limits.max_queues_per_topic must allow the largest).
    #[arg(long, value_delimiter = ',', default_value = "1,100,10000",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub queues: Vec<u32>,
    /// Messages published per level (whole batches).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Messages per publish request (all for one queue; queues round-robin).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// After the upload lag reaches 0, wait until the object-store counters
    /// have not moved for this long (late merges count for their level).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub settle: Duration,
    #[command(flatten)]
    pub tiering: TieringArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Parses `KEY=VALUE` (non-empty key without `=`).
pub fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// Longest accepted --duration/--warmup/--timeout: keeps every loop bounded.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses "10s", "1m", "500ms" (humantime), bounded by [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 10s, 500ms or 2m: {e}"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "{text:?} is longer than the {} limit",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_lists() {
        let cli = Cli::try_parse_from([
            "strata-loadtest",
            "publish",
            "--concurrency",
            "2,4",
            "--duration",
            "1500ms",
        ])
        .expect("valid arguments");
        let Command::Publish(args) = cli.command else {
            panic!("publish expected");
        };
        assert_eq!(args.concurrency, vec![2, 4]);
        assert_eq!(args.duration, Duration::from_millis(1500));
        assert_eq!(args.warmup, Duration::from_secs(2));
        assert_eq!(args.target.server, "http://127.0.0.1:8080");
        assert_eq!(args.batch, 1);
        assert!(args.rate.is_none());
    }

    #[test]
    fn tiering_scenarios_parse() {
        let cli = Cli::try_parse_from([
            "strata-loadtest",
            "queues",
            "--spawn",
            "/bin/true",
            "--server-env",
            "STRATA_LIMITS_MAX_QUEUES_PER_TOPIC=10000",
            "--server-env",
            "A=b=c",
            "--queues",
            "1,100",
        ])
        .expect("valid arguments");
        let Command::Queues(args) = cli.command else {
            panic!("queues expected");
        };
        assert_eq!(args.queues, vec![1, 100]);
        assert_eq!(args.messages, 200_000);
        assert_eq!(
            args.target.server_env,
            vec![
                ("STRATA_LIMITS_MAX_QUEUES_PER_TOPIC".into(), "10000".into()),
                ("A".into(), "b=c".into())
            ]
        );
        let cli = Cli::try_parse_from(["strata-loadtest", "catchup"]).expect("valid");
        let Command::Catchup(args) = cli.command else {
            panic!("catchup expected");
        };
        assert_eq!(args.backlog_mib, 256);
        assert_eq!(args.rate, 2000.0);
        assert_eq!(args.duration, Duration::from_secs(10));
        // --server-env needs --spawn; KEY=VALUE is required.
        for bad in [
            &["catchup", "--server-env", "A=1"][..],
            &["catchup", "--spawn", "x", "--server-env", "=1"],
            &["catchup", "--spawn", "x", "--server-env", "novalue"],
            &["queues", "--queues", "0"],
        ] {
            let mut argv = vec!["strata-loadtest"];
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&argv).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["--concurrency", "0"][..],
            &["--duration", "ten"],
            &["--duration", "48h"],
            &["--batch", "0"],
        ] {
            let mut argv = vec!["strata-loadtest", "publish"];
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&argv).is_err(), "{bad:?} accepted");
        }
    }
}
