#!/usr/bin/env bash
# bench/daemon_soak.sh: `cascade run` on rate(1 minute) for DURATION against a simulator that
# moves one tick per scheduled run and injects ~10 % transient faults (see bench/README.md,
# Daemon soak). After every scheduled run, and before the simulator moves, the warehouse must
# equal the simulator's truth (bench/soak_compare.py); no tick may be missed, doubled or
# coalesced; RSS and open file descriptors of the daemon are sampled every SAMPLE seconds and
# the last five minutes compared with the first five. At the end the daemon gets SIGTERM and
# must exit 0 within STOP_LIMIT seconds. Writes bench/results/daemon-soak-<date>.json.
#
# Env: DURATION (30m; 90s, 3m, 1h or plain seconds), EMPLOYEES_PER_BRANCH (20),
#      SALES_PER_SALESPERSON (200), SEED (1), CHURN (cascade-sim's per-tick flags), BUILD_DIR
#      (build: an existing tree with cascade and cascade-sim, from scripts/build.sh), SAMPLE
#      (10 s), RSS_TOLERANCE_MB (8: the last five minutes' median RSS may exceed the first five
#      minutes' median by this much), FD_TOLERANCE (2: the same for the median of open fds;
#      pooled connections come and go), STOP_LIMIT (10 s), RESULTS, KEEP_WORK (1 keeps the
#      temp dir; it is kept anyway on failure).
# Exit 0 only when every check passed. Everything listens on 127.0.0.1 only; the simulator and
# the daemon are stopped when the script exits, however it exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-30m}
EMPLOYEES_PER_BRANCH=${EMPLOYEES_PER_BRANCH:-20}
SALES_PER_SALESPERSON=${SALES_PER_SALESPERSON:-200}
SEED=${SEED:-1}
# The company moves more per tick than the simulator's defaults, so that every tick brings new,
# corrected and late sales and most bring a transfer, a hire, a departure or a promotion.
CHURN=${CHURN:---new-sales-per-tick 50 --late-sales-per-tick 5 --corrections-per-tick 10 --transfers-per-tick 1 --hires-per-tick 1 --departures-per-tick 0.5 --promotions-per-tick 0.3}
SAMPLE=${SAMPLE:-10}
RSS_TOLERANCE_MB=${RSS_TOLERANCE_MB:-8}
FD_TOLERANCE=${FD_TOLERANCE:-2}
STOP_LIMIT=${STOP_LIMIT:-10}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
RESULTS=${RESULTS:-$ROOT/bench/results/daemon-soak-$(date -u +%Y-%m-%d).json}

# Transient faults only, 10 % of vendor requests: each is retried inside the request (attempts
# 6, 50ms..2s below) or, past that, by the queue, so every tick must still end complete and
# exact. Nothing here dead-letters (malformed and wrong-shaped responses would, by design).
FAULTS='{"5xx":0.04,"reset":0.02,"truncate":0.01,"html":0.01,"slow":{"p":0.02,"min_ms":20,"max_ms":300}}'

die() {
  echo "daemon_soak: $*" >&2
  exit 1
}
case $DURATION in
  *h) DURATION_S=$((${DURATION%h} * 3600)) ;;
  *m) DURATION_S=$((${DURATION%m} * 60)) ;;
  *s) DURATION_S=${DURATION%s} ;;
  *) DURATION_S=$DURATION ;;
esac
for v in DURATION_S EMPLOYEES_PER_BRANCH SALES_PER_SALESPERSON SEED SAMPLE RSS_TOLERANCE_MB \
  FD_TOLERANCE STOP_LIMIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (DURATION: 30m, 90s, 1h)"
done
((DURATION_S >= 60)) || die "DURATION must be at least one period (60 s)"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cascade-daemon-soak.XXXXXX")
SIM_PID="" DAEMON_PID="" CHILD=""
cleanup() {
  local rc=$?
  # shellcheck disable=SC2086 # empty ids vanish
  stop_pids $CHILD $DAEMON_PID $SIM_PID
  if [[ ${KEEP_WORK:-0} == 1 || $rc != 0 ]]; then echo "daemon_soak: kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_line FILE PATTERN PID SECONDS: prints the first line of FILE matching the sed -n pattern
# (which prints the wanted part), waiting while PID lives, at most SECONDS.
wait_line() {
  local file=$1 pattern=$2 pid=$3 end=$((SECONDS + $4)) got
  while ((SECONDS < end)); do
    got=$(sed -n "$pattern" "$file" 2>/dev/null | head -n 1)
    if [[ -n $got ]]; then
      echo "$got"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# ---- binaries
[[ -d $BUILD_DIR ]] || die "BUILD_DIR=$BUILD_DIR does not exist (scripts/build.sh builds build/)"
BUILD=$(cd "$BUILD_DIR" && pwd)
CASCADE=$BUILD/src/cli/cascade
SIM=$BUILD/sim/cascade-sim
for b in "$CASCADE" "$SIM"; do [[ -x $b ]] || die "missing $b (cmake --build $BUILD --target cascade cascade-sim)"; done
command -v curl >/dev/null || die "curl is needed for the simulator's admin endpoints"
command -v python3 >/dev/null || die "python3 is needed for bench/daemon_soak.py"

# ---- the pipeline: bench/pipeline.yaml (the example with the vendor limits lifted) on
# rate(1 minute), with retries tuned for a faulty vendor (many quick attempts, as bench/soak.sh).
PIPELINE=$WORK/pipeline.yaml
sed -e 's/schedule: rate(1 hour)/schedule: rate(1 minute)/' \
  -e 's/retry: { attempts: 4, backoff: 200ms\.\.30s }/retry: { attempts: 6, backoff: 50ms..2s }/' \
  "$ROOT/bench/pipeline.yaml" >"$PIPELINE"
grep -q 'schedule: rate(1 minute)' "$PIPELINE" || die "bench/pipeline.yaml changed: schedule line not found"
grep -q 'attempts: 6, backoff: 50ms\.\.2s' "$PIPELINE" || die "bench/pipeline.yaml changed: retry line not found"
DB=$WORK/daemon.db
export CASCADE_STORAGE=sqlite:$DB

# ---- the simulator
# shellcheck disable=SC2086 # CHURN is a list of flags
"$SIM" --host 127.0.0.1 --port 0 --seed "$SEED" --employees-per-branch "$EMPLOYEES_PER_BRANCH" \
  --sales-per-salesperson "$SALES_PER_SALESPERSON" $CHURN --faults "$FAULTS" \
  >"$WORK/sim.out" 2>"$WORK/sim.err" &
SIM_PID=$!
PORT=$(wait_line "$WORK/sim.out" 's#^listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$SIM_PID" 60) ||
  die "cascade-sim did not start listening: $(cat "$WORK/sim.err")"
export DM_API_URL=http://127.0.0.1:$PORT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the daemon
"$CASCADE" run "$PIPELINE" --listen 127.0.0.1:0 --log-level info >"$WORK/daemon.out" 2>"$WORK/daemon.log" &
DAEMON_PID=$!
STATUS_PORT=$(wait_line "$WORK/daemon.out" 's#^listening on http://127.0.0.1:\([0-9]*\)/$#\1#p' "$DAEMON_PID" 60) ||
  die "cascade run did not start: $(tail -n 20 "$WORK/daemon.log")"
wait_line "$WORK/daemon.out" '/^running$/p' "$DAEMON_PID" 30 >/dev/null || die "cascade run did not say running"
echo "daemon_soak: cascade-sim on $DM_API_URL (employees/branch $EMPLOYEES_PER_BRANCH," \
  "sales/salesperson $SALES_PER_SALESPERSON, faults $FAULTS); cascade run pid $DAEMON_PID on" \
  "http://127.0.0.1:$STATUS_PORT; $DURATION_S s; load average $LOAD_START" >&2

# ---- the ticks (bounded: DURATION plus a margin for the last run and comparison)
driver_rc=0
child timeout $((DURATION_S + 420)) python3 "$ROOT/bench/daemon_soak.py" \
  --status "http://127.0.0.1:$STATUS_PORT" --sim "$DM_API_URL" --db "$DB" --pipeline "$PIPELINE" \
  --cascade "$CASCADE" --pid "$DAEMON_PID" --duration "$DURATION_S" --margin 300 \
  --sample "$SAMPLE" --work "$WORK" --out "$WORK/driver.json" || driver_rc=$?
[[ -s $WORK/driver.json ]] || die "bench/daemon_soak.py failed (exit $driver_rc)"
curl -sS --max-time 30 "$DM_API_URL/admin/stats" >"$WORK/stats.json" || echo '{}' >"$WORK/stats.json"

# ---- SIGTERM: how long until the daemon is gone, and with which code
stop_rc=0
t_stop=$(date +%s.%N)
kill -TERM "$DAEMON_PID"
for _ in $(seq 1 $((STOP_LIMIT * 20))); do
  kill -0 "$DAEMON_PID" 2>/dev/null || break
  sleep 0.05
done
if kill -0 "$DAEMON_PID" 2>/dev/null; then
  kill -KILL "$DAEMON_PID" 2>/dev/null || true
  echo "daemon_soak: cascade run still alive ${STOP_LIMIT} s after SIGTERM; killed" >&2
fi
wait "$DAEMON_PID" || stop_rc=$?
t_gone=$(date +%s.%N)
DAEMON_PID=""
STOP_SECONDS=$(awk -v a="$t_stop" -v b="$t_gone" 'BEGIN { printf "%.3f", b - a }')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- figures, verdict and the results file
mkdir -p "$(dirname "$RESULTS")"
verdict_rc=0
python3 - "$WORK/driver.json" "$WORK/stats.json" "$RESULTS" <<EOF || verdict_rc=$?
import json, statistics, sys
d = json.load(open(sys.argv[1]))
stats = json.load(open(sys.argv[2]))
samples = d["samples"]
end = samples[-1][0] if samples else 0
def window(rows, col):
    v = [r[col] for r in rows]
    if not v:
        return None
    return {"samples": len(v), "min": min(v), "median": round(statistics.median(v), 2), "max": max(v)}
first = [s for s in samples if s[0] < 300]
last = [s for s in samples if s[0] >= end - 300]
rss = {"first_5_min": window(first, 1), "last_5_min": window(last, 1)}
disk = {"database_mb_last": samples[-1][3] if samples else None,
        "wal_mb_max": max((s[4] for s in samples), default=None),
        "wal_mb_last": samples[-1][4] if samples else None}
fds = {"first_5_min": window(first, 2), "last_5_min": window(last, 2)}
ticks = d["ticks"]
diffs = [t["difference"] for t in ticks]
durations = [t["seconds"] for t in ticks]
api = {p: sum(v.values()) for p, v in stats.get("requests", {}).items()
       if p in ("/branches", "/employees", "/sales") and isinstance(v, dict)}
faults = stats.get("faults", {})
kinds = {k: sum(by_path.values()) for k, by_path in faults.get("kinds", {}).items()}
problems = list(d["problems"])
if any(x != 0 for x in diffs):
    problems.append("a tick's warehouse differs from the truth")
if d["ticks_compared"] < d["ticks_expected"]:
    problems.append(f"{d['ticks_compared']} of {d['ticks_expected']} ticks compared")
if d["doubled"]:
    problems.append(f"doubled ticks: {d['doubled']}")
if d["missed"]:
    problems.append(f"missed ticks: {d['missed']}")
sch = d["schedule"]
if sch.get("coalesced") or sch.get("missed"):
    problems.append(f"schedule counters: coalesced {sch.get('coalesced')}, missed {sch.get('missed')}")
if sch.get("fired") != d["ticks_fired"]:
    problems.append(f"schedule says fired {sch.get('fired')}, runs seen {d['ticks_fired']}")
rss_growth = fd_growth = None
if rss["first_5_min"] and rss["last_5_min"]:
    rss_growth = round(rss["last_5_min"]["median"] - rss["first_5_min"]["median"], 2)
    if rss_growth > $RSS_TOLERANCE_MB:
        problems.append(f"RSS grew {rss_growth} MB (median, last 5 min vs first 5), tolerance $RSS_TOLERANCE_MB MB")
    fd_growth = fds["last_5_min"]["median"] - fds["first_5_min"]["median"]
    if fd_growth > $FD_TOLERANCE:
        problems.append(f"open fds grew by {fd_growth} (median, last 5 min vs first 5), tolerance $FD_TOLERANCE")
else:
    problems.append("no RSS samples")
if $stop_rc != 0:
    problems.append("cascade run exited $stop_rc after SIGTERM")
if $STOP_SECONDS > $STOP_LIMIT:
    problems.append("cascade run took $STOP_SECONDS s to exit after SIGTERM")
result = {
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)",
  "machine": {"cpus": $(nproc), "load_average_start": "$LOAD_START", "load_average_end": "$LOAD_END"},
  "size": {"employees_per_branch": $EMPLOYEES_PER_BRANCH, "sales_per_salesperson": $SALES_PER_SALESPERSON,
           "seed": $SEED, "churn": "$CHURN"},
  "schedule": "rate(1 minute)",
  "duration_seconds": $DURATION_S,
  "watched_seconds": d["watched_seconds"],
  "fault_plan": json.loads('$FAULTS'),
  "faults_injected": {"total": faults.get("total"), "by_kind": kinds},
  "simulator_api_requests": sum(api.values()),
  "fault_share_of_api_requests": round(faults.get("total", 0) / max(1, sum(api.values())), 3),
  "ticks_expected": d["ticks_expected"],
  "ticks_fired": d["ticks_fired"],
  "ticks_compared": d["ticks_compared"],
  "doubled": d["doubled"],
  "missed": d["missed"],
  "schedule_counters": sch,
  "idle_runs": d["idle_runs"],
  "max_late_seconds": max((t["late_seconds"] for t in ticks), default=None),
  "max_advance_after_fire_seconds": max((t["advanced_at_seconds_after_fire"] for t in ticks), default=None),
  "differences": diffs,
  "run_seconds": {"min": min(durations, default=None), "median": round(statistics.median(durations), 3) if durations else None,
                  "max": max(durations, default=None)},
  "rss_mb": rss,
  "rss_growth_mb": rss_growth,
  "rss_tolerance_mb": $RSS_TOLERANCE_MB,
  "open_fds": fds,
  "disk": disk,
  "fd_growth": fd_growth,
  "fd_tolerance": $FD_TOLERANCE,
  "sigterm": {"exit_seconds": $STOP_SECONDS, "exit_code": $stop_rc, "limit_seconds": $STOP_LIMIT},
  "ticks": ticks,
  "samples": samples,
  "problems": problems,
  "ok": not problems,
}
json.dump(result, open(sys.argv[3], "w"), indent=1)
open(sys.argv[3], "a").write("\n")
r = result
f = lambda w: "-" if not w else f"{w['min']} / {w['median']} / {w['max']} ({w['samples']} samples)"
print(f"""
cascade daemon soak: {r['watched_seconds']} s watched ({r['duration_seconds']} s asked), rate(1 minute)
ticks expected / fired / compared  {r['ticks_expected']} / {r['ticks_fired']} / {r['ticks_compared']}   doubled {len(r['doubled'])}, missed {len(r['missed'])}, coalesced {sch.get('coalesced')}
differences                        {sum(1 for x in diffs if x != 0)} ticks non-zero (max {max(diffs, default=0, key=lambda x: -1 if x is None else x)})
run seconds min / median / max     {r['run_seconds']['min']:.2f} / {r['run_seconds']['median']:.2f} / {r['run_seconds']['max']:.2f}   (latest start {r['max_late_seconds']} s after its tick; simulator advanced at most {r['max_advance_after_fire_seconds']} s after a tick)
faults injected                    {r['faults_injected']['total']}  {r['fault_share_of_api_requests']:.1%} of {r['simulator_api_requests']} API requests  {json.dumps(kinds, sort_keys=True)}
RSS MB first 5 min min/med/max     {f(rss['first_5_min'])}
RSS MB last 5 min  min/med/max     {f(rss['last_5_min'])}   growth {rss_growth} (tolerance $RSS_TOLERANCE_MB)
fds first 5 min    min/med/max     {f(fds['first_5_min'])}
fds last 5 min     min/med/max     {f(fds['last_5_min'])}   growth {fd_growth} (tolerance $FD_TOLERANCE)
database / WAL MB                  {disk['database_mb_last']} / {disk['wal_mb_last']} at the end (WAL max {disk['wal_mb_max']})
SIGTERM                            exit {r['sigterm']['exit_code']} after {r['sigterm']['exit_seconds']} s
verdict                            {'PASS' if r['ok'] else 'FAIL: ' + '; '.join(problems)}""")
sys.exit(0 if r["ok"] else 1)
EOF
echo "results: $RESULTS"
exit "$verdict_rc"
