#!/usr/bin/env bash
# A local Strata cluster to try cluster mode, everything on 127.0.0.1:
# a 3-member etcd, SeaweedFS (S3) and N nodes serving one namespace.
#
#   scripts/cluster.sh up [N]   start N nodes (default 3), print how to reach them
#   scripts/cluster.sh down     stop everything and delete the cluster's data
#
# Node i (1..N) serves HTTP on 127.0.0.1:$((28080 + i)) and RocketMQ gRPC on
# 127.0.0.1:$((28180 + i)); data lives under ${STRATA_CLUSTER_DIR:-./strata-cluster}.
# etcd and SeaweedFS take the ports the test suite uses (scripts/services.sh),
# so run one or the other. STRATA_BIN picks the binary (default: a debug
# build made here).
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${STRATA_CLUSTER_DIR:-$PWD/strata-cluster}"
log() { printf '==> %s\n' "$*" >&2; }

down() {
  local file
  for file in "${dir}"/*.pid "${dir}"/services/*.pid; do
    [ -f "${file}" ] || continue
    kill "$(cat "${file}")" 2>/dev/null || true
  done
  sleep 1
  for file in "${dir}"/*.pid "${dir}"/services/*.pid; do
    [ -f "${file}" ] || continue
    kill -9 "$(cat "${file}")" 2>/dev/null || true
  done
  rm -rf "${dir}"
  log "cluster stopped; ${dir} removed"
}

up() {
  local nodes="${1:-3}"
  if ! [[ "${nodes}" =~ ^[1-9][0-9]?$ ]]; then
    log "N must be a number of nodes from 1 to 99, got ${nodes}"
    exit 2
  fi
  if [ -d "${dir}" ]; then
    log "${dir} exists: run 'scripts/cluster.sh down' first"
    exit 1
  fi
  local bin="${STRATA_BIN:-}"
  if [ -z "${bin}" ]; then
    log "building strata (debug)"
    cargo build -q --bin strata
    bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/strata"
  fi
  mkdir -p "${dir}/services"
  # shellcheck source=scripts/services.sh
  source scripts/services.sh
  STRATA_SERVICES_DIR="${dir}/services"
  start_seaweedfs
  echo "${STRATA_SERVICE_PIDS[-1]}" >"${dir}/services/seaweedfs.pid"
  start_etcd
  local i env
  for i in $(seq 1 "${nodes}"); do
    mkdir -p "${dir}/node-${i}"
    if [ "${i}" -gt 1 ]; then
      # The namespace's bootstrap admin key, so every node's CLI works.
      cp "${dir}/node-1/admin-credentials" "${dir}/node-${i}/admin-credentials"
    fi
    env=(
      STRATA_NODE_ID="node-${i}"
      STRATA_DATA_DIR="${dir}/node-${i}"
      STRATA_HTTP_ADDR="127.0.0.1:$((28080 + i))"
      STRATA_GRPC_ADDR="127.0.0.1:$((28180 + i))"
      STRATA_METADATA_URL="etcd://${STRATA_TEST_ETCD_ENDPOINTS}/cluster"
      STRATA_SERVING_CLUSTER=true
      STRATA_SERVING_LEASE_TTL_MS=5000
      STRATA_AUTH_MASTER_KEY_FILE="${dir}/master.key"
      STRATA_OBJECT_STORE_KIND=s3
      STRATA_OBJECT_STORE_BUCKET="${STRATA_TEST_S3_BUCKET}"
      STRATA_OBJECT_STORE_ENDPOINT="${STRATA_TEST_S3_ENDPOINT}"
      STRATA_OBJECT_STORE_REGION="${STRATA_TEST_S3_REGION}"
      STRATA_OBJECT_STORE_ALLOW_HTTP=true
      AWS_ACCESS_KEY_ID="${STRATA_TEST_S3_ACCESS_KEY}"
      AWS_SECRET_ACCESS_KEY="${STRATA_TEST_S3_SECRET_KEY}"
    )
    env "${env[@]}" "${bin}" serve >"${dir}/node-${i}.log" 2>&1 &
    echo "$!" >"${dir}/node-${i}.pid"
    local tries=0
    until grep -q "Strata is serving" "${dir}/node-${i}.log" 2>/dev/null; do
      tries=$((tries + 1))
      if [ "${tries}" -gt 300 ] || ! kill -0 "$(cat "${dir}/node-${i}.pid")" 2>/dev/null; then
        log "node-${i} did not start; its log:"
        tail -n 20 "${dir}/node-${i}.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    log "node-${i}: HTTP http://127.0.0.1:$((28080 + i)), gRPC 127.0.0.1:$((28180 + i))"
  done
  cat >&2 <<TXT
==> ${nodes} nodes up. Try:
  export STRATA_CREDENTIALS_FILE=${dir}/node-1/admin-credentials
  ${bin} --server http://127.0.0.1:28081 cluster status
  ${bin} --server http://127.0.0.1:28081 topic create orders --queues 4
  echo hello | ${bin} --server http://127.0.0.1:$((28080 + nodes)) produce orders
  kill -9 \$(cat ${dir}/node-1.pid)   # its tenants move within about 6 s
  scripts/cluster.sh down
TXT
}

case "${1:-}" in
  up) up "${2:-3}" ;;
  down) down ;;
  *)
    log "usage: scripts/cluster.sh up [N] | down"
    exit 2
    ;;
esac
