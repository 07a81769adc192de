#!/usr/bin/env bash
# bench/soak.sh: cascade under a misbehaving vendor for SOAK_MINUTES (see bench/README.md, Soak).
# One simulator sized for >= 1M sales with mixed faults (>= 20 % of requests) and a vendor quota;
# one warehouse. Until time is up: move the company a few ticks, sync (on some iterations kill -9
# the sync at a random moment and restart it); every few iterations lift the permanent faults,
# redrive the DLQ, drain, and put them back. At the end: no faults, redrive, drain, one full
# sync, then bench/soak_compare.py must find zero difference from the simulator's truth, an ok
# integrity check, no duplicate key and empty queues. Prints the figures and writes
# bench/results/soak-<date>.json.
#
# Env: SOAK_MINUTES (10), EMPLOYEES_PER_BRANCH (80), SALES_PER_SALESPERSON (2500), SEED (1),
#      TICKS (4, simulated hours per iteration), KILL_EVERY (3: every 3rd iteration kills a sync),
#      REPAIR_EVERY (4: every 4th iteration redrives and drains), QUOTA (50/1s, the vendor's),
#      BUILD_DIR (an existing build tree; default: build/configure build-release), JOBS (2),
#      MARGIN (minutes allowed past SOAK_MINUTES for the final phase; default SOAK_MINUTES, >= 5),
#      RESULTS (bench/results/soak-<date>.json), KEEP_WORK (1 keeps the temp dir).
# Exit 0 only when the final difference is zero and every check passed. Everything listens on
# 127.0.0.1 only; the simulator and any running step are stopped when the script exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOAK_MINUTES=${SOAK_MINUTES:-10}
EMPLOYEES_PER_BRANCH=${EMPLOYEES_PER_BRANCH:-80}
SALES_PER_SALESPERSON=${SALES_PER_SALESPERSON:-2500}
SEED=${SEED:-1}
TICKS=${TICKS:-4}
KILL_EVERY=${KILL_EVERY:-3}
REPAIR_EVERY=${REPAIR_EVERY:-4}
QUOTA=${QUOTA:-50/1s}
JOBS=${JOBS:-2}
MARGIN=${MARGIN:-$((SOAK_MINUTES > 5 ? SOAK_MINUTES : 5))}
RESULTS=${RESULTS:-$ROOT/bench/results/soak-$(date -u +%Y-%m-%d).json}

# Transient faults are retried inside a run; permanent ones (broken or wrongly shaped JSON) go
# to the DLQ at once and only a redrive after the "vendor fix" brings them back. Together with
# html they are 24 % of requests, before the quota's 429s.
TRANSIENT='"5xx":0.07,"reset":0.03,"truncate":0.03,"slow":{"p":0.06,"min_ms":20,"max_ms":400},"html":0.02'
PERMANENT='"malformed":{"p":0.02,"path":"/sales"},"wrong_shape":{"p":0.01,"path":"/sales"}'
FAULTS_ALL="{$TRANSIENT,$PERMANENT,\"quota\":\"$QUOTA\"}"
FAULTS_TRANSIENT="{$TRANSIENT,\"quota\":\"$QUOTA\"}"

die() {
  echo "soak: $*" >&2
  exit 1
}
for v in SOAK_MINUTES EMPLOYEES_PER_BRANCH SALES_PER_SALESPERSON SEED TICKS JOBS MARGIN; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
for v in KILL_EVERY REPAIR_EVERY; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
RANDOM=$SEED # kill moments are reproducible for a seed (the machine's load is not)

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cascade-soak.XXXXXX")
SIM_PID="" CHILD=""
cleanup() {
  local rc=$?
  # shellcheck disable=SC2086 # empty ids vanish
  stop_pids $CHILD $SIM_PID
  if [[ ${KEEP_WORK:-0} == 1 || $rc != 0 ]]; then echo "soak: kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

START=$SECONDS
DEADLINE=$((START + SOAK_MINUTES * 60))    # no new iteration starts after this
HARD_END=$((DEADLINE + MARGIN * 60))       # nothing runs after this: the script's bound
# left: seconds until HARD_END (at least 1), the timeout of every step.
left() {
  local l=$((HARD_END - SECONDS))
  ((l > 0)) || die "out of time (SOAK_MINUTES $SOAK_MINUTES + MARGIN $MARGIN minutes)"
  echo "$l"
}


# ---- binaries
if [[ -n ${BUILD_DIR:-} ]]; then
  [[ -d $BUILD_DIR ]] || die "BUILD_DIR=$BUILD_DIR does not exist"
  BUILD=$(cd "$BUILD_DIR" && pwd)
else
  BUILD=$ROOT/build-release
  echo "soak: building Release tree in $BUILD (-j$JOBS)" >&2
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  child cmake --build "$BUILD" -j "$JOBS" --target cascade cascade-sim >"$WORK/build.log" 2>&1 ||
    {
      tail -n 30 "$WORK/build.log" >&2
      die "build failed"
    }
  # The build is not part of the soak's time.
  START=$SECONDS DEADLINE=$((SECONDS + SOAK_MINUTES * 60)) HARD_END=$((SECONDS + (SOAK_MINUTES + MARGIN) * 60))
fi
CASCADE=$BUILD/src/cli/cascade
SIM=$BUILD/sim/cascade-sim
for b in "$CASCADE" "$SIM"; do [[ -x $b ]] || die "missing $b"; done
command -v curl >/dev/null || die "curl is needed for the simulator's admin endpoints"
command -v python3 >/dev/null || die "python3 is needed for bench/soak_compare.py"

# The benchmark pipeline with retries tuned for a faulty vendor: many quick attempts rather
# than few long waits (the example's 200ms..30s would let one unlucky message stall a sync).
PIPELINE=$WORK/pipeline.yaml
sed -e 's/retry: { attempts: 4, backoff: 200ms\.\.30s }/retry: { attempts: 6, backoff: 50ms..2s }/' \
  "$ROOT/bench/pipeline.yaml" >"$PIPELINE"
grep -q 'attempts: 6, backoff: 50ms\.\.2s' "$PIPELINE" || die "bench/pipeline.yaml changed: retry line not found"
export CASCADE_STORAGE=sqlite:$WORK/soak.db

# ---- the simulator
"$SIM" --host 127.0.0.1 --port 0 --seed "$SEED" --employees-per-branch "$EMPLOYEES_PER_BRANCH" \
  --sales-per-salesperson "$SALES_PER_SALESPERSON" --faults "$FAULTS_ALL" \
  >"$WORK/sim.out" 2>"$WORK/sim.err" &
SIM_PID=$!
PORT=""
for _ in $(seq 1 600); do # up to 60 s: generating a large company takes a moment
  PORT=$(sed -n 's#^listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$WORK/sim.out")
  [[ -n $PORT ]] && break
  kill -0 "$SIM_PID" 2>/dev/null || die "cascade-sim exited: $(cat "$WORK/sim.err")"
  sleep 0.1
done
[[ -n $PORT ]] || die "cascade-sim did not start listening"
export DM_API_URL=http://127.0.0.1:$PORT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "soak: cascade-sim on $DM_API_URL (employees/branch $EMPLOYEES_PER_BRANCH," \
  "sales/salesperson $SALES_PER_SALESPERSON), $SOAK_MINUTES min, load average $LOAD_START" >&2

# admin METHOD PATH [BODY]: one admin request (never faulted); retried while the simulator
# answers 503 busy (an advance waits for an open truth stream).
admin() {
  local out code body=()
  (($# > 2)) && body=(--data-binary "$3")
  for _ in $(seq 1 50); do
    out=$(curl -sS --max-time 120 -X "$1" ${body[@]+"${body[@]}"} -w '\n%{http_code}' \
      "$DM_API_URL$2") || die "admin $1 $2: curl failed"
    code=${out##*$'\n'}
    [[ $code == 503 ]] || break
    sleep 0.2
  done
  [[ $code == 200 ]] || die "admin $1 $2: HTTP $code: ${out%$'\n'*}"
  printf '%s\n' "${out%$'\n'*}"
}

# ---- the counters kept over the whole soak
SUMMARIES=$WORK/summaries # one sync summary per line, of every sync that finished
: >"$SUMMARIES"
iterations=0 kills=0 kill_misses=0 redriven=0 redrives=0 syncs=0

# run_sync NAME [--drain]: one `cascade sync --json`; its summary is appended to SUMMARIES.
run_sync() {
  local name=$1 rc=0
  shift
  child timeout "$(left)" "$CASCADE" sync "$PIPELINE" "$@" --json \
    >"$WORK/$name.json" 2>"$WORK/$name.log" || rc=$?
  if ((rc != 0)) || ! grep -q '"completed":true' "$WORK/$name.json"; then
    tail -n 20 "$WORK/$name.log" >&2
    die "sync $name exited $rc: $(head -c 2000 "$WORK/$name.json")"
  fi
  cat "$WORK/$name.json" >>"$SUMMARIES"
  syncs=$((syncs + 1))
}

# killed_sync NAME: a sync killed with SIGKILL at a random moment within the last sync's length.
last_ms=5000
killed_sync() {
  local name=$1 delay rc=0
  delay=$((100 + ((RANDOM << 15) | RANDOM) % last_ms))
  "$CASCADE" sync "$PIPELINE" --json >"$WORK/$name.json" 2>"$WORK/$name.log" &
  CHILD=$!
  sleep "$(awk -v ms="$delay" 'BEGIN { printf "%.3f", ms / 1000 }')"
  kill -KILL "$CHILD" 2>/dev/null || true
  wait "$CHILD" 2>/dev/null || rc=$?
  CHILD=""
  if ((rc == 128 + 9)); then
    kills=$((kills + 1))
    echo "soak: iteration $iterations: kill -9 after ${delay} ms" >&2
  elif ((rc == 0)) && grep -q '"completed":true' "$WORK/$name.json"; then
    kill_misses=$((kill_misses + 1)) # it finished first: an ordinary sync
    cat "$WORK/$name.json" >>"$SUMMARIES"
    syncs=$((syncs + 1))
  else
    tail -n 20 "$WORK/$name.log" >&2
    die "sync $name exited $rc before its kill"
  fi
}

# redrive: every dead letter back to its queue; adds the count to redriven.
redrive() {
  local out n
  out=$(timeout "$(left)" "$CASCADE" dlq redrive -p "$PIPELINE" 2>"$WORK/redrive.log") ||
    die "dlq redrive failed: $(cat "$WORK/redrive.log")"
  n=$(sed -n 's/^redrove \([0-9]*\) message.*/\1/p' <<<"$out")
  [[ -n $n ]] || die "dlq redrive said: $out"
  redriven=$((redriven + n)) redrives=$((redrives + 1))
}

# ---- the soak
while ((SECONDS < DEADLINE)); do
  iterations=$((iterations + 1))
  admin POST "/admin/advance?ticks=$TICKS" >/dev/null
  t0=$SECONDS
  if ((iterations % KILL_EVERY == 0)); then
    killed_sync "kill$iterations"
  fi
  run_sync "sync$iterations"
  last_ms=$(awk -v s="$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$WORK/sync$iterations.json")" \
    'BEGIN { ms = int(s * 1000); print (ms < 500 ? 500 : ms) }')
  if ((iterations % REPAIR_EVERY == 0)); then
    # The vendor fixes its broken responses for a while: what they dead-lettered comes back.
    admin POST /admin/faults "$FAULTS_TRANSIENT" >/dev/null
    redrive
    run_sync "drain$iterations" --drain
    admin POST /admin/faults "$FAULTS_ALL" >/dev/null
  fi
  echo "soak: iteration $iterations done in $((SECONDS - t0)) s ($((SECONDS - START)) s of" \
    "$((SOAK_MINUTES * 60))); kills $kills, redriven $redriven" >&2
done

# ---- the end: a healthy vendor, everything redriven and drained, one last full sync
admin GET /admin/stats >"$WORK/stats.json" # faults injected during the soak proper
admin DELETE /admin/faults >/dev/null
redrive
run_sync final-drain --drain
run_sync final
SOAK_SECONDS=$((SECONDS - START))
child timeout "$(left)" "$CASCADE" queues "$PIPELINE" --json >"$WORK/queues.json"
compare_rc=0
child timeout "$(left)" python3 "$ROOT/bench/soak_compare.py" "$WORK/soak.db" "$DM_API_URL" \
  --queues "$WORK/queues.json" >"$WORK/compare.json" || compare_rc=$?
[[ -s $WORK/compare.json ]] || die "soak_compare.py failed (exit $compare_rc)"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- figures and the results file
mkdir -p "$(dirname "$RESULTS")"
python3 - "$SUMMARIES" "$WORK/compare.json" "$RESULTS" "$WORK/stats.json" <<EOF
import json, sys
summaries = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
compare = json.load(open(sys.argv[2]))
stats = json.load(open(sys.argv[4]))
tot = lambda k: sum(s["total"][k] for s in summaries)
kinds = {k: sum(by_path.values()) for k, by_path in stats["faults"]["kinds"].items()}
api = {p: sum(v.values()) for p, v in stats["requests"].items()
       if p in ("/branches", "/employees", "/sales") and isinstance(v, dict)}
result = {
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)",
  "machine": {"cpus": $(nproc), "load_average_start": "$LOAD_START", "load_average_end": "$LOAD_END"},
  "size": {"employees_per_branch": $EMPLOYEES_PER_BRANCH, "sales_per_salesperson": $SALES_PER_SALESPERSON,
           "seed": $SEED, "ticks_per_iteration": $TICKS, "final_tick": compare.get("tick"),
           "sales_expected_at_end": compare["tables"]["sales"]["expected"]},
  "fault_plan": json.loads('$FAULTS_ALL'),
  "soak_minutes": $SOAK_MINUTES,
  "duration_seconds": $SOAK_SECONDS,
  "iterations": $iterations,
  "syncs_completed": len(summaries),
  "records_processed": tot("records"),
  "rows_new_changed_gone": [tot("new"), tot("changed"), tot("gone")],
  "requests": tot("requests"),
  "messages": tot("messages"),
  "retries": tot("requests") - tot("messages"),
  "requeued_after_transient_failure": tot("retried"),
  "throttled": tot("throttled"),
  "simulator_api_requests": sum(api.values()),
  "faults_injected": {"total": stats["faults"]["total"], "by_kind": kinds},
  "fault_share_of_api_requests": round(stats["faults"]["total"] / max(1, sum(api.values())), 3),
  "dead_lettered": tot("dead_lettered"),
  "redriven": $redriven,
  "redrives": $redrives,
  "kills_survived": $kills,
  "kills_missed_sync_finished_first": $kill_misses,
  "peak_rss_mb": max(s["peak_rss_mb"] for s in summaries),
  "final": compare,
  "final_difference": compare["difference"],
  "ok": compare["ok"],
}
json.dump(result, open(sys.argv[3], "w"), indent=2, sort_keys=False)
open(sys.argv[3], "a").write("\n")
r = result
print(f"""
cascade soak: {r['duration_seconds']} s ({r['soak_minutes']} min asked), {r['iterations']} iterations, {r['syncs_completed']} syncs completed
records processed     {r['records_processed']:>12}
requests / messages   {r['requests']:>12} / {r['messages']}  (retries {r['retries']}, throttled {r['throttled']})
faults injected       {r['faults_injected']['total']:>12}  {r['fault_share_of_api_requests']:.0%} of {r['simulator_api_requests']} API requests  {json.dumps(kinds, sort_keys=True)}
dead-lettered         {r['dead_lettered']:>12}  redriven {r['redriven']} in {r['redrives']} redrives
kills survived        {r['kills_survived']:>12}  (+{r['kills_missed_sync_finished_first']} syncs finished before their kill)
peak RSS MB           {r['peak_rss_mb']:>12}
final difference      {r['final_difference']:>12}  integrity {compare['integrity_check']}, queues drained {compare.get('queues_drained')}
verdict               {'PASS' if r['ok'] else 'FAIL'}""")
EOF
echo "results: $RESULTS"
exit "$compare_rc"
