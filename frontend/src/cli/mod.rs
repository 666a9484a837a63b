//! The `strata` command line: `strata serve` runs a node; every other
//! command is an HTTP client of a running node (`--server`, `STRATA_SERVER`).

mod admin;
pub mod args;
mod check;
mod consume;
mod forget;
mod metadata;
mod output;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: a durable message service with tiered storage",
    long_about = "Strata: a durable message service with tiered storage.\n\n\
        `strata serve` runs a node on its embedded defaults (data in ./strata-data, HTTP on 127.0.0.1:8080). \
        The other commands talk to a running node over its HTTP API.",
    propagate_version = true
)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Base URL of the Strata HTTP API the client commands talk to.
    #[arg(
        long,
        global = true,
        env = "STRATA_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_parser = args::server_url
    )]
    pub server: String,
    /// Access key to sign requests with (with --secret-key).
    #[arg(
        long,
        global = true,
        env = "STRATA_ACCESS_KEY",
        requires = "secret_key"
    )]
    pub access_key: Option<String>,
    /// Secret key of --access-key; never sent, only used to sign.
    #[arg(
        long,
        global = true,
        env = "STRATA_SECRET_KEY",
        hide_env_values = true,
        requires = "access_key"
    )]
    pub secret_key: Option<String>,
    /// File with access_key=/secret_key= lines, used when no keys are given
    /// [default: ./strata-data/admin-credentials, if it exists].
    #[arg(long, global = true, env = "STRATA_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Act on this tenant's resources (service admins only).
    #[arg(long, global = true, env = "STRATA_TENANT")]
    pub tenant: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Strata node until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Run the compactor as its own process, for nodes configured with
    /// compactor.mode = "separate" (metadata on etcd), until Ctrl-C or SIGTERM.
    Compactor(CompactorArgs),
    /// Create, list, inspect and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Publish messages: one per line of standard input, or one from --file.
    Produce(ProduceArgs),
    /// Read messages from a topic's queues, optionally tracking a group's offsets.
    Consume(ConsumeArgs),
    /// Find messages by message id or by key, in every queue of a topic.
    Find(FindArgs),
    /// Manage consumer groups and their committed offsets.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Show the node's status: WAL fill, cache, recovery.
    Status,
    /// Inspect the nodes sharing the metadata namespace (service admins).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Show who the credentials belong to: access key, tenant, role.
    Whoami,
    /// Manage tenants (service admins).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage access keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Show and set quota plans (service admins).
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Show metered usage (the bill): your tenant's, or as a service admin
    /// another's (--tenant) or everyone's (--all-tenants).
    Usage(UsageArgs),
    /// Work with a metadata store directly (no running node needed).
    #[command(subcommand)]
    Metadata(MetadataCommand),
    /// Recover a stopped node's data directory as a start would (replay the
    /// metadata journal, cut a torn WAL tail) and report what it holds; with
    /// --cut-damage, give up what a start refuses as damaged.
    Check(check::CheckArgs),
    /// Print the effective server configuration (defaults < file < STRATA_* env).
    Config {
        /// TOML config file to layer over the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Nodes with their state, addresses, heartbeat and upload lag, and the
    /// queues and tenants each holds, as the metadata store has them.
    Status,
    /// Declare a node lost whose data directory cannot be reached again
    /// (a volume destroyed): its tenants move to other nodes, and the
    /// acknowledged messages only its WAL held (its last reported upload
    /// lag) are given up. A node whose directory can be re-attached is
    /// adopted instead, losing nothing: prefer that.
    Forget {
        /// The node id.
        #[arg(value_parser = args::node_id)]
        node: String,
        /// Confirms giving up the messages only the node's WAL holds.
        #[arg(long)]
        lose_unuploaded_messages: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MetadataCommand {
    /// Measure conditional commits/s and latency of a metadata store
    /// ("embedded" or etcd://...), in a throwaway namespace.
    Bench(metadata::BenchArgs),
    /// Declare a node lost whose data directory cannot be reached again,
    /// straight on the metadata store: for a standby (serving.standby)
    /// waiting on a serving node whose volume was destroyed, when no node
    /// serves HTTP to take `strata cluster forget`. The lease it held is
    /// freed, the standby takes over, and the acknowledged messages only its
    /// WAL held are given up. Uses the nodes' config (metadata.url,
    /// serving.lease_ttl_ms).
    ForgetNode(forget::ForgetNodeArgs),
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Range start: RFC 3339 (2026-11-25T00:00:00Z), Unix milliseconds, or
    /// a duration before now ("24h", "7days") [default: 24h].
    #[arg(long, value_parser = args::when)]
    pub start: Option<args::When>,
    /// Range end, same forms [default: now].
    #[arg(long, value_parser = args::when)]
    pub end: Option<args::When>,
    /// minute, hour or day.
    #[arg(long, default_value = "hour", value_parser = ["minute", "hour", "day"])]
    pub granularity: String,
    /// Every tenant (service admins).
    #[arg(long)]
    pub all_tenants: bool,
    /// table (default), json or csv.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory for the WAL and the metadata store [default: ./strata-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP API listen address, HOST:PORT [default: 127.0.0.1:8080].
    #[arg(long)]
    pub http_addr: Option<String>,
    /// RocketMQ 5 gRPC API listen address [default: 127.0.0.1:8081].
    #[arg(long)]
    pub grpc_addr: Option<String>,
    /// TOML config file; see config/strata.example.toml for every key.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompactorArgs {
    /// TOML config file: the node's (metadata.url, object_store, compactor.*).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A node's WAL volume as NODE_ID=DATA_DIR; repeat for several
    /// [default: the config's node_id=data_dir].
    #[arg(long = "volume", value_name = "NODE_ID=DATA_DIR")]
    pub volumes: Vec<String>,
    /// Upload everything durable and run one maintenance pass, then exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name: 1-127 ASCII letters, digits, '-' or '_'.
        name: String,
        /// Number of queues (the unit of ordering and parallelism).
        #[arg(long, default_value_t = 4)]
        queues: u32,
        /// Message type the topic accepts: normal, fifo, delay or transaction.
        #[arg(
            long = "type",
            default_value = "normal",
            value_parser = ["normal", "fifo", "delay", "transaction"]
        )]
        message_type: String,
        /// How long messages are kept: a duration like 72h or 7days, or "unlimited"
        /// [default: the server's retention.default].
        #[arg(long)]
        retention: Option<String>,
        /// Size limit per queue in bytes as stored (compressed): the oldest data goes
        /// first, in whole stored ranges, keeping at least this much of the newest,
        /// plus what is not uploaded yet [default: none].
        #[arg(long)]
        retention_bytes: Option<u64>,
    },
    /// List topics.
    List,
    /// Show a topic and per-queue offsets and sizes.
    Describe { name: String },
    /// Delete a topic and (eventually) its data.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        name: String,
        /// Quota plan [default: default].
        #[arg(long)]
        plan: Option<String>,
    },
    /// List tenants.
    List,
    /// Show a tenant.
    Describe { name: String },
    /// Delete a tenant that owns no topics or groups; its keys stop working.
    Delete { name: String },
    /// Put a tenant on a quota plan.
    SetPlan { name: String, plan: String },
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Show one plan's quotas, or every plan.
    Show { plan: Option<String> },
    /// Create or change a plan; flags not given keep their current value
    /// (0 means unlimited).
    Set {
        plan: String,
        #[arg(long)]
        requests_per_sec: Option<u64>,
        #[arg(long)]
        publish_messages_per_sec: Option<u64>,
        #[arg(long)]
        publish_bytes_per_sec: Option<u64>,
        #[arg(long)]
        consume_messages_per_sec: Option<u64>,
        #[arg(long)]
        consume_bytes_per_sec: Option<u64>,
        #[arg(long)]
        max_topics: Option<u64>,
        #[arg(long)]
        max_queues: Option<u64>,
        #[arg(long)]
        max_groups: Option<u64>,
        /// Bytes stored (WAL + object storage) before publishes are refused.
        #[arg(long)]
        max_stored_bytes: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an access key; the secret is printed once.
    /// The key belongs to the tenant the request acts on: your own, or the
    /// one a service admin names with --tenant.
    Create {
        /// admin, tenant-admin, publisher or consumer.
        #[arg(long)]
        role: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List access keys (never secrets): your tenant's, or for a service
    /// admin every tenant's unless --tenant narrows it.
    List,
    /// Give a key a new secret; the old secret stops working at once.
    Rotate {
        /// The key to rotate (not the one requests are signed with, which
        /// is --access-key).
        #[arg(id = "key", value_name = "ACCESS_KEY")]
        access_key: String,
    },
    /// Revoke a key at once.
    Revoke {
        /// The key to revoke (not the one requests are signed with, which
        /// is --access-key).
        #[arg(id = "key", value_name = "ACCESS_KEY")]
        access_key: String,
    },
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to publish to.
    pub topic: String,
    /// Message key (messages with one key go to one queue, in order).
    #[arg(long)]
    pub key: Option<String>,
    /// Message tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// User property NAME=VALUE; repeat for more.
    #[arg(long = "property", value_name = "NAME=VALUE", value_parser = args::property)]
    pub properties: Vec<(String, String)>,
    /// Publish to this queue instead of routing by key / round robin.
    #[arg(long)]
    pub queue: Option<u32>,
    /// Publish the whole file as one message (binary safe) instead of reading lines from stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Lines per publish request when reading stdin.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// FIFO message group (FIFO topics: a group's messages are delivered
    /// in order, each once the one before it is acknowledged).
    #[arg(long)]
    pub message_group: Option<String>,
    /// Deliver this long from now (DELAY topics): 30s, 5m, 2h...
    #[arg(long, conflicts_with = "deliver_at", value_parser = args::duration)]
    pub delay: Option<std::time::Duration>,
    /// Deliver at this time (DELAY topics): RFC 3339 or Unix milliseconds.
    #[arg(long, value_parser = args::time_ms)]
    pub deliver_at: Option<i64>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("by").required(true).args(["id", "key"])))]
pub struct FindArgs {
    /// Topic to search.
    pub topic: String,
    /// The message id to find.
    #[arg(long)]
    pub id: Option<String>,
    /// The message key to find.
    #[arg(long)]
    pub key: Option<String>,
    /// Most messages to print.
    #[arg(long, default_value_t = 32)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Consumer group: start from its committed offsets and commit what was printed.
    #[arg(long)]
    pub group: Option<String>,
    /// Where to start: earliest, latest, or an offset (applied to every queue read).
    /// Default: the group's committed offset, else earliest.
    #[arg(long, conflicts_with = "from_time", value_parser = args::start_at)]
    pub from: Option<args::StartAt>,
    /// Start at the first message appended at or after this time: RFC 3339
    /// (2026-11-25T18:00:00Z) or milliseconds since the Unix epoch.
    #[arg(long, value_parser = args::time_ms)]
    pub from_time: Option<i64>,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Read only this queue.
    #[arg(long)]
    pub queue: Option<u32>,
    /// Keep waiting for new messages instead of exiting when caught up.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a consumer group (idempotent).
    Create {
        name: String,
        /// Deliveries before a message moves to <group>-DLQ [default: 16].
        #[arg(long)]
        max_delivery_attempts: Option<u32>,
        /// Wait after an unacknowledged delivery expires before redelivering,
        /// in ms, doubling per attempt [default: 0].
        #[arg(long)]
        retry_initial_backoff_ms: Option<u64>,
        /// Cap of that wait, in ms [default: the initial backoff].
        #[arg(long)]
        retry_max_backoff_ms: Option<u64>,
        /// Where receiving starts on a queue the group never read: latest
        /// (messages published after the group was created) or earliest
        /// (every retained message) [default: latest].
        #[arg(long, value_name = "earliest|latest")]
        start: Option<strata_engine::StartPosition>,
        /// Deliver FIFO topics in order, one message per message group at a
        /// time [default: true].
        #[arg(long, value_name = "true|false")]
        fifo: Option<bool>,
    },
    /// List consumer groups.
    List,
    /// Show a group's committed offsets and lag.
    Describe { name: String },
    /// Delete a group and its offsets.
    Delete { name: String },
    /// Commit an offset (the next offset to consume) for one queue.
    Commit {
        name: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        queue: u32,
        #[arg(long)]
        offset: u64,
    },
    /// Move a group on every queue of a topic at once (all queues or none) to
    /// earliest, latest, an offset, or the first message at or after a time:
    /// its committed offsets and where its receives (the SDKs' consumers)
    /// continue. Messages in flight to the group are dropped.
    Reset {
        name: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, an RFC 3339 time, or a duration before now (90m).
        #[arg(long, value_parser = args::reset_to)]
        to: args::ResetTo,
    },
}

/// The client flags: global, so that every client command takes them
/// anywhere on the line, but meaningless to the server commands.
const CLIENT_FLAGS: [&str; 5] = [
    "server",
    "access_key",
    "secret_key",
    "credentials_file",
    "tenant",
];

/// The command line, with the client flags left out of the server
/// commands' help (they still parse there, as globals do).
pub fn command() -> clap::Command {
    let cmd = <Cli as clap::CommandFactory>::command();
    // A subcommand that has an argument of a global's id keeps its own
    // when the globals are copied down: give these a hidden copy.
    let hidden: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| CLIENT_FLAGS.contains(&a.get_id().as_str()))
        .map(|a| a.clone().hide(true))
        .collect();
    ["serve", "compactor"].into_iter().fold(cmd, |cmd, server| {
        cmd.mut_subcommand(server, |sub| sub.args(hidden.clone()))
    })
}

/// Parses `args` (the program name first) with [`command`].
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
}

/// Entry point of the `strata` binary.
pub fn main() -> ExitCode {
    let cli = match parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, std::env::args_os()),
    };
    if !matches!(cli.command, Command::Serve(_) | Command::Compactor(_)) {
        restore_sigpipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    match runtime.block_on(run::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Reported>().is_some() => ExitCode::FAILURE,
        Err(e) if json => {
            println!("{}", error_json(&e));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// A command line clap refused. Asked for `--json`, a script gets the
/// refusal as the JSON error every other failure prints (code
/// `USAGE_ERROR`, exit status 2 as clap's); help and version print as
/// usual.
fn usage_error(e: clap::Error, args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if informational || !asks_for_json(args) {
        e.exit();
    }
    println!("{}", usage_error_json(&e));
    ExitCode::from(2)
}

/// Whether a command line clap could not parse still says `--json`
/// (before a bare `--`, after which everything is a value).
fn asks_for_json(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

fn usage_error_json(e: &clap::Error) -> serde_json::Value {
    // clap's own text on one line, without its "error: " lead and the
    // tips, usage and help hints after its first blank line.
    let rendered = e.render().to_string();
    let head = rendered.split("\n\n").next().unwrap_or_default();
    let head = head.strip_prefix("error: ").unwrap_or(head);
    let message = head.split_whitespace().collect::<Vec<_>>().join(" ");
    serde_json::json!({"error": {"code": "USAGE_ERROR", "message": message}})
}

/// Rust ignores SIGPIPE, so a client command writing to a closed pipe
/// (`strata consume … | head -1`) panicked on its next line. With the
/// default action it ends as other Unix tools do. Sockets are unaffected
/// (they are written with `MSG_NOSIGNAL`); the server processes keep
/// ignoring it.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resets one signal's disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A failure a command already printed in its own `--json` report
/// (`check`): the exit code says it failed, and nothing more is printed.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the report says why")
    }
}

/// A failure as `--json` prints it, on standard output where the result
/// would have been, in the API's error shape: `{"error":{"code","message"}}`.
/// The code is the server's when it answered, `UNREACHABLE` when it could
/// not be reached, `CLI_ERROR` for what failed here.
fn error_json(e: &anyhow::Error) -> serde_json::Value {
    use strata_client::http::ClientError;
    let (code, message) = match e.chain().find_map(|c| c.downcast_ref::<ClientError>()) {
        Some(ClientError::Api { code, message, .. }) => (code.clone(), message.clone()),
        Some(ClientError::Connect { .. }) => ("UNREACHABLE".to_string(), describe(e)),
        _ => ("CLI_ERROR".to_string(), describe(e)),
    };
    serde_json::json!({"error": {"code": code, "message": message}})
}

/// The error and its causes, leaving out a cause the text already gives
/// (at its end, or after a colon): most wrappers here say what failed *and*
/// print their source, so `{:#}` would repeat it.
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !out.ends_with(&cause) && !out.contains(&format!(": {cause}")) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn server_help_leaves_out_the_client_flags_that_still_parse() {
        let help = |sub: &str| {
            let mut cmd = super::command();
            cmd.build();
            cmd.find_subcommand_mut(sub)
                .map(|c| c.render_long_help().to_string())
                .unwrap_or_default()
        };
        for server in ["serve", "compactor"] {
            let text = help(server);
            assert!(
                text.contains("--data-dir") || text.contains("--config"),
                "{text}"
            );
            for flag in [
                "--server",
                "--access-key",
                "--secret-key",
                "--credentials-file",
                "--tenant",
            ] {
                assert!(!text.contains(flag), "{server}: {flag} in {text}");
            }
        }
        let produce = help("produce");
        assert!(
            produce.contains("--server") && produce.contains("--tenant"),
            "{produce}"
        );
        // Hidden, not removed: a line that names one still parses.
        let cli = super::parse_from(["strata", "serve", "--server", "http://127.0.0.1:9"]).unwrap();
        assert!(matches!(cli.command, super::Command::Serve(_)));
        let cli = super::parse_from(["strata", "topic", "list", "--tenant", "acme"]).unwrap();
        assert_eq!(cli.tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn usage_errors_print_as_json_when_asked() {
        use clap::Parser;
        fn args(line: &str) -> Vec<std::ffi::OsString> {
            line.split(' ').map(std::ffi::OsString::from).collect()
        }
        assert!(super::asks_for_json(args(
            "strata --json topic list --bogus"
        )));
        assert!(!super::asks_for_json(
            args("strata topic list --bogus").into_iter()
        ));
        assert!(!super::asks_for_json(
            args("strata publish t -- --json").into_iter()
        ));
        let e = super::Cli::try_parse_from(args("strata --json topic create")).unwrap_err();
        let json = super::usage_error_json(&e);
        assert_eq!(json["error"]["code"], "USAGE_ERROR");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("required") && message.contains("<NAME>"),
            "{message}"
        );
        assert!(!message.starts_with("error"), "{message}");
    }

    #[test]
    fn json_errors_carry_the_servers_code() {
        use strata_client::http::ClientError;
        let api = anyhow::Error::new(ClientError::Api {
            status: 404,
            code: "TOPIC_NOT_FOUND".into(),
            message: "topic \"x\" does not exist".into(),
        })
        .context("describing x");
        assert_eq!(
            super::error_json(&api),
            serde_json::json!({"error": {"code": "TOPIC_NOT_FOUND", "message": "topic \"x\" does not exist"}})
        );
        let local = anyhow::anyhow!("--from \"x\" is not earliest, latest or an offset");
        assert_eq!(super::error_json(&local)["error"]["code"], "CLI_ERROR");
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(inner).context("reading the WAL: disk on fire");
        assert_eq!(describe(&e), "reading the WAL: disk on fire");
        let e = anyhow::Error::new(std::io::Error::other("no space")).context("writing");
        assert_eq!(describe(&e), "writing: no space");
        let e = anyhow::Error::new(std::io::Error::other("not found")).context("not found here");
        assert_eq!(describe(&e), "not found here: not found");
        // A wrapper that names its source mid-sentence (the client's
        // "cannot reach ...: <cause>. Is ... running?") gets it once.
        let e = anyhow::Error::new(std::io::Error::other("refused"))
            .context("cannot reach x: refused. Is it running?");
        assert_eq!(describe(&e), "cannot reach x: refused. Is it running?");
    }
}
