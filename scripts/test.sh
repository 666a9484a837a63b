#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need
# (idempotently), checks formatting, lints with warnings denied, then runs
# every test with nextest. CI (.ci/run) calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# Rust components and tools the suite uses.
installed_components="$(rustup component list --installed 2>/dev/null || true)"
for component in rustfmt clippy; do
  if ! grep -q "^${component}" <<<"${installed_components}"; then
    log "installing rustup component ${component}"
    rustup component add "${component}"
  fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest from crates.io"
  cargo install cargo-nextest --locked
fi
if ! cargo machete --version >/dev/null 2>&1; then
  log "installing cargo-machete from crates.io"
  cargo install cargo-machete --locked
fi
# Benchmark peers (nats-server, redis-server from Debian) for the load
# tester's cross-system smoke test, which then must not skip them.
# shellcheck source=scripts/peers.sh
source scripts/peers.sh
install_peers
export STRATA_TEST_REQUIRE_PEERS=1
if ! command -v terraform >/dev/null 2>&1; then
  log "terraform is not on PATH (no registry here provides it): the terraform fmt check will be skipped with a message; the HCL lint still runs"
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo machete (no unused dependencies)"
cargo machete

# Committed reports and docs name binaries and temporary directories as
# <strata-bin> and <tmp>, never by a path of the machine that wrote them.
log "no machine paths in committed docs"
if grep -rnE "(/root|/home/[A-Za-z0-9_.-]+|/work)/" README.md docs; then
  log "docs hold paths of a machine (above): write <strata-bin> or <tmp>"
  exit 1
fi

# The TiKV metadata backend is opt-in (its client brings a second gRPC
# stack): lint it, and run its suite, which needs STRATA_TEST_TIKV_PD (no
# TiKV is installable here, so it skips saying so; the unreachable-PD test
# always runs).
log "TiKV backend (feature tikv): clippy and its suite"
cargo clippy -p strata-metadata -p strata-frontend --features tikv --all-targets --locked -- -D warnings
cargo test -p strata-metadata --features tikv --test tikv --locked -- --nocapture

# Real services the tests run against (an S3-compatible object store and a
# 3-member etcd cluster), on 127.0.0.1 only; stopped again when this script
# exits. The etcd tests must not skip here.
# shellcheck source=scripts/services.sh
source scripts/services.sh
trap stop_services EXIT
start_services
export STRATA_TEST_REQUIRE_ETCD=1

log "cargo nextest run (whole workspace)"
cargo nextest run --workspace --all-targets --locked --no-fail-fast "$@"

# The official RocketMQ 5 Rust SDK, unchanged, against the strata binary.
# It lives in a workspace of its own (compat/) so its older tonic/prost
# stay out of Strata's dependency graph.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
log "official RocketMQ 5 Rust SDK against Strata (compat/rocketmq-rust)"
cargo build --locked -p strata
cargo fmt --manifest-path compat/rocketmq-rust/Cargo.toml -- --check
STRATA_BIN="${target_dir}/debug/strata" CARGO_TARGET_DIR="${target_dir}/compat" \
  cargo test --locked --manifest-path compat/rocketmq-rust/Cargo.toml -- --test-threads 1

# The official RocketMQ 5 Node.js SDK (npm rocketmq-client-nodejs), unchanged.
if ! command -v npm >/dev/null 2>&1; then
  log "installing Node.js and npm from Debian"
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
log "official RocketMQ 5 Node.js SDK against Strata (compat/node)"
(cd compat/node && npm ci --no-audit --no-fund --loglevel=error \
  && STRATA_BIN="${target_dir}/debug/strata" npm test)

# The official RocketMQ 5 Python SDK (PyPI rocketmq-python-client, pinned in
# compat/python/requirements.txt), unchanged, in a virtualenv kept beside
# the build directory so repeated runs do not download it again.
log "official RocketMQ 5 Python SDK against Strata (compat/python)"
venv="${HOME}/.cache/strata-compat-python"
if [ ! -x "${venv}/bin/pip" ]; then
  # --clear: a venv left without pip by a failed attempt is made again.
  if ! python3 -m venv --clear "${venv}" >/dev/null 2>&1; then
    log "installing python3-venv from Debian"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv --clear "${venv}"
  fi
fi
"${venv}/bin/pip" install --quiet --disable-pip-version-check -r compat/python/requirements.txt
STRATA_BIN="${target_dir}/debug/strata" "${venv}/bin/python" -m unittest discover -s compat/python -v
