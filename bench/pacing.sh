#!/usr/bin/env bash
# bench/pacing.sh: how close `cascade sync` runs to a vendor limit it learns only from the
# vendor's RateLimit headers and 429s (see bench/README.md, "Pacing"). cascade-sim allows
# VENDOR_RATE requests/s (--quota N/1s, fixed then sliding window); the pipeline's own
# rate_limit is 50/s with a burst of 50. Each run starts a fresh simulator and database, and
# reports wall time / quota-bound time (requests / VENDOR_RATE) and the share of 429s, from the
# summary JSON. Prints the median of RUNS runs per window kind.
#
# Env: RUNS (3), VENDOR_RATE (20), EMPLOYEES_PER_BRANCH (80), SALES_PER_SALESPERSON (5), SEED (1),
#      BUILD_DIR (build), CASCADE_BIN / SIM_BIN (override the binaries, e.g. to measure another
#      build's cascade against this simulator), WINDOWS ("fixed sliding"), STEP_TIMEOUT (120 s).
# Everything listens on 127.0.0.1 only; child processes are stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
VENDOR_RATE=${VENDOR_RATE:-20}
EMPLOYEES_PER_BRANCH=${EMPLOYEES_PER_BRANCH:-80}
SALES_PER_SALESPERSON=${SALES_PER_SALESPERSON:-5}
SEED=${SEED:-1}
WINDOWS=${WINDOWS:-fixed sliding}
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
BUILD=${BUILD_DIR:-$ROOT/build}
CASCADE=${CASCADE_BIN:-$BUILD/src/cli/cascade}
SIM=${SIM_BIN:-$BUILD/sim/cascade-sim}

die() {
  echo "pacing: $*" >&2
  exit 1
}
for v in RUNS VENDOR_RATE EMPLOYEES_PER_BRANCH SALES_PER_SALESPERSON SEED STEP_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
done
for b in "$CASCADE" "$SIM"; do [[ -x $b ]] || die "missing $b (build first, or set BUILD_DIR)"; done
command -v python3 >/dev/null || die "python3 is needed to read the summary JSON"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cascade-pacing.XXXXXX")
SIM_PID="" CHILD=""
cleanup() {
  local rc=$?
  # shellcheck disable=SC2086 # empty ids vanish
  stop_pids $CHILD $SIM_PID
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_sim WINDOW: a fresh simulator (fresh vendor window) on a free port; sets URL.
start_sim() {
  local window_flag=()
  [[ $1 == fixed ]] || window_flag=(--quota-window "$1")
  "$SIM" --host 127.0.0.1 --port 0 --seed "$SEED" --employees-per-branch "$EMPLOYEES_PER_BRANCH" \
    --sales-per-salesperson "$SALES_PER_SALESPERSON" --quota "$VENDOR_RATE/1s" "${window_flag[@]}" \
    >"$WORK/sim.out" 2>"$WORK/sim.err" &
  SIM_PID=$!
  local port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's#^listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$WORK/sim.out")
    [[ -n $port ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || die "cascade-sim exited: $(cat "$WORK/sim.err")"
    sleep 0.1
  done
  [[ -n $port ]] || die "cascade-sim did not start listening"
  URL=http://127.0.0.1:$port
}

printf '%-8s %4s %9s %9s %8s %8s %10s\n' window run requests seconds bound ratio "429 share"
for window in $WINDOWS; do
  : >"$WORK/ratios"
  for run in $(seq 1 "$RUNS"); do
    start_sim "$window"
    rm -f "$WORK/run.db"*
    DM_API_URL=$URL CASCADE_STORAGE=sqlite:$WORK/run.db child timeout "$STEP_TIMEOUT" \
      "$CASCADE" sync "$ROOT/examples/dunder-mifflin.yaml" --json >"$WORK/summary.json" \
      2>"$WORK/sync.err" || die "sync failed: $(tail -n 5 "$WORK/sync.err")"
    stop_pids "$SIM_PID"
    SIM_PID=""
    python3 - "$WORK/summary.json" "$VENDOR_RATE" "$window" "$run" >>"$WORK/ratios" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["total"]
req, thr, secs = t["requests"], t["throttled"], s["seconds"]
bound = req / float(sys.argv[2])
print(f"{sys.argv[3]:<8} {sys.argv[4]:>4} {req:>9} {secs:>9.2f} {bound:>8.2f} {secs / bound:>8.3f} {100.0 * thr / req:>9.2f}%")
PY
    tail -n 1 "$WORK/ratios"
  done
  python3 - "$WORK/ratios" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
ratio = statistics.median(float(r[5]) for r in rows)
share = statistics.median(float(r[6].rstrip("%")) for r in rows)
print(f"{rows[0][0]:<8} median: {ratio:.3f}x the quota-bound time, {share:.2f}% 429s")
PY
done
