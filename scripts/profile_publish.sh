#!/usr/bin/env bash
# Where a Strata node's CPU goes while it takes durable publishes: one node
# on its embedded defaults (WAL and metadata on this disk), strata-loadtest
# publishing 1 KiB messages (batch 1) with C tasks over HTTP, and perf
# sampling the node's threads (DWARF call graphs) for SECONDS of it. Writes
# a flame graph (inferno) and a breakdown by stage to OUT_DIR.
#
# Usage: scripts/profile_publish.sh [OUT_DIR] [SECONDS] [C]
# Needs perf (Debian: linux-perf) and inferno (cargo install inferno).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/benchmarks/profile}"
secs="${2:-15}"
concurrency="${3:-32}"
# shellcheck source=scripts/profile_lib.sh
. scripts/profile_lib.sh
need_profilers

target="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${STRATA_BIN:-}" ] || [ -z "${LOADTEST_BIN:-}" ]; then
  log "building strata and strata-loadtest (release)"
  cargo build -q --release -p strata -p strata-loadtest
fi
bin="${STRATA_BIN:-${target}/release/strata}"
loadtest="${LOADTEST_BIN:-${target}/release/strata-loadtest}"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-profile.XXXXXX")"
node=""
cleanup() {
  [ -n "${node}" ] && kill "${node}" 2>/dev/null || true
  rm -rf "${work}"
}
trap cleanup EXIT

"${bin}" serve --data-dir "${work}/data" --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 \
  >"${work}/node.log" 2>&1 &
node=$!
for _ in $(seq 1 300); do
  grep -q "serving HTTP on" "${work}/node.log" && break
  sleep 0.1
done
url="$(sed -n 's/.*serving HTTP on \(http:[^ ]*\).*/\1/p' "${work}/node.log" | head -n 1)"
[ -n "${url}" ] || { cat "${work}/node.log" >&2; exit 1; }
creds="${work}/data/admin-credentials"
ak="$(sed -n 's/^access_key=//p' "${creds}")"
sk="$(sed -n 's/^secret_key=//p' "${creds}")"

# The load runs past both ends of the sampled window.
"${loadtest}" publish --server "${url}" --access-key "${ak}" --secret-key "${sk}" \
  --concurrency "${concurrency}" --message-size 1024 --batch 1 \
  --duration "$((secs + 6))s" --warmup 2s --quiet --json-out "${work}/publish.json" \
  >"${work}/publish.md" 2>&1 &
load=$!
sleep 4
log "sampling the node for ${secs} s under load"
perf record -q -F 299 --call-graph dwarf,16384 -p "${node}" -o "${work}/perf.data" \
  -- sleep "${secs}" 2>"${work}/perf.log"
wait "${load}"
render_profile "${work}/perf.data" "${out}" publish-http \
  "strata serve, HTTP publish, 1 KiB, batch 1, ${concurrency} tasks (${secs} s of perf samples)"
rate="$(sed -n 's/.*"msgs_per_sec": *\([0-9.]*\).*/\1/p' "${work}/publish.json" | head -n 1)"
log "throughput while sampled: ${rate} msgs/s; ${out}/publish-http.svg, ${out}/publish-http-breakdown.md"
cat "${out}/publish-http-breakdown.md"
