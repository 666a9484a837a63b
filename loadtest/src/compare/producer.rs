//! A producer task of a phase: sends batches on its schedule (or as fast
//! as acknowledgements allow) and records what happened.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::phase::{Clock, Group, lock, stamp};
use crate::stats::{self, TaskStats};

/// Pause after a transport failure in max-rate mode.
const TRANSPORT_BACKOFF: Duration = Duration::from_millis(10);

/// The bodies of one request: each stamped with `intended` and its own id,
/// the rest cut from the random pool at a moving offset.
fn bodies(clock: &Clock, intended: Instant, cursor: &mut usize) -> Vec<Bytes> {
    let size = clock.message_size as usize;
    let ts = stamp(intended);
    (0..clock.batch)
        .map(|_| {
            let at = *cursor % (clock.pool.len() - size);
            *cursor = cursor.wrapping_add(size + 7);
            let mut b = Vec::with_capacity(size);
            b.extend_from_slice(&ts);
            b.extend_from_slice(&clock.next_id.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            b.extend_from_slice(&clock.pool[at + 16..at + size]);
            Bytes::from(b)
        })
        .collect()
}

/// One producer: bounded by the phase end and the group's message budget.
pub(crate) async fn producer(
    clock: Arc<Clock>,
    group: Arc<Group>,
    index: u32,
    stats: Arc<Mutex<TaskStats>>,
) {
    let batch = u64::from(clock.batch);
    let payload = batch * u64::from(clock.message_size);
    let phase = group.pacing.map_or(Duration::ZERO, |p| {
        p.mul_f64(f64::from(index) / f64::from(group.producers))
    });
    let mut cursor = index as usize * 7919;
    let topic = index as usize % group.topics.len();
    let mut client = match group
        .endpoint
        .producer(&group.topics[topic], clock.timeout)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            lock(&stats).record_error(false, &format!("setup: {e:#}"));
            return;
        }
    };
    let schedule = stats::Schedule {
        window: stats::Window {
            start: clock.start,
            warm_end: clock.warm_end,
            end: clock.end,
        },
        pacing: group.pacing,
        phase,
        batch,
        claimed: &group.claimed,
        max_messages: group.max_messages,
    };
    let mut sent: u64 = 0;
    while let Some(intended) = schedule.next(sent, &stats).await {
        let queue = (group.next_queue[topic].fetch_add(1, Ordering::Relaxed)
            % u64::from(clock.queues)) as u32;
        let body = bodies(&clock, intended, &mut cursor);
        let result = client.publish(queue, &body).await;
        let done = Instant::now();
        let measured = intended >= clock.warm_end;
        let transport_failure = {
            let mut s = lock(&stats);
            if measured {
                s.completed_at(done.into_std());
            }
            match &result {
                Ok(()) => {
                    let counted = topic * clock.queues as usize + queue as usize;
                    group.acked[counted].fetch_add(batch, Ordering::Relaxed);
                    s.record_success(measured, done - intended, batch, payload);
                    false
                }
                Err(e) => {
                    s.record_error(measured, &e.kind());
                    e.is_transport()
                }
            }
        };
        sent += 1;
        if transport_failure && group.pacing.is_none() {
            tokio::time::sleep(TRANSPORT_BACKOFF).await;
        }
    }
}
