//! Dispatch of CLI commands, and their text output.

use std::io::{BufRead, Read};

use super::output::{bytes, print_json};
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::args::ResetTo;
use super::{
    Cli, ClusterCommand, Command, CompactorArgs, GroupCommand, MetadataCommand, ProduceArgs,
    ServeArgs, TopicCommand,
};
use crate::config::Config;
use crate::http::groups::CreateGroup;
use crate::http::messages::MessageJson;
use crate::http::topics::{CreateTopic, TopicJson};
use strata_client::http::Client;

pub async fn run(cli: Cli) -> Result<()> {
    // Commands that run a process or read a data directory take no client
    // credentials: a client's STRATA_CREDENTIALS_FILE naming a file the
    // first start has yet to write must not stop the server starting.
    let local = matches!(
        cli.command,
        Command::Serve(_)
            | Command::Compactor(_)
            | Command::Config { .. }
            | Command::Check(_)
            | Command::Metadata(_)
    );
    let client = if local {
        Client::new(&cli.server)
    } else {
        client(&cli)?
    };
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Compactor(args) => compactor(args).await,
        Command::Config { config } => {
            let config = Config::load(config.as_deref(), std::env::vars())?;
            for name in Config::unknown_env(std::env::vars()) {
                eprintln!(
                    "warning: {name} names no config key and is ignored (config/strata.example.toml lists every STRATA_* variable)"
                );
            }
            if json {
                return print_json(&config);
            }
            print!("{}", toml::to_string(&config)?);
            Ok(())
        }
        Command::Check(args) => super::check::check(args, json).await,
        Command::Metadata(MetadataCommand::Bench(args)) => super::metadata::bench(args, json).await,
        Command::Metadata(MetadataCommand::ForgetNode(args)) => {
            super::forget::forget_node(args, json).await
        }
        Command::Topic(cmd) => topic(&client, json, cmd).await,
        Command::Whoami => {
            let me = client.whoami().await?;
            if json {
                return print_json(&me);
            }
            println!(
                "{} — tenant {}, role {}{}",
                me.access_key,
                me.tenant,
                me.role,
                if me.acting_tenant != me.tenant {
                    format!(", acting on tenant {}", me.acting_tenant)
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Command::Tenant(cmd) => super::admin::tenant(&client, json, cmd).await,
        Command::Key(cmd) => super::admin::key(&client, json, cmd).await,
        Command::Quota(cmd) => super::admin::quota(&client, json, cmd).await,
        Command::Usage(args) => super::admin::usage(&client, json, args).await,
        Command::Produce(args) => produce(&client, json, args).await,
        Command::Consume(args) => super::consume::consume(&client, json, args).await,
        Command::Find(args) => super::consume::find(&client, json, args).await,
        Command::Group(cmd) => group(&client, json, cmd).await,
        Command::Cluster(ClusterCommand::Status) => {
            let cluster = client.cluster().await?;
            if json {
                return print_json(&cluster);
            }
            print_cluster(&cluster);
            Ok(())
        }
        Command::Cluster(ClusterCommand::Forget {
            node,
            lose_unuploaded_messages,
        }) => {
            if !lose_unuploaded_messages {
                anyhow::bail!(
                    "declaring node {node} lost gives up the acknowledged messages only its WAL \
                     holds (`strata cluster status` shows its upload lag); if its data directory \
                     can be reached again, let a node adopt it instead. Pass \
                     --lose-unuploaded-messages to confirm"
                );
            }
            let cluster = client.forget_node(&node).await?;
            if json {
                return print_json(&cluster);
            }
            if let Some(n) = cluster.nodes.iter().find(|n| n.node == node) {
                println!(
                    "node {node} declared lost; what its WAL held and object storage did not was given up with it: {} at its last heartbeat, and whatever it acknowledged after that; its tenants move to the live nodes",
                    bytes(n.lost_bytes.unwrap_or(n.upload_lag_bytes))
                );
            }
            print_cluster(&cluster);
            Ok(())
        }
        Command::Status => {
            let status = client.status().await?;
            if json {
                return print_json(&status);
            }
            println!(
                "node        {} (version {})",
                status.node_id, status.version
            );
            match &status.not_ready {
                Some(why) => println!("ready       NO: {why}"),
                None => println!("ready       yes: accepting publishes"),
            }
            println!("topics      {} ({} queues)", status.topics, status.queues);
            println!(
                "retained    {} messages, {}",
                status.retained_messages,
                bytes(status.retained_bytes)
            );
            println!(
                "wal         {} of {} ({:.1}%), {} segments, {} appends in {} fsyncs{}{}",
                bytes(status.wal.used_bytes),
                bytes(status.wal.max_bytes),
                status.wal.fill_ratio * 100.0,
                status.wal.segments,
                status.wal.appends,
                status.wal.syncs,
                if status.wal.paced_appends > 0 {
                    format!(
                        ", {} paced while filling ({:.1} s waited)",
                        status.wal.paced_appends,
                        status.wal.pace_wait_ms as f64 / 1000.0
                    )
                } else {
                    String::new()
                },
                if status.wal.failed { ", FAILED" } else { "" }
            );
            println!(
                "tail cache  {} of {}, {} hits, {} misses",
                bytes(status.tail_cache.bytes as u64),
                bytes(status.tail_cache.capacity_bytes as u64),
                status.tail_cache.hits,
                status.tail_cache.misses
            );
            let t = &status.tiering;
            println!(
                "objects     {} — compactor {}, checkpoint {}, upload lag {} ({} ms), {} uploads ({}), {} merges, {} expired ranges, {} objects collected",
                t.object_store,
                t.compactor,
                t.checkpoint_lsn,
                bytes(t.upload_lag_bytes),
                t.upload_lag_ms,
                t.uploads,
                bytes(t.uploaded_bytes),
                t.merges,
                t.expired_ranges,
                t.gc_deleted_objects
            );
            let o = &t.object_requests;
            println!(
                "requests    {} PUT ({}), {} GET ({}), {} LIST, {} DELETE, {} retries, {} errors",
                o.puts,
                bytes(o.put_bytes),
                o.gets,
                bytes(o.get_bytes),
                o.lists,
                o.deletes,
                o.retries,
                o.errors
            );
            println!(
                "block cache {:.1}% hit ({} hits, {} misses), cold reads {} ({})",
                t.block_cache.hit_ratio * 100.0,
                t.block_cache.hits,
                t.block_cache.misses,
                t.cold_reads.fetches,
                bytes(t.cold_reads.bytes)
            );
            if let Some(e) = &t.last_error {
                println!(
                    "last error  {e} ({} failed passes since start)",
                    t.failed_passes
                );
            }
            let r = &status.recovery;
            println!(
                "recovery    {} records ({}) from {} segments{}",
                r.records,
                bytes(r.bytes),
                r.segments,
                match &r.truncated_path {
                    Some(p) => format!(
                        "; cut {} torn bytes from {p}: {}",
                        r.truncated_bytes,
                        r.truncated_reason.as_deref().unwrap_or("")
                    ),
                    None => String::new(),
                }
            );
            if let Some(at) = r.restarted_at_lsn {
                println!(
                    "            the WAL ended below its upload checkpoint and was started again at LSN {at}"
                );
            }
            let m = &status.metadata;
            match &m.serving_lease {
                Some(l) => println!(
                    "metadata    {}, namespace served by node {} (data directory {}, identity {}){}",
                    m.backend,
                    l.node,
                    l.data_dir,
                    l.identity,
                    if l.released { ", handed over" } else { "" }
                ),
                None => println!("metadata    {}", m.backend),
            }
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v}"));
            println!(
                "            {} commits (p50 {} ms, p99 {} ms, p99.9 {} ms; {} checks failed, {} errors), {} reads (p50 {} ms, p99 {} ms; {} errors), {} given up",
                m.commits,
                ms(m.commit_p50_ms),
                ms(m.commit_p99_ms),
                ms(m.commit_p999_ms),
                m.checks_failed,
                m.failed_commits,
                m.reads,
                ms(m.read_p50_ms),
                ms(m.read_p99_ms),
                m.failed_reads,
                m.cancelled
            );
            Ok(())
        }
    }
}

/// The HTTP client with the credentials the flags, the environment or a
/// credentials file give.
fn client(cli: &Cli) -> Result<Client> {
    let mut client = Client::new(&cli.server);
    let keys = match (&cli.access_key, &cli.secret_key) {
        (Some(ak), Some(sk)) => Some((ak.clone(), sk.clone())),
        (Some(_), None) | (None, Some(_)) => {
            bail!(
                "give both --access-key and --secret-key (or STRATA_ACCESS_KEY and STRATA_SECRET_KEY)"
            )
        }
        (None, None) => {
            let default = std::path::PathBuf::from("strata-data/admin-credentials");
            match &cli.credentials_file {
                Some(path) => Some(read_credentials_file(path)?),
                None if default.exists() => read_credentials_file(&default).ok(),
                None => None,
            }
        }
    };
    if let Some((ak, sk)) = keys {
        client = client.with_credentials(&ak, &sk);
    }
    if let Some(t) = &cli.tenant {
        client = client.with_tenant(t);
    }
    Ok(client)
}

fn read_credentials_file(path: &std::path::Path) -> Result<(String, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading credentials file {}", path.display()))?;
    match strata_tenancy::parse_credentials(&text) {
        Some((ak, sk)) => Ok((ak, sk.expose().to_string())),
        None => bail!(
            "credentials file {} needs access_key= and secret_key= lines",
            path.display()
        ),
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(addr) = args.http_addr {
        config.http.addr = addr;
    }
    if let Some(addr) = args.grpc_addr {
        config.grpc.addr = addr;
    }
    config.validate()?;
    crate::telemetry::init(&config.log.level, &config.log.format);
    for name in Config::unknown_env(std::env::vars()) {
        tracing::warn!(variable = %name, "ignoring an environment variable that names no config key (see config/strata.example.toml for every STRATA_* variable)");
    }
    crate::server::run_until_signal(config).await?;
    Ok(())
}

async fn compactor(args: CompactorArgs) -> Result<()> {
    let config = Config::load(args.config.as_deref(), std::env::vars())?;
    let volumes = args
        .volumes
        .iter()
        .map(|v| crate::separate_compactor::Volume::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    crate::telemetry::init(&config.log.level, &config.log.format);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::server::wait_for_signal().await;
        tracing::info!("shutdown signal received; finishing the pass in progress");
        stop.send_replace(true);
    });
    crate::separate_compactor::run(config, volumes, args.once, stopped).await?;
    Ok(())
}

fn print_topic_line(t: &TopicJson) {
    let per_queue = t
        .retention_bytes
        .map(|b| format!(" retention_bytes={b} per queue"))
        .unwrap_or_default();
    println!(
        "{:<32} {:>6} queues  type={:<11} retention={}{per_queue}",
        t.name, t.queues, t.message_type, t.retention
    );
}

async fn topic(client: &Client, json: bool, cmd: TopicCommand) -> Result<()> {
    match cmd {
        TopicCommand::Create {
            name,
            queues,
            message_type,
            retention,
            retention_bytes,
        } => {
            let t = client
                .create_topic(&CreateTopic {
                    name,
                    queues,
                    message_type: Some(message_type),
                    retention,
                    retention_bytes,
                })
                .await?;
            if json {
                return print_json(&t);
            }
            println!("created topic {} with {} queues", t.name, t.queues);
        }
        TopicCommand::List => {
            let list = client.list_topics().await?;
            if json {
                return print_json(&list);
            }
            if list.topics.is_empty() {
                println!("no topics; create one with `strata topic create NAME`");
            }
            for t in &list.topics {
                print_topic_line(t);
            }
        }
        TopicCommand::Describe { name } => {
            let d = client.describe_topic(&name).await?;
            if json {
                return print_json(&d);
            }
            print_topic_line(&d.topic);
            println!(
                "{:>6} {:>12} {:>12} {:>10} {:>11} {:>14} {:>11} {:>8}  owner",
                "queue", "first", "end", "messages", "bytes", "in objects", "obj bytes", "objects"
            );
            for q in &d.queue_stats {
                let cold = match (q.object_first_offset, q.object_end_offset) {
                    (Some(a), Some(b)) => format!("{a}..{b}"),
                    _ => "-".to_string(),
                };
                println!(
                    "{:>6} {:>12} {:>12} {:>10} {:>11} {:>14} {:>11} {:>8}  {}@{}",
                    q.queue,
                    q.first_offset,
                    q.end_offset,
                    q.messages,
                    bytes(q.bytes),
                    cold,
                    bytes(q.object_bytes),
                    q.objects,
                    q.owner_node,
                    q.owner_epoch
                );
            }
        }
        TopicCommand::Delete { name } => {
            let t = client.delete_topic(&name).await?;
            if json {
                return print_json(&t);
            }
            println!("deleted topic {}", t.name);
        }
    }
    Ok(())
}

async fn produce(client: &Client, json: bool, args: ProduceArgs) -> Result<()> {
    let template = MessageJson {
        key: args.key.clone(),
        tag: args.tag.clone(),
        properties: args.properties.iter().cloned().collect(),
        queue: args.queue,
        message_group: args.message_group.clone(),
        deliver_at_ms: deliver_at_ms(&args),
        ..MessageJson::default()
    };
    // --delay counts from each message's publish, not from the start.
    let delayed = |mut m: MessageJson| -> Result<MessageJson> {
        if args.delay.is_some() {
            m.deliver_at_ms = deliver_at_ms(&args);
        }
        Ok(m)
    };
    let mut total = 0usize;
    let mut send = async |batch: Vec<MessageJson>| -> Result<()> {
        let reply = client.publish(&args.topic, batch).await?;
        for p in &reply.messages {
            if json {
                print_json(p)?;
            } else {
                match (p.queue, p.offset, p.deliver_at_ms) {
                    (Some(queue), Some(offset), _) => {
                        println!("queue={queue} offset={offset} id={}", p.id);
                    }
                    (_, _, at) => println!(
                        "scheduled deliver_at_ms={} id={}",
                        at.map_or_else(|| "?".to_string(), |at| at.to_string()),
                        p.id
                    ),
                }
            }
        }
        total += reply.messages.len();
        Ok(())
    };
    if let Some(path) = &args.file {
        let mut data = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .with_context(|| format!("reading {}", path.display()))?;
        let mut m = template.clone();
        match String::from_utf8(data) {
            Ok(text) => m.body = Some(text),
            Err(e) => m.body_base64 = Some(B64.encode(e.into_bytes())),
        }
        send(vec![m]).await?;
    } else {
        let batch_size = args.batch.clamp(1, 1000);
        let mut batch = Vec::with_capacity(batch_size);
        for line in std::io::stdin().lock().lines() {
            let line = line.context("reading standard input")?;
            let mut m = template.clone();
            m.body = Some(line);
            batch.push(delayed(m)?);
            if batch.len() == batch_size {
                send(std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            send(batch).await?;
        }
    }
    if !json {
        eprintln!("published {total} message(s) to {}", args.topic);
    }
    Ok(())
}

/// When `--delay` or `--deliver-at` asks the messages to be delivered.
fn deliver_at_ms(args: &ProduceArgs) -> Option<i64> {
    match args.delay {
        Some(delay) => {
            let now = strata_common::Clock::now_ms(&strata_common::SystemClock);
            Some(now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)))
        }
        None => args.deliver_at,
    }
}

async fn group(client: &Client, json: bool, cmd: GroupCommand) -> Result<()> {
    match cmd {
        GroupCommand::Create {
            name,
            max_delivery_attempts,
            retry_initial_backoff_ms,
            retry_max_backoff_ms,
            start,
            fifo,
        } => {
            let g = client
                .create_group(&CreateGroup {
                    name,
                    max_delivery_attempts,
                    retry_initial_backoff_ms,
                    retry_max_backoff_ms,
                    start,
                    fifo,
                })
                .await?;
            if json {
                return print_json(&g);
            }
            let backoff = match (g.retry_initial_backoff_ms, g.retry_max_backoff_ms) {
                (0, _) => "no retry backoff".to_string(),
                (a, b) if a == b => format!("retry backoff {a} ms"),
                (a, b) => format!("retry backoff {a} ms doubling to {b} ms"),
            };
            println!(
                "group {} ready: starts at the {} messages, {} deliveries before its DLQ, {backoff}{}",
                g.name,
                g.start.as_str(),
                g.max_delivery_attempts,
                if g.fifo {
                    ""
                } else {
                    ", FIFO topics unordered"
                }
            );
        }
        GroupCommand::List => {
            let list = client.list_groups().await?;
            if json {
                return print_json(&list);
            }
            if list.groups.is_empty() {
                println!("no groups");
            }
            for g in &list.groups {
                println!("{}", g.name);
            }
        }
        GroupCommand::Describe { name } => {
            let g = client.describe_group(&name).await?;
            if json {
                return print_json(&g);
            }
            println!(
                "group {}: starts at the {} messages; FIFO topics {}",
                g.name,
                g.start.as_str(),
                if g.fifo { "in order" } else { "unordered" }
            );
            let offsets = g.offsets.unwrap_or_default();
            let receiving = g.receiving.unwrap_or_default();
            if offsets.is_empty() && receiving.is_empty() {
                println!("nothing consumed yet");
            }
            if !offsets.is_empty() {
                println!("committed offsets (reads by offset, `consume --group`):");
                println!(
                    "{:<32} {:>6} {:>14} {:>10}",
                    "topic", "queue", "offset", "lag"
                );
                for o in offsets {
                    println!(
                        "{:<32} {:>6} {:>14} {:>10}",
                        o.topic, o.queue, o.offset, o.lag
                    );
                }
            }
            if !receiving.is_empty() {
                println!("receiving by message (the RocketMQ SDKs' consumers, receive/ack):");
                println!(
                    "{:<32} {:>6} {:>14} {:>10} {:>10} {:>10}",
                    "topic", "queue", "cursor", "in flight", "ready", "lag"
                );
                for r in receiving {
                    let cursor = r.cursor.map_or_else(|| "-".to_owned(), |c| c.to_string());
                    println!(
                        "{:<32} {:>6} {:>14} {:>10} {:>10} {:>10}",
                        r.topic, r.queue, cursor, r.in_flight, r.ready, r.lag
                    );
                }
            }
        }
        GroupCommand::Delete { name } => {
            client.delete_group(&name).await?;
            if !json {
                println!("deleted group {name}");
            }
        }
        GroupCommand::Commit {
            name,
            topic,
            queue,
            offset,
        } => {
            let c = client.commit_offset(&name, &topic, queue, offset).await?;
            if json {
                return print_json(&c);
            }
            println!("group {name} committed {topic} queue {queue} at offset {offset}");
        }
        GroupCommand::Reset { name, topic, to } => {
            let reset = client
                .reset_offsets(&name, &topic, &reset_target(&to))
                .await?;
            if json {
                return print_json(&reset);
            }
            for q in &reset.offsets {
                println!(
                    "group {name}: {topic} queue {} -> offset {}",
                    q.queue, q.offset
                );
            }
        }
    }
    Ok(())
}

fn print_cluster(c: &strata_client::api::status::ClusterJson) {
    println!(
        "metadata {} — {} node{}, {} queues (answered by {})",
        c.backend,
        c.nodes.len(),
        if c.nodes.len() == 1 { "" } else { "s" },
        c.queues,
        c.answered_by
    );
    if let Some(l) = &c.serving_lease {
        let left = l.expires_ms - c.now_ms;
        println!(
            "serving lease: {}{}",
            l.node,
            if l.released {
                " (handed over)".to_string()
            } else if left > 0 {
                format!(" ({left} ms left)")
            } else {
                format!(" (expired {} ms ago, not handed over)", -left)
            }
        );
    }
    let rows: Vec<[String; 8]> = c
        .nodes
        .iter()
        .map(|n| {
            let running = n.state == "live" || n.state == "expired";
            let state = match (&n.adopted_by, &n.lost_by) {
                (Some(by), _) => format!("adopted by {by}"),
                (None, Some(_)) => "lost".to_string(),
                (None, None) => n.state.clone(),
            };
            // The registry record's expiry, renewed by each heartbeat.
            let heartbeat = match n.expires_in_ms {
                _ if !running => "-".to_string(),
                left if left >= 0 => format!("expires in {left} ms"),
                left => format!("expired {} ms ago", -left),
            };
            // What a node that left or was adopted had not uploaded was
            // uploaded since; a lost node's is what was given up.
            let lag = if running || n.lost_by.is_some() {
                bytes(n.upload_lag_bytes)
            } else {
                "-".to_string()
            };
            [
                n.node.clone(),
                state,
                n.grpc_addr.clone(),
                n.http_addr.clone(),
                n.queues.to_string(),
                n.tenants.to_string(),
                lag,
                heartbeat,
            ]
        })
        .collect();
    let headers = [
        "NODE",
        "STATE",
        "GRPC",
        "HTTP",
        "QUEUES",
        "TENANTS",
        "LAG",
        "HEARTBEAT",
    ];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([headers[i].len()])
            .max()
            .unwrap_or(0)
    };
    let line = |cells: [&str; 8]| {
        let [node, state, grpc, http, queues, tenants, lag, heartbeat] = cells;
        println!(
            "{node:<w0$} {state:<w1$} {grpc:<w2$} {http:<w3$} {queues:>w4$} {tenants:>w5$} {lag:>w6$} {heartbeat}",
            w0 = width(0),
            w1 = width(1),
            w2 = width(2),
            w3 = width(3),
            w4 = width(4),
            w5 = width(5),
            w6 = width(6),
        );
    };
    line(headers);
    for r in &rows {
        line(std::array::from_fn(|i| r[i].as_str()));
    }
    if c.queues_unregistered_owner > 0 {
        println!(
            "{} queues are owned by nodes not in the registry (nodes from before it existed)",
            c.queues_unregistered_owner
        );
    }
}

/// `--to` of `group reset` as the API takes it.
fn reset_target(to: &ResetTo) -> strata_client::api::groups::ResetOffsets {
    use strata_client::api::groups::ResetOffsets;
    let now = strata_common::Clock::now_ms(&strata_common::SystemClock);
    match to {
        ResetTo::Earliest => ResetOffsets {
            to: Some("earliest".to_string()),
            ..ResetOffsets::default()
        },
        ResetTo::Latest => ResetOffsets {
            to: Some("latest".to_string()),
            ..ResetOffsets::default()
        },
        ResetTo::Offset(offset) => ResetOffsets {
            offset: Some(*offset),
            ..ResetOffsets::default()
        },
        ResetTo::Time(when) => ResetOffsets {
            timestamp_ms: Some(when.to_ms(now)),
            ..ResetOffsets::default()
        },
    }
}
