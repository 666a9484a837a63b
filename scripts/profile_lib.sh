# Shared by the profile_*.sh scripts (sourced, not run): logging, the
# profilers they need, and turning perf samples into a flame graph and a
# breakdown by stage.

log() { printf '==> %s\n' "$*" >&2; }

# perf must be installed; inferno is installed with cargo if missing.
need_profilers() {
  command -v perf >/dev/null || { log "needs perf (apt-get install linux-perf)"; exit 1; }
  command -v inferno-flamegraph >/dev/null ||
    { log "installing inferno (flame graphs)"; cargo install --locked inferno; }
}

# render_profile PERF_DATA OUT_DIR NAME TITLE: writes OUT_DIR/NAME.svg and
# OUT_DIR/NAME-breakdown.md; KEEP_FOLDED=1 also keeps OUT_DIR/NAME.folded.
render_profile() {
  local data="$1" out="$2" name="$3" title="$4"
  local folded="${data}.folded"
  mkdir -p "${out}"
  perf script -i "${data}" 2>/dev/null | inferno-collapse-perf --all >"${folded}"
  inferno-flamegraph --minwidth 0.3 --title "${title}" <"${folded}" >"${out}/${name}.svg"
  python3 scripts/profile_breakdown.py "${folded}" >"${out}/${name}-breakdown.md"
  [ -z "${KEEP_FOLDED:-}" ] || cp "${folded}" "${out}/${name}.folded"
}
