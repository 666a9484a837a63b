#!/usr/bin/env bash
# Where a Strata node's CPU goes while the official RocketMQ Rust SDK drains
# a topic (SimpleConsumer: receive up to 32, then one AckMessage per
# message): the SDK bench (compat/rocketmq-rust, `bench` example) publishes
# for 10 s, then 16 consumers drain; perf samples the node for SECONDS of
# the drain. Writes a flame graph (inferno) and a breakdown by stage to
# OUT_DIR. ACKS is how many acknowledgements each consumer has in flight (1:
# one after another, as the SDK's own examples do; 32: a received batch at
# once).
#
# Usage: scripts/profile_receive_ack.sh [OUT_DIR] [SECONDS] [ACKS]
# Needs perf (Debian: linux-perf) and inferno (cargo install inferno).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/benchmarks/profile}"
secs="${2:-6}"
acks="${3:-1}"
# shellcheck source=scripts/profile_lib.sh
. scripts/profile_lib.sh
need_profilers

target="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${STRATA_BIN:-}" ]; then
  log "building strata (release)"
  cargo build -q --release -p strata
fi
bin="${STRATA_BIN:-${target}/release/strata}"
log "building the SDK bench (release)"
cargo build -q --release --manifest-path compat/rocketmq-rust/Cargo.toml --example bench
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-profile.XXXXXX")"
bench=""
cleanup() {
  [ -n "${bench}" ] && kill "${bench}" 2>/dev/null || true
  rm -rf "${work}"
}
trap cleanup EXIT

STRATA_BIN="${bin}" cargo run -q --release --manifest-path compat/rocketmq-rust/Cargo.toml \
  --example bench -- 32 10 16 1024 16 "${acks}" >"${work}/bench.log" 2>&1 &
bench=$!
node=""
for _ in $(seq 1 300); do
  node="$(pgrep -n -f "^${bin} serve" || true)"
  [ -n "${node}" ] && break
  sleep 0.1
done
[ -n "${node}" ] || { log "the bench did not start a node"; exit 1; }
# 10 s of publishing, then the consumers start.
sleep 13
log "sampling the node for ${secs} s of the drain"
perf record -q -F 299 --call-graph dwarf,16384 -p "${node}" -o "${work}/perf.data" \
  -- sleep "${secs}" 2>"${work}/perf.log"
wait "${bench}"
bench=""
render_profile "${work}/perf.data" "${out}" receive-ack-sdk \
  "strata serve, official Rust SDK draining 16 queues: receive 32, ack each, ${acks} in flight (${secs} s of perf samples)"
grep '^|' "${work}/bench.log" >"${out}/receive-ack-sdk-bench.md" || true
log "${out}/receive-ack-sdk.svg, ${out}/receive-ack-sdk-breakdown.md"
cat "${out}/receive-ack-sdk-bench.md" "${out}/receive-ack-sdk-breakdown.md"
