//! `strata consume`: one reader task per queue, printing in arrival order.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::mpsc;

use super::args::StartAt;
use super::output::print_json;
use super::{ConsumeArgs, FindArgs};
use crate::http::messages::StoredJson;
use strata_client::http::{Client, ClientError};

/// How long each queue's reader long-polls when following.
const FOLLOW_WAIT_MS: u64 = 10_000;

#[derive(Serialize)]
struct Printed<'a> {
    topic: &'a str,
    queue: u32,
    #[serde(flatten)]
    message: &'a StoredJson,
}

enum Event {
    Batch(u32, Vec<StoredJson>),
    Failed(u32, ClientError),
}

pub async fn consume(client: &Client, json: bool, args: ConsumeArgs) -> Result<()> {
    let detail = client.describe_topic(&args.topic).await?;
    let queues: Vec<_> = detail
        .queue_stats
        .iter()
        .filter(|q| args.queue.is_none_or(|only| q.queue == only))
        .collect();
    if queues.is_empty() {
        anyhow::bail!(
            "topic {} has no queue {}",
            args.topic,
            args.queue.unwrap_or_default()
        );
    }
    let since = args.from_time;
    // Where the group starts on a queue it has not consumed: its `start`
    // (latest: what came after its creation). A group that does not exist
    // is made by the first commit, from the oldest message; say so, as a
    // mistyped name would otherwise make a new group silently.
    let mut group_created_latest = None;
    let mut group_missing = false;
    if let Some(g) = &args.group {
        // Asked even when --from says where to start: a name no group can
        // have is refused before anything is read.
        match client.describe_group(g).await {
            Ok(group) if group.start == strata_common::StartPosition::Latest => {
                group_created_latest = Some(group.created_ms);
            }
            Ok(_) => {}
            Err(ClientError::Api { status: 404, .. }) => {
                group_missing = true;
                if args.from.is_none() && since.is_none() {
                    eprintln!(
                        "group {g} does not exist: this consume reads from the oldest message \
                         and its first commit creates the group (`strata group create` \
                         chooses its start)"
                    );
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut start = BTreeMap::new();
    for q in &queues {
        if let Some(ts) = since {
            start.insert(
                q.queue,
                client.offset_at_time(&args.topic, q.queue, ts).await?,
            );
            continue;
        }
        let from = match args.from {
            Some(StartAt::Earliest) => q.first_offset,
            Some(StartAt::Latest) => q.end_offset,
            Some(StartAt::Offset(n)) => n,
            None => match &args.group {
                Some(g) => {
                    let stored = if group_missing {
                        None
                    } else {
                        client
                            .committed_offset(g, &args.topic, q.queue)
                            .await?
                            .offset
                    };
                    let committed = match stored {
                        Some(offset) => offset,
                        None => match group_created_latest {
                            Some(created_ms) => {
                                client
                                    .offset_at_time(&args.topic, q.queue, created_ms)
                                    .await?
                            }
                            None => q.first_offset,
                        },
                    };
                    // Retention removed what the group had not read: it
                    // goes on from the oldest message left.
                    if committed < q.first_offset {
                        eprintln!(
                            "queue {}: group {g} was at offset {committed}, but offsets below {} \
                             expired; going on from {}",
                            q.queue, q.first_offset, q.first_offset
                        );
                    }
                    committed.max(q.first_offset)
                }
                None => q.first_offset,
            },
        };
        start.insert(q.queue, from);
    }

    let (tx, mut rx) = mpsc::channel::<Event>(64);
    let mut readers = Vec::new();
    for (&queue, &from) in &start {
        let (client, tx, topic) = (client.clone(), tx.clone(), args.topic.clone());
        let follow = args.follow;
        readers.push(tokio::spawn(async move {
            let mut offset = from;
            loop {
                let wait = if follow { FOLLOW_WAIT_MS } else { 0 };
                match client.read(&topic, queue, offset, 500, wait).await {
                    Ok(reply) => {
                        offset = reply.next_offset;
                        let empty = reply.messages.is_empty();
                        if !empty && tx.send(Event::Batch(queue, reply.messages)).await.is_err() {
                            return;
                        }
                        if empty && !follow {
                            return;
                        }
                    }
                    // Following, a node answering "unavailable" (its tenant
                    // moving between nodes, say) is waited out, not fatal.
                    Err(ClientError::Api { status: 503, .. }) if follow => {
                        strata_common::Clock::sleep(
                            &strata_common::SystemClock,
                            std::time::Duration::from_secs(1),
                        )
                        .await;
                    }
                    Err(e) => {
                        let _ = tx.send(Event::Failed(queue, e)).await;
                        return;
                    }
                }
            }
        }));
    }
    drop(tx);

    let mut printed: BTreeMap<u32, u64> = BTreeMap::new();
    let mut committed: BTreeMap<u32, u64> = BTreeMap::new();
    let mut total = 0u64;
    let limit = args.count.unwrap_or(u64::MAX);
    let mut failure = None;
    // Following runs until Ctrl-C or SIGTERM, which end it like a count
    // does: what was printed is committed.
    let stopped = crate::server::wait_for_signal();
    tokio::pin!(stopped);
    'outer: loop {
        let event = tokio::select! {
            event = rx.recv() => event,
            () = &mut stopped, if args.follow => None,
        };
        let Some(event) = event else { break };
        match event {
            Event::Batch(queue, messages) => {
                for m in &messages {
                    if total >= limit {
                        break 'outer;
                    }
                    print_message(json, &args.topic, queue, m)?;
                    printed.insert(queue, m.offset + 1);
                    total += 1;
                }
                if total >= limit {
                    break;
                }
                // Following, each batch printed is committed as it goes: a
                // follow that is killed resumes after what it showed.
                if args.follow {
                    commit(client, &args, &printed, &mut committed).await?;
                }
            }
            Event::Failed(queue, e) => {
                failure = Some(anyhow::Error::new(e).context(format!("reading queue {queue}")));
                break;
            }
        }
    }
    for r in readers {
        r.abort();
    }
    commit(client, &args, &printed, &mut committed).await?;
    if !json {
        eprintln!("consumed {total} message(s) from {}", args.topic);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Commits the group's offsets on the queues printed from since the last
/// commit (nothing without `--group`).
async fn commit(
    client: &Client,
    args: &ConsumeArgs,
    printed: &BTreeMap<u32, u64>,
    committed: &mut BTreeMap<u32, u64>,
) -> Result<()> {
    let Some(group) = &args.group else {
        return Ok(());
    };
    for (queue, next) in printed {
        if committed.get(queue) == Some(next) {
            continue;
        }
        client
            .commit_offset(group, &args.topic, *queue, *next)
            .await
            .with_context(|| format!("committing group {group} on queue {queue}"))?;
        committed.insert(*queue, *next);
    }
    Ok(())
}

/// `strata find`: messages by id or key, from every queue.
pub async fn find(client: &Client, json: bool, args: FindArgs) -> Result<()> {
    let (by, value) = match (&args.id, &args.key) {
        (Some(id), _) => ("id", id),
        (None, Some(key)) => ("key", key),
        (None, None) => anyhow::bail!("give --id or --key"),
    };
    let reply = client
        .find_messages(&args.topic, by, value, args.limit)
        .await?;
    for found in &reply.messages {
        print_message(json, &args.topic, found.queue, &found.message)?;
    }
    if !json {
        let more = if reply.more {
            " (more match: raise --limit)"
        } else {
            ""
        };
        eprintln!(
            "found {} message(s) with {by} {value:?} in {}{more}",
            reply.messages.len(),
            args.topic
        );
    }
    Ok(())
}

fn print_message(json: bool, topic: &str, queue: u32, m: &StoredJson) -> Result<()> {
    if json {
        return print_json(&Printed {
            topic,
            queue,
            message: m,
        });
    }
    let mut line = format!("queue={queue} offset={}", m.offset);
    if let Some(k) = &m.key {
        line.push_str(&format!(" key={k}"));
    }
    if let Some(t) = &m.tag {
        line.push_str(&format!(" tag={t}"));
    }
    for (k, v) in &m.properties {
        line.push_str(&format!(" {k}={v}"));
    }
    match (&m.body, &m.body_base64) {
        (Some(text), _) => line.push_str(&format!("  {text}")),
        (None, Some(b64)) => line.push_str(&format!("  base64:{b64}")),
        _ => {}
    }
    println!("{line}");
    Ok(())
}
