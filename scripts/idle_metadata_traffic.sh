#!/usr/bin/env bash
# Metadata traffic of one idle node on a 3-member etcd (lease renewal and
# heartbeat cost): etcd writes and reads per second on member 0 over a
# window, after the node started with default settings.
#   scripts/idle_metadata_traffic.sh [SECONDS]   (default 60)
# Uses the test suite's etcd ports: not while the suite runs.
set -uo pipefail
cd "$(dirname "$0")/.."
window="${1:-60}"
# shellcheck source=scripts/services.sh
source scripts/services.sh
STRATA_SERVICES_DIR="$(mktemp -d)"
node=""
trap '[ -n "${node}" ] && kill "${node}" 2>/dev/null; stop_services' EXIT
start_etcd >/dev/null 2>&1
cargo build -q --bin strata
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/strata"
dir="$(mktemp -d)"
STRATA_METADATA_URL="etcd://${STRATA_TEST_ETCD_ENDPOINTS}/idle-traffic-$$" STRATA_DATA_DIR="${dir}" \
  STRATA_HTTP_ADDR=127.0.0.1:0 STRATA_GRPC_ADDR=127.0.0.1:0 "${bin}" serve >"${dir}.log" 2>&1 &
node=$!
sleep 10
metric() { curl -s http://127.0.0.1:12379/metrics | awk -v k="$1" '$1==k {print $2}'; }
p0="$(metric etcd_mvcc_put_total)"; r0="$(metric etcd_mvcc_range_total)"
sleep "${window}"
p1="$(metric etcd_mvcc_put_total)"; r1="$(metric etcd_mvcc_range_total)"
python3 -c "w=${window}; print(f'idle node, {w} s: etcd writes/s {(${p1}-${p0})/w:.2f}, reads/s {(${r1}-${r0})/w:.2f}')"
