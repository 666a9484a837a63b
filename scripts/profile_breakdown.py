#!/usr/bin/env python3
"""Breaks folded perf stacks (inferno-collapse-perf output) of a Strata node
down by stage of the publish path, and lists the hottest leaf functions.

Each sample is charged to the first stage, in the order below, that one of
its frames matches, so a stage's share includes what it calls. Usage:
profile_breakdown.py FOLDED
"""

import re
import sys
from collections import Counter

# (stage, pattern over the frames of one stack), first match wins.
STAGES = [
    ("metadata store (its writer thread, redb, the journal)", r"^strata-meta-wri|redb::|strata_metadata::(redb_|journal)"),
    ("WAL (writer thread: copy, write, fdatasync)", r"^strata-wal-io|strata_tiering::wal|fdatasync"),
    ("POP: receive, ack, in-flight state", r"strata_engine::pop"),
    ("message index task", r"strata_engine::lookup"),
    ("tiering (stored-message reads, uploads, merges)", r"strata_tiering::(?!wal)|strata_compactor|strata_objects"),
    ("metering and quotas", r"strata_common::usage|strata_tenancy::quota|metering"),
    ("authentication (HMAC, key cache)", r"strata_tenancy::credentials|hmac|sha1"),
    ("publish path in the engine (queues, appends)", r"strata_engine::core::publish|strata_engine::core"),
    ("request decode/encode (JSON, base64)", r"serde_json|base64|serde::"),
    # Kernel frames end in "_[k]" (inferno-collapse-perf --all); without
    # that anchor "schedule" would also match tokio's scheduler.
    ("kernel: sockets (send, receive)", r"(tcp_|sock_|__sys_sendto|__sys_recvfrom|sys_writev|sys_readv)[^;]*_\[k\]"),
    ("kernel: waiting and waking (futex, epoll, scheduler)", r"(futex_|epoll_|schedule|finish_task_switch|try_to_wake_up)[^;]*_\[k\]"),
    ("HTTP and gRPC servers (hyper, axum, tower, tonic, h2)", r"hyper::|axum::|tower::|tonic::|h2::"),
    ("tokio runtime (scheduling, timers)", r"tokio::"),
]


def leaf_kind(frame: str) -> str:
    """What a sample was doing at its innermost frame."""
    if re.search(r"malloc|_int_free|cfree|unlink_chunk|malloc_consolidate|realloc", frame):
        return "allocator (malloc, free)"
    if re.search(r"memcpy|memmove|memset", frame):
        return "memcpy, memmove"
    if frame.endswith("_[k]"):
        return "kernel"
    return "the rest (user code)"


def main(path: str) -> None:
    stages: Counter = Counter()
    leaves: Counter = Counter()
    kinds: Counter = Counter()
    total = 0
    compiled = [(name, re.compile(p)) for name, p in STAGES]
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            try:
                n = int(count)
            except ValueError:
                continue
            total += n
            frames = stack.split(";")
            leaves[frames[-1]] += n
            kinds[leaf_kind(frames[-1])] += n
            for name, pattern in compiled:
                if pattern.search(stack):
                    stages[name] += n
                    break
            else:
                stages["other"] += n
    if total == 0:
        print("no samples")
        return
    print(f"Sampled weight {total} (perf periods) over the node's threads.\n")
    print("| stage (first match, inclusive) | share |")
    print("|---|---:|")
    for name, _ in STAGES + [("other", None)]:
        print(f"| {name} | {100 * stages[name] / total:.1f}% |")
    print("\n| innermost frame is | share |")
    print("|---|---:|")
    for name, n in kinds.most_common():
        print(f"| {name} | {100 * n / total:.1f}% |")
    print("\n| hottest functions (self) | share |")
    print("|---|---:|")
    for name, n in leaves.most_common(15):
        short = re.sub(r"<[^<>]*>", "<..>", name)[:110].replace("|", "\\|")
        print(f"| `{short}` | {100 * n / total:.1f}% |")


if __name__ == "__main__":
    main(sys.argv[1])
