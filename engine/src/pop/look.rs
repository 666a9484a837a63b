//! What one queue's POP state offers a group now: pure functions over the
//! state, so a receive can decide which queues to take from, and when
//! something in flight falls due, without touching storage.

use std::collections::HashSet;

use strata_metadata::{GroupRecord, InflightRecord, PopQueueState};

use super::MAX_INFLIGHT_PER_QUEUE;

/// What a look at one queue's POP state found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Look {
    /// Something may be deliverable now (a hint: filters and FIFO groups
    /// can still leave the queue's share empty).
    pub deliverable: bool,
    /// Redeliveries that may go now: expired deliveries past their backoff,
    /// whose FIFO group (if any) has nothing else in flight.
    pub redeliveries: usize,
    /// The earliest future moment an in-flight message becomes due.
    pub next_due_ms: Option<i64>,
    /// About how many messages it could give now: new ones past the cursor
    /// and due in-flight ones (a hint, like `deliverable`).
    pub available: usize,
}

/// When an in-flight record may go out again: a waiting FIFO record (attempt
/// 0) at once; a delivery whose invisible time the consumer chose when that
/// time ends; an expired delivery after the group's retry backoff.
pub(crate) fn due_ms(rec: &InflightRecord, group: &GroupRecord) -> i64 {
    match rec.attempt {
        _ if rec.chosen => rec.visible_ms,
        0 => rec.visible_ms,
        n => rec
            .visible_ms
            .saturating_add(i64::try_from(group.retry.backoff_ms(n)).unwrap_or(i64::MAX)),
    }
}

/// FIFO message groups with a delivery still in flight (not yet due).
pub(crate) fn blocked_groups(
    state: &PopQueueState,
    first: u64,
    group: &GroupRecord,
    now: i64,
) -> HashSet<String> {
    state
        .inflight
        .range(first..)
        .map(|(_, rec)| rec)
        .filter(|rec| rec.attempt > 0 && due_ms(rec, group) > now)
        .filter_map(|rec| rec.message_group.clone())
        .collect()
}

/// What one queue's POP state offers the group at `now` (see [`Look`]).
pub(crate) fn look_at(
    state: &PopQueueState,
    first: u64,
    hw: u64,
    fifo: bool,
    group: &GroupRecord,
    now: i64,
) -> Look {
    let blocked = if fifo {
        blocked_groups(state, first, group, now)
    } else {
        HashSet::new()
    };
    // One walk over the in-flight records: what may go now, and when the
    // next one falls due.
    let mut due_now = false;
    let mut due_free = 0usize;
    let mut redeliveries = 0;
    let mut next_due_ms: Option<i64> = None;
    for rec in state.inflight.range(first..).map(|(_, rec)| rec) {
        let due = due_ms(rec, group);
        if due > now {
            if rec.attempt > 0 {
                next_due_ms = Some(next_due_ms.map_or(due, |at| at.min(due)));
            }
            continue;
        }
        let free = !rec
            .message_group
            .as_ref()
            .is_some_and(|g| blocked.contains(g));
        if free {
            due_now = true;
            due_free += 1;
            redeliveries += usize::from(rec.attempt > 0);
        }
    }
    let new_ones = if state.inflight.len() < MAX_INFLIGHT_PER_QUEUE {
        hw.saturating_sub(state.cursor.max(first))
    } else {
        0
    };
    let fresh = new_ones > 0;
    // Records of messages retention removed: a pass clears them (and so
    // frees room under the in-flight cap).
    let stale = state.inflight.range(..first).next().is_some();
    let new_ones = usize::try_from(new_ones).unwrap_or(usize::MAX);
    Look {
        deliverable: due_now || fresh || stale,
        redeliveries,
        next_due_ms,
        // A queue with only stale records still needs a visit to clear them.
        available: due_free.saturating_add(new_ones).max(usize::from(stale)),
    }
}

/// How many of the candidate queues (in the order given, with what each
/// may give) a pass takes from for `remaining` messages: enough that,
/// counting at most `min_share` from each, they cover the batch; at least
/// one. Each queue taken from costs a POP commit, so deep queues are asked
/// for `min_share` or more each, while shallow ones are all visited at once.
pub(crate) fn queues_to_take(available: &[usize], remaining: usize, min_share: usize) -> usize {
    let mut covered = 0usize;
    for (k, &a) in available.iter().enumerate() {
        covered = covered.saturating_add(a.min(min_share));
        if covered >= remaining {
            return k + 1;
        }
    }
    available.len().max(1)
}

/// How much of `remaining` each of the chosen queues is asked for:
/// redeliveries first (each queue's due ones, as far as the batch holds
/// them, spread evenly when it cannot hold them all), the rest evenly.
pub(crate) fn shares(redeliveries: &[usize], remaining: usize) -> Vec<usize> {
    let k = redeliveries.len();
    let mut share = vec![0; k];
    if k == 0 {
        return share;
    }
    let due: usize = redeliveries.iter().sum();
    let mut left = remaining;
    if due >= remaining {
        // One at a time round the queues that still have redeliveries.
        while left > 0 {
            for (s, &r) in share.iter_mut().zip(redeliveries) {
                if left > 0 && *s < r {
                    *s += 1;
                    left -= 1;
                }
            }
        }
        return share;
    }
    share.copy_from_slice(redeliveries);
    left -= due;
    for (j, s) in share.iter_mut().enumerate() {
        *s += left / k + usize::from(j < left % k);
    }
    share
}

pub(crate) fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use strata_metadata::RetryPolicy;

    use super::*;

    fn group() -> GroupRecord {
        GroupRecord {
            tenant: "t".into(),
            name: "g".into(),
            created_ms: 0,
            incarnation: 1,
            retry: RetryPolicy::DEFAULT,
            start: strata_metadata::StartPosition::Earliest,
            fifo: true,
        }
    }

    fn rec(attempt: u32, visible_ms: i64, message_group: Option<&str>) -> InflightRecord {
        InflightRecord {
            attempt,
            visible_ms,
            seq: 1,
            message_group: message_group.map(str::to_string),
            chosen: false,
        }
    }

    #[test]
    fn a_queue_is_deliverable_with_new_or_due_messages_only() {
        let g = group();
        let mut s = PopQueueState::default();
        assert!(!look_at(&s, 0, 0, false, &g, 100).deliverable, "empty");
        assert!(look_at(&s, 0, 3, false, &g, 100).deliverable, "new ones");
        s.cursor = 3;
        s.inflight.insert(2, rec(1, 500, None));
        let look = look_at(&s, 0, 3, false, &g, 100);
        assert_eq!(
            look,
            Look {
                deliverable: false,
                redeliveries: 0,
                next_due_ms: Some(500),
                available: 0,
            }
        );
        assert_eq!(
            look_at(&s, 0, 5, false, &g, 500).available,
            3,
            "2 new, 1 due"
        );
        assert_eq!(look_at(&s, 0, 3, false, &g, 500).redeliveries, 1);
        assert!(look_at(&s, 0, 3, false, &g, 500).deliverable, "due again");
        // Retention moved the first offset past the in-flight one: a pass
        // must clear its record (it counts against the in-flight cap).
        assert!(look_at(&s, 3, 3, false, &g, 100).deliverable);
        s.inflight.clear();
        assert!(!look_at(&s, 3, 3, false, &g, 100).deliverable);
    }

    #[test]
    fn a_waiting_fifo_message_is_deliverable_only_once_its_group_is_free() {
        let g = group();
        let mut s = PopQueueState {
            cursor: 2,
            ..Default::default()
        };
        s.inflight.insert(0, rec(1, 500, Some("a")));
        s.inflight.insert(1, rec(0, 0, Some("a")));
        assert!(!look_at(&s, 0, 2, true, &g, 100).deliverable, "a is busy");
        s.inflight.remove(&0);
        assert!(look_at(&s, 0, 2, true, &g, 100).deliverable, "acked");
    }

    #[test]
    fn redeliveries_get_their_share_first() {
        // No redeliveries: even, the first ones get the odd ones out.
        assert_eq!(shares(&[0, 0, 0], 8), [3, 3, 2]);
        // Some: each queue's due ones, then the rest evenly.
        assert_eq!(shares(&[5, 0, 0, 0], 8), [6, 1, 1, 0]);
        // More than the batch holds: spread over the queues that have them.
        assert_eq!(shares(&[10, 0, 1], 4), [3, 0, 1]);
        assert_eq!(shares(&[3, 3], 4), [2, 2]);
        assert_eq!(shares(&[], 4), Vec::<usize>::new());
        for (r, n) in [
            (&[2usize, 7, 0][..], 5),
            (&[1, 1, 1][..], 32),
            (&[9, 9][..], 3),
        ] {
            assert_eq!(shares(r, n).iter().sum::<usize>(), n, "{r:?} {n}");
        }
    }

    #[test]
    fn deep_queues_are_taken_a_few_at_a_time_and_shallow_ones_together() {
        // 16 deep queues, a batch of 32: 4 of them, 8 or more each.
        assert_eq!(queues_to_take(&[1000; 16], 32, 8), 4);
        // 16 queues of 2: all of them, in one round.
        assert_eq!(queues_to_take(&[2; 16], 32, 8), 16);
        // Mixed: counted in order until the batch is covered.
        assert_eq!(queues_to_take(&[1, 100, 1, 100, 100], 10, 8), 3);
        // Not enough anywhere: every queue; none: still one.
        assert_eq!(queues_to_take(&[3, 3], 32, 8), 2);
        assert_eq!(queues_to_take(&[], 32, 8), 1);
        assert_eq!(queues_to_take(&[0, 0, 5], 4, 8), 3);
    }

    #[test]
    fn earliest_of_two() {
        assert_eq!(earliest(None, None), None);
        assert_eq!(earliest(Some(3), None), Some(3));
        assert_eq!(earliest(Some(3), Some(2)), Some(2));
    }
}
