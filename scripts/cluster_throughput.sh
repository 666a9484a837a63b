#!/usr/bin/env bash
# Publish throughput of a local cluster with 1, 2 and 3 nodes (cluster mode,
# 3-member etcd, SeaweedFS; scripts/cluster.sh), all on this machine. For
# each size: T tenants (default 6), each with its own key and a 4-queue
# topic, publish 1 KiB messages (batch 1) at max rate for DURATION with C
# tasks each (default 8), one strata-loadtest per tenant, all at once.
# Each load tester sends to the node that serves its tenant (found from the
# x-strata-served-by answer header), or with ROUTE=any to node i mod N (a
# load balancer that knows nothing; most requests are then forwarded).
#
# Usage: scripts/cluster_throughput.sh [TENANTS] [C] [DURATION]
#   NODES="1 2 3" (sizes to run), ROUTE=owner|any
# Release binaries are built here unless STRATA_BIN / LOADTEST_BIN are set.
# Uses the test suite's etcd and SeaweedFS ports: not while tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
tenants="${1:-6}"
concurrency="${2:-8}"
duration="${3:-10s}"
sizes="${NODES:-1 2 3}"
route="${ROUTE:-owner}"
log() { printf '==> %s\n' "$*" >&2; }
command -v jq >/dev/null || { log "needs jq (apt-get install jq)"; exit 1; }

target="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${STRATA_BIN:-}" ] || [ -z "${LOADTEST_BIN:-}" ]; then
  log "building strata and strata-loadtest (release)"
  cargo build -q --release -p strata -p strata-loadtest
fi
bin="${STRATA_BIN:-${target}/release/strata}"
loadtest="${LOADTEST_BIN:-${target}/release/strata-loadtest}"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-cluster-throughput.XXXXXX")"
export STRATA_CLUSTER_DIR="${work}/cluster"
cleanup() {
  STRATA_BIN="${bin}" scripts/cluster.sh down >/dev/null 2>&1 || true
  rm -rf "${work}"
}
trap cleanup EXIT

# CPU time (clock ticks) used so far: "busy" for the machine, then the
# strata nodes, etcd and SeaweedFS (long-lived, so read before and after).
cpu_ticks() {
  local busy groups pid comm t
  busy="$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat)"
  declare -A groups=([strata]=0 [etcd]=0 [weed]=0)
  for pid in /proc/[0-9]*; do
    comm="$(cat "${pid}/comm" 2>/dev/null || true)"
    case "${comm}" in strata | etcd | weed) ;; *) continue ;; esac
    t="$(awk '{print $14 + $15}' "${pid}/stat" 2>/dev/null || echo 0)"
    groups[${comm}]=$((groups[${comm}] + t))
  done
  echo "${busy} ${groups[strata]} ${groups[etcd]} ${groups[weed]}"
}

# A counter of etcd member 0 (puts and ranges are replicated to all three).
etcd_metric() {
  curl -fsS http://127.0.0.1:12379/metrics | awk -v k="$1" '$1 == k {print $2}'
}

# The CLI as the cluster's bootstrap admin, through node-1.
admin() {
  STRATA_CREDENTIALS_FILE="${creds}" "${bin}" --server http://127.0.0.1:28081 "$@"
}

results=()
for n in ${sizes}; do
  STRATA_BIN="${bin}" scripts/cluster.sh up "${n}" 2>"${work}/up.log" ||
    { cat "${work}/up.log" >&2; exit 1; }
  creds="${STRATA_CLUSTER_DIR}/node-1/admin-credentials"
  keys=()
  for i in $(seq 1 "${tenants}"); do
    admin tenant create "bench${i}" >/dev/null
    out="$(admin key create --tenant "bench${i}" --role tenant-admin)"
    ak="$(sed -n 's/^ *access_key=//p' <<<"${out}")"
    sk="$(sed -n 's/^ *secret_key=//p' <<<"${out}")"
    keys+=("${ak}:${sk}")
  done
  # Placed: every tenant (and "default") on a live node.
  for _ in $(seq 1 300); do
    placed="$(admin --json cluster status |
      jq '[.nodes[] | select(.state == "live") | .tenants] | add')"
    [ "${placed}" = "$((tenants + 1))" ] && break
    sleep 0.1
  done
  [ "${placed}" = "$((tenants + 1))" ] || { log "tenants not placed: ${placed}"; exit 1; }
  spread="$(admin --json cluster status |
    jq -r '[.nodes[] | select(.state == "live") | "\(.node)=\(.tenants)"] | join(" ")')"
  pids=()
  read -r busy0 strata0 etcd0 weed0 <<<"$(cpu_ticks)"
  puts0="$(etcd_metric etcd_mvcc_put_total)"
  ranges0="$(etcd_metric etcd_mvcc_range_total)"
  began="$(date +%s.%N)"
  for i in $(seq 1 "${tenants}"); do
    key="${keys[$((i - 1))]}"
    url="http://127.0.0.1:$((28081 + (i - 1) % n))"
    if [ "${route}" = "owner" ]; then
      node="$(curl -fsS -o /dev/null -D - -H "Authorization: Bearer ${key}" \
        "http://127.0.0.1:28081/v1/topics" | tr -d '\r' |
        sed -n 's/^x-strata-served-by: node-//Ip')"
      url="http://127.0.0.1:$((28080 + node))"
    fi
    "${loadtest}" publish --server "${url}" --access-key "${key%%:*}" \
      --secret-key "${key#*:}" --topic bench --queues 4 --concurrency "${concurrency}" \
      --message-size 1024 --batch 1 --duration "${duration}" --warmup 2s --quiet \
      --json-out "${work}/n${n}-t${i}.json" >"${work}/n${n}-t${i}.log" 2>&1 &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do
    wait "${pid}" || { log "a load tester failed:"; cat "${work}"/n"${n}"-t*.log >&2; exit 1; }
  done
  read -r busy1 strata1 etcd1 weed1 <<<"$(cpu_ticks)"
  puts1="$(etcd_metric etcd_mvcc_put_total)"
  ranges1="$(etcd_metric etcd_mvcc_range_total)"
  window="$(awk -v a="${began}" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')"
  db="$(etcd_metric etcd_mvcc_db_total_size_in_use_in_bytes)"
  etcd="$(awk -v p=$((puts1 - puts0)) -v r=$((ranges1 - ranges0)) -v w="${window}" -v db="${db}" \
    'BEGIN {printf "etcd puts/s %.0f, ranges/s %.0f, db in use %.0f MiB", p / w, r / w, db / 1048576}')"
  hz="$(getconf CLK_TCK)"
  cpu="$(awk -v b=$((busy1 - busy0)) -v s=$((strata1 - strata0)) -v e=$((etcd1 - etcd0)) \
    -v w=$((weed1 - weed0)) -v hz="${hz}" 'BEGIN {
      printf "CPU s: machine %.1f = strata %.1f + etcd %.1f + SeaweedFS %.1f + load testers/other %.1f",
        b / hz, s / hz, e / hz, w / hz, (b - s - e - w) / hz }')"
  total="$(jq -s '[.[].levels[0].msgs_per_sec] | add' "${work}"/n"${n}"-t*.json)"
  errors="$(jq -s '[.[].levels[0].errors] | add' "${work}"/n"${n}"-t*.json)"
  p99="$(jq -s '[.[].levels[0].latency_ms.p99] | max' "${work}"/n"${n}"-t*.json)"
  line="$(printf '%s node(s): %.0f msgs/s in all (%s tenants x %s tasks, route %s), errors %s, worst tenant p99 %.1f ms; tenants per node: %s; %s; %s' \
    "${n}" "${total}" "${tenants}" "${concurrency}" "${route}" "${errors}" "${p99}" "${spread}" "${cpu}" "${etcd}")"
  log "${line}"
  results+=("${line}")
  STRATA_BIN="${bin}" scripts/cluster.sh down >/dev/null 2>&1
done
printf '%s\n' "${results[@]}"
