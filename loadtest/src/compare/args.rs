//! Arguments of `strata-loadtest compare`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::cli::{parse_duration, parse_env_pair};
use crate::systems::System;

/// Scenarios 1–4 of the benchmark plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// 1: publish as fast as acknowledgements allow.
    MaxRate,
    /// 2: publish at --rate; latency from each message's intended send time.
    FixedRate,
    /// 3: publish at --rate while one reader per queue tails: end-to-end latency.
    Tail,
    /// 4: write a backlog, then fixed-rate producers without and with one
    /// reader per queue reading the backlog from the start.
    Catchup,
    /// 7: publish at --rate while --consumers members of one consumer group
    /// receive from every queue and acknowledge each batch: end-to-end and
    /// acknowledgement latency, and whether every acknowledged message
    /// arrived.
    Consume,
}

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::MaxRate => "max-rate",
            Self::FixedRate => "fixed-rate",
            Self::Tail => "tail",
            Self::Catchup => "catchup",
            Self::Consume => "consume",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Systems to load, one after another in this one invocation, each
    /// started fresh on 127.0.0.1 and stopped (data deleted) afterwards.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "strata-http,strata-grpc,nats,redis"
    )]
    pub systems: Vec<System>,
    /// An OpenMessaging Benchmark workload file (YAML; see
    /// loadtest/workloads/). It sets the topics, queues, message size,
    /// producers, rate, consumers, backlog, duration and warm-up, and picks
    /// the scenario; those flags are then ignored.
    #[arg(long, value_name = "FILE")]
    pub workload: Option<PathBuf>,
    /// Scenarios to run on each system, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "max-rate,fixed-rate,tail,catchup,consume"
    )]
    pub scenarios: Vec<ScenarioKind>,
    /// The `strata` binary to start.
    #[arg(long, default_value = "target/release/strata")]
    pub strata_bin: PathBuf,
    /// The `nats-server` binary (Debian package nats-server; scripts/peers.sh).
    #[arg(long, default_value = "nats-server")]
    pub nats_server: PathBuf,
    /// The `redis-server` binary (Debian package redis-server; scripts/peers.sh).
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// Parent directory of every system's temporary data directory (the
    /// disk under test; tmpfs would make fsync free) [default: system temp dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Extra environment variable for the Strata server (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub strata_env: Vec<(String, String)>,
    /// Topics each scenario publishes to (producer i to topic i mod N, so
    /// --producers must be a multiple of it; one reader per queue of every
    /// topic).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub topics: u32,
    /// Producer tasks (each with its own connection, one request in flight).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub producers: u32,
    /// Members of the consumer group in `consume` (member i on topic i mod
    /// N, so a multiple of --topics; each with its own connection).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub consumers: u32,
    /// Queues per topic (JetStream subjects, Redis stream keys); one reader
    /// each in `tail` and `catchup`.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub queues: u32,
    /// Message body size in bytes (at least 16: the first 8 carry the send time).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=(1 << 20)))]
    pub message_size: u32,
    /// Messages per publish request (Strata: one HTTP request; NATS: that
    /// many PUBs awaiting their PubAcks; Redis: that many pipelined XADDs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,
    /// Measured time of each phase.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured time before each phase's measurement.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Total messages/s of the fixed-rate, tail, catch-up and consume
    /// producers (tail and consume also take 0: as fast as acknowledgements
    /// allow).
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Catch-up backlog, MiB of bodies, written at max rate first.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=(1 << 16)))]
    pub backlog_mib: u64,
    /// Catch-up readers may run this long after the producers stopped.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub catchup_drain: Duration,
    /// Strata: longest wait for the backlog to be uploaded to object
    /// storage before the catch-up phases (so the read is a cold read).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub upload_timeout: Duration,
    /// Strata: before each scenario (and after the catch-up backlog), wait
    /// until the object-store counters have stood still this long, so one
    /// scenario's uploads and merges do not land in the next one's numbers.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Stop each publishing phase after this many messages (whole batches).
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Per-request timeout; a timed-out request counts as an error.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Seed for the random message bodies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory for report.json, report.md and the SVG charts (created).
    #[arg(long, value_name = "DIR", default_value = "loadtest-report")]
    pub out: PathBuf,
    /// No progress lines (they are also off when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}
