#!/usr/bin/env bash
# Failover time of a standby after SIGKILL of the serving node, under load:
# runs the failover test N times (default 20) against a local 3-member etcd
# and prints each time and the p50/p99. Usage: scripts/failover_times.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
# shellcheck source=scripts/services.sh
source scripts/services.sh
STRATA_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/strata-services.XXXXXX")"
trap stop_services EXIT
start_etcd
export STRATA_TEST_REQUIRE_ETCD=1
times=()
for i in $(seq "${runs}"); do
  line="$(cargo nextest run --test failover --no-capture \
    a_standby_adopts_a_killed_node_and_serves_everything_it_acknowledged 2>&1 |
    grep -o 'served [0-9.]* s after the kill' || true)"
  [ -n "${line}" ] || { echo "run ${i}: the test failed" >&2; exit 1; }
  t="$(awk '{print $2}' <<<"${line}")"
  echo "run ${i}: ${t} s"
  times+=("${t}")
done
printf '%s\n' "${times[@]}" | sort -n | awk '
  { v[NR] = $1 }
  END {
    p50 = v[int((NR + 1) / 2)]; i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
    printf "failover after SIGKILL (2 s lease, under load): n=%d p50=%.2f s p99=%.2f s max=%.2f s\n", NR, p50, v[i99], v[NR]
  }'
