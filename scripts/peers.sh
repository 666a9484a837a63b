#!/usr/bin/env bash
# Installs the benchmark peers from Debian, idempotently: `nats-server`
# (NATS JetStream) and `redis-server` (Redis Streams). The load tester
# (`strata-loadtest compare`) starts and stops them itself, on 127.0.0.1
# only, with fresh temporary data directories; apt never starts them as
# services here (policy-rc.d), and nothing else is configured.
#
# Run it directly, or source it and call `install_peers`.

_peers_log() { printf '==> %s\n' "$*" >&2; }

install_peers() {
  local missing=()
  command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    _peers_log "missing ${missing[*]} and no apt-get: install them by hand (the peer benchmarks and their smoke test need them)"
    return 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
  fi
  _peers_log "installing ${missing[*]} from Debian"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  install_peers
  nats-server --version
  redis-server --version
fi
