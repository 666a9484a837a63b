#!/usr/bin/env bash
# Failover time after SIGKILL under load, over N runs (default 20) against a
# local 3-member etcd; prints each time and the p50/p99.
#   standby (default): a standby adopts the killed serving node
#     (tests/failover.rs), timed until the standby serves.
#   cluster: node-c of three cluster-mode nodes is killed (tests/cluster.rs),
#     timed until all its tenants are placed on the survivors.
# Usage: scripts/failover_times.sh [N] [standby|cluster]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
mode="${2:-standby}"
case "${mode}" in
  standby)
    test_args=(--test failover a_standby_adopts_a_killed_node_and_serves_everything_it_acknowledged)
    pattern='served [0-9.]* s after the kill' ;;
  cluster)
    test_args=(--test cluster tenants_spread_move_on_a_kill_and_rebalance_on_a_join)
    pattern='served again [0-9.]* s after SIGKILL' ;;
  *) echo "usage: $0 [N] [standby|cluster]" >&2; exit 2 ;;
esac
# shellcheck source=scripts/services.sh
source scripts/services.sh
STRATA_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/strata-services.XXXXXX")"
trap stop_services EXIT
start_etcd
export STRATA_TEST_REQUIRE_ETCD=1
times=()
for i in $(seq "${runs}"); do
  out="$(cargo nextest run -p strata --no-capture "${test_args[@]}" 2>&1 || true)"
  line="$(grep -o "${pattern}" <<<"${out}" || true)"
  if [ -z "${line}" ] || grep -q '^ *FAIL \[' <<<"${out}"; then
    grep -v '^\[' <<<"${out}" | tail -n 40 >&2
    echo "run ${i}: the test failed" >&2
    exit 1
  fi
  t="$(grep -o '[0-9][0-9.]*' <<<"${line}")"
  echo "run ${i}: ${t} s"
  times+=("${t}")
done
printf '%s\n' "${times[@]}" | sort -n | awk '
  { v[NR] = $1 }
  END {
    p50 = v[int((NR + 1) / 2)]; i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
    printf "'"${mode}"' failover after SIGKILL (2 s lease, under load): n=%d p50=%.2f s p99=%.2f s max=%.2f s\n", NR, p50, v[i99], v[NR]
  }'
