//! The reading scenarios' tables of the comparison report: tail readers,
//! catch-up readers, consumer groups.

use std::fmt::Write as _;

use super::report::{RunResult, durable_label};

pub(super) fn tail(out: &mut String, runs: &[RunResult]) {
    let rows: Vec<_> = runs
        .iter()
        .filter(|r| r.scenario == "tail")
        .filter_map(|r| {
            let read = r.main_phase()?.read.as_ref()?;
            Some((r, read, read.e2e_latency_ms?))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "\nTail consumers (end-to-end latency from the intended send time to the reader, ms):\n\n\
         | system | durable ack | read msgs/s | p50 | p90 | p99 | p99.9 | p99.99 | max | read errors |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (r, read, l) in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            r.system,
            durable_label(r.durable),
            read.msgs_per_sec,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.p9999,
            l.max,
            read.errors
        );
    }
}

pub(super) fn catchup(out: &mut String, runs: &[RunResult]) {
    let rows: Vec<_> = runs.iter().filter(|r| r.scenario == "catchup").collect();
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "\nCatch-up (hot/cold isolation): fixed-rate producers without and with one reader per queue reading the backlog from the start:\n\n\
         | system | durable ack | backlog msgs | backlog msgs/s | baseline p50 / p99 / p99.9 ms | with catch-up p50 / p99 / p99.9 ms | read MiB/s | read / backlog | read s | object GETs |\n\
         |---|---|---:|---:|---|---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let g = |suffix: &str| r.phase(suffix).and_then(|p| p.groups.first());
        let lat = |suffix: &str| {
            g(suffix).map_or("-".into(), |g| {
                let l = g.latency_ms;
                format!("{:.2} / {:.2} / {:.2}", l.p50, l.p99, l.p999)
            })
        };
        let backlog = g("backlog");
        let with = r.phase("with-catchup");
        let read = with.and_then(|p| p.read.as_ref());
        let gets = with
            .and_then(|p| p.objects.as_ref())
            .map_or("-".into(), |o| o.gets.to_string());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {gets} |",
            r.system,
            durable_label(r.durable),
            backlog.map_or(0, |b| b.acked_per_queue.iter().sum::<u64>()),
            backlog.map_or(0.0, |b| b.msgs_per_sec),
            lat("baseline"),
            lat("with-catchup"),
            read.map_or("-".into(), |x| format!("{:.1}", x.mib_per_sec)),
            read.map_or("-".into(), |x| format!(
                "{}/{}",
                x.messages,
                x.expected.unwrap_or(0)
            )),
            read.map_or("-".into(), |x| format!("{:.1}", x.elapsed_s)),
        );
    }
}

pub(super) fn consume(out: &mut String, runs: &[RunResult]) {
    let rows: Vec<_> = runs
        .iter()
        .filter(|r| r.scenario == "consume")
        .filter_map(|r| Some((r, r.main_phase()?.read.as_ref()?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "\nConsumer group (members receive from every queue and acknowledge each batch; end-to-end latency from the intended send time to the member, ms; acknowledgement: one request per batch, ms):\n\n\
         | system | durable ack | members | received msgs/s | e2e p50 | e2e p99 | e2e p99.9 | e2e max | ack p50 | ack p99 | ack p99.9 | distinct received / acknowledged to producers | duplicates | extra | errors | members gave up |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (r, read) in rows {
        let e2e = read.e2e_latency_ms.unwrap_or_default();
        let ack = read.ack_latency_ms.unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {}/{} | {} | {} | {} | {} |",
            r.system,
            durable_label(r.durable),
            read.readers,
            read.msgs_per_sec,
            e2e.p50,
            e2e.p99,
            e2e.p999,
            e2e.max,
            ack.p50,
            ack.p99,
            ack.p999,
            read.expected.unwrap_or(0).saturating_sub(read.unread) + read.extra_received,
            read.expected.unwrap_or(0),
            read.duplicates,
            read.extra_received,
            read.errors,
            read.gave_up,
        );
    }
}
