#!/usr/bin/env bash
# bench/run.sh: cascade's end-to-end benchmark and its peers (see bench/README.md).
# Syncs ~1M sales from cascade-sim into a fresh SQLite database RUNS times, re-syncs the
# unchanged data RUNS times, then measures the limits cascade is judged against: how fast the
# simulator serves the same sales requests (wrk), how fast SQLite inserts the same rows into the
# same tables with the same commits in a bare loop (bench_bare_insert), and how fast SQLite
# inserts the sales rows alone into one table in one transaction (bench_bare_insert --plain).
# Both SQLite peers open their connection with the store's own code and pragmas.
# Prints a table, writes bench/results/latest.json.
#
# Env: RUNS (3), EMPLOYEES_PER_BRANCH (80), SALES_PER_SALESPERSON (2400), SEED (1),
#      BUILD_DIR (an existing build tree to use; default: build/configure build-release),
#      JOBS (2), WRK_THREADS (2), WRK_CONNECTIONS (16 = the pipeline's max_connections),
#      RESULTS (bench/results/latest.json), KEEP_WORK (1 keeps the temp dir with the databases),
#      STEP_TIMEOUT (900 s, bound on any one step), BENCH_SQLITE_STORE (1 also runs the store's
#      own micro-benchmark and prints it).
# Everything listens on 127.0.0.1 only; child processes are stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
EMPLOYEES_PER_BRANCH=${EMPLOYEES_PER_BRANCH:-80}
SALES_PER_SALESPERSON=${SALES_PER_SALESPERSON:-2400}
SEED=${SEED:-1}
JOBS=${JOBS:-2}
export WRK_THREADS=${WRK_THREADS:-2} # also read by wrk_sales.lua
WRK_CONNECTIONS=${WRK_CONNECTIONS:-16}
RESULTS=${RESULTS:-$ROOT/bench/results/latest.json}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
PIPELINE=$ROOT/bench/pipeline.yaml

die() {
  echo "bench: $*" >&2
  exit 1
}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
for v in EMPLOYEES_PER_BRANCH SALES_PER_SALESPERSON SEED JOBS WRK_THREADS WRK_CONNECTIONS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cascade-bench.XXXXXX")
SIM_PID="" CHILD=""
cleanup() {
  local rc=$?
  # shellcheck disable=SC2086 # empty ids vanish
  stop_pids $CHILD $SIM_PID
  if [[ ${KEEP_WORK:-0} == 1 ]]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---- 1. binaries
if [[ -n ${BUILD_DIR:-} ]]; then
  [[ -d $BUILD_DIR ]] || die "BUILD_DIR=$BUILD_DIR does not exist"
  BUILD=$(cd "$BUILD_DIR" && pwd)
  # The peer is built (or found up to date) every time: it shares the store's code, so a stale
  # binary could run with settings the store no longer has.
  cmake --build "$BUILD" -j "$JOBS" --target bench_bare_insert >/dev/null
else
  BUILD=$ROOT/build-release
  echo "bench: building Release tree in $BUILD (-j$JOBS)" >&2
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  targets=(cascade cascade-sim bench_sqlite_store bench_bare_insert)
  child cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" >"$WORK/build.log" 2>&1 ||
    {
      tail -n 30 "$WORK/build.log" >&2
      die "build failed"
    }
fi
CASCADE=$BUILD/src/cli/cascade
SIM=$BUILD/sim/cascade-sim
BARE=$BUILD/bench/bench_bare_insert
for b in "$CASCADE" "$SIM" "$BARE"; do [[ -x $b ]] || die "missing $b"; done

HAVE_TIME=0
if [[ -x /usr/bin/time ]]; then HAVE_TIME=1; else
  echo "bench: /usr/bin/time not found (Debian package 'time'): RSS is not cross-checked" >&2
fi

# ---- helpers (no jq/python needed: the summary's keys are known and flat enough for sed)
# field NAME FILE: a number from the top level of a sync summary (seconds, peak_rss_mb).
field() { sed -n "s/.*\"$1\":\\([-0-9.e+]*\\).*/\\1/p" "$2" | head -n 1; }
# total NAME FILE / sales NAME FILE: a counter of the summary's total / of stage sales.
total() { sed -n 's/.*"total":{\([^}]*\)}.*/\1/p' "$2" | tr ',' '\n' | sed -n "s/^\"$1\"://p"; }
sales() { sed -n 's/.*"sales":{\([^}]*\)}.*/\1/p' "$2" | tr ',' '\n' | sed -n "s/^\"$1\"://p"; }
# time_v LABEL FILE: a figure from /usr/bin/time -v output.
time_v() { sed -n "s/^[[:space:]]*$1: //p" "$2" 2>/dev/null | head -n 1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "null";
  else if (NR%2) print a[(NR+1)/2]; else printf "%.10g\n", (a[NR/2]+a[NR/2+1])/2}'; }
median_int() { median "$@" | awk '{ if ($1 == "null") print; else printf "%.0f\n", $1 }'; }
# rss_mb FILE: the peak RSS /usr/bin/time -v saw, in MB.
rss_mb() { awk -v k="$(time_v 'Maximum resident set size (kbytes)' "$1")" 'BEGIN { printf "%.1f\n", k / 1024 }'; }
maximum() { printf '%s\n' "$@" | sort -g | tail -n 1; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f\n", a / b; else print 0 }'; }
# count_changes DB: how many change-log entries were ever written (the sequence counter).
count_changes() {
  timeout "$STEP_TIMEOUT" "$CASCADE" sql -p "$PIPELINE" --storage "sqlite:$1" -f csv \
    "SELECT coalesce((SELECT value FROM cascade_meta WHERE key = 'change_seq'), 0)" | tail -n 1
}
# run_sync DB OUT: one `cascade sync --json` into DB; summary in OUT.json, time -v in OUT.time.
run_sync() {
  local timer=()
  ((HAVE_TIME)) && timer=(/usr/bin/time -v -o "$2.time")
  if ! DM_API_URL=$URL child timeout "$STEP_TIMEOUT" ${timer[@]+"${timer[@]}"} \
    "$CASCADE" sync "$PIPELINE" --storage "sqlite:$1" --json >"$2.json" 2>"$2.log"; then
    tail -n 20 "$2.log" >&2
    die "cascade sync failed (see above)"
  fi
  grep -q '"completed":true' "$2.json" || die "sync did not complete: $(cat "$2.json")"
}

# ---- 2. the simulator
"$SIM" --host 127.0.0.1 --port 0 --seed "$SEED" --employees-per-branch "$EMPLOYEES_PER_BRANCH" \
  --sales-per-salesperson "$SALES_PER_SALESPERSON" >"$WORK/sim.out" 2>"$WORK/sim.err" &
SIM_PID=$!
PORT=""
for _ in $(seq 1 300); do # up to 30 s: generating a large company takes a moment
  PORT=$(sed -n 's#^listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$WORK/sim.out")
  [[ -n $PORT ]] && break
  kill -0 "$SIM_PID" 2>/dev/null || die "cascade-sim exited: $(cat "$WORK/sim.err")"
  sleep 0.1
done
[[ -n $PORT ]] || die "cascade-sim did not start listening"
URL=http://127.0.0.1:$PORT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: cascade-sim on $URL (employees/branch $EMPLOYEES_PER_BRANCH," \
  "sales/salesperson $SALES_PER_SALESPERSON); load average $LOAD_START; $RUNS runs" >&2

# ---- 3/4. initial syncs into fresh databases, then the unchanged re-sync of each
init_s=() init_rps=() init_rss=() init_rss_os=() init_cpu=() records=""
for i in $(seq 1 "$RUNS"); do
  db=$WORK/run$i.db
  rm -f "$db" "$db-wal" "$db-shm"
  run_sync "$db" "$WORK/init$i"
  s=$(field seconds "$WORK/init$i.json")
  records=$(total records "$WORK/init$i.json")
  init_s+=("$s") init_rps+=("$(div "$records" "$s")") init_rss+=("$(field peak_rss_mb "$WORK/init$i.json")")
  if ((HAVE_TIME)); then
    init_rss_os+=("$(rss_mb "$WORK/init$i.time")")
    init_cpu+=("$(awk -v u="$(time_v 'User time (seconds)' "$WORK/init$i.time")" \
      -v s="$(time_v 'System time (seconds)' "$WORK/init$i.time")" 'BEGIN { print u + s }')")
  fi
  echo "bench: sync $i/$RUNS: ${s}s, $records records, ${init_rss[-1]} MB" >&2
done
sales_records=$(sales records "$WORK/init1.json")

re_s=() re_rss=() re_rss_os=() re_written=() re_log_delta=() re_unchanged=""
for i in $(seq 1 "$RUNS"); do
  db=$WORK/run$i.db
  before=$(count_changes "$db")
  run_sync "$db" "$WORK/re$i"
  after=$(count_changes "$db")
  s=$(field seconds "$WORK/re$i.json")
  written=$(($(total new "$WORK/re$i.json") + $(total changed "$WORK/re$i.json") + $(total gone "$WORK/re$i.json")))
  re_unchanged=$(total unchanged "$WORK/re$i.json")
  re_s+=("$s") re_rss+=("$(field peak_rss_mb "$WORK/re$i.json")") re_written+=("$written")
  re_log_delta+=("$((after - before))")
  ((HAVE_TIME)) && re_rss_os+=("$(rss_mb "$WORK/re$i.time")")
  echo "bench: re-sync $i/$RUNS: ${s}s, rows written $written, change log $before -> $after" >&2
  # Keep one database for the peers; the others only take disk.
  ((i == 1)) || rm -f "$db" "$db-wal" "$db-shm"
done

# ---- 5a. the simulator's capacity for the same sales requests
wrk_s=() sim_rps=() wrk_note=""
IDS=$WORK/ids.txt
timeout "$STEP_TIMEOUT" "$CASCADE" sql -p "$PIPELINE" --storage "sqlite:$WORK/run1.db" -f csv \
  "SELECT DISTINCT employee_id FROM salespersons ORDER BY 1" | tail -n +2 >"$IDS"
n_ids=$(wc -l <"$IDS")
if command -v wrk >/dev/null; then
  for i in $(seq 1 "$RUNS"); do
    rm -f "$WORK/wrk.done"
    # -d only bounds a stuck run: the script stops wrk as soon as every id was answered.
    BENCH_IDS_FILE=$IDS BENCH_WRK_DONE=$WORK/wrk.done \
      child timeout "$STEP_TIMEOUT" wrk -t "$WRK_THREADS" -c "$WRK_CONNECTIONS" -d 300s --timeout 30s \
      -s "$ROOT/bench/wrk_sales.lua" "$URL" >"$WORK/wrk$i.out" 2>&1 || true
    line=$(grep '^{"walked"' "$WORK/wrk$i.out" || true)
    [[ -n $line ]] || die "wrk gave no result: $(cat "$WORK/wrk$i.out")"
    walked=$(sed -n 's/.*"walked":\([0-9]*\).*/\1/p' <<<"$line")
    bad=$(sed -n 's/.*"non_200":\([0-9]*\).*/\1/p' <<<"$line")
    [[ $walked == "$n_ids" && $bad == 0 ]] || die "wrk walk incomplete or failed: $line"
    s=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' <<<"$line")
    wrk_s+=("$s") sim_rps+=("$(div "$sales_records" "$s")")
    echo "bench: wrk $i/$RUNS: $n_ids requests, $sales_records sales in ${s}s" >&2
  done
else
  wrk_note="wrk not installed: WITH_BENCH=1 scripts/setup.sh (or apt-get install wrk)"
  echo "bench: $wrk_note" >&2
fi

# ---- 5b. SQLite's bare insert rate for the same rows, tables and transactions (store mode),
# and for the sales rows alone into one table in one transaction (plain mode)
bare_s=() bare_rps=() plain_s=() plain_rps=()
for i in $(seq 1 "$RUNS"); do
  for mode in store plain; do
    flag=()
    if [[ $mode == plain ]]; then flag=(--plain); fi
    child timeout "$STEP_TIMEOUT" "$BARE" ${flag[@]+"${flag[@]}"} "$WORK/run1.db" "$WORK/bare.db" \
      sales >"$WORK/$mode$i.out" || die "bench_bare_insert ${flag[*]} failed"
    out=$(cat "$WORK/$mode$i.out")
    s=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' <<<"$out")
    rps=$(sed -n 's/.*"rows_per_s":\([0-9.]*\).*/\1/p' <<<"$out")
    if [[ $mode == store ]]; then bare_s+=("$s") bare_rps+=("$rps"); else plain_s+=("$s") plain_rps+=("$rps"); fi
    echo "bench: bare insert ($mode) $i/$RUNS: $out" >&2
  done
done
rm -f "$WORK/bare.db" "$WORK/bare.db-wal" "$WORK/bare.db-shm"
if [[ ${BENCH_SQLITE_STORE:-0} == 1 && -x $BUILD/bench/bench_sqlite_store ]]; then
  echo "bench: bench_sqlite_store $sales_records (store hot paths vs bare loops):" >&2
  child timeout "$STEP_TIMEOUT" "$BUILD/bench/bench_sqlite_store" "$sales_records" "$WORK" >&2
fi

# ---- 6. figures, verdicts, results file
m_init_s=$(median "${init_s[@]}")
m_init_rps=$(median_int "${init_rps[@]}")
max_rss=$(maximum "${init_rss[@]}" "${re_rss[@]}")
max_rss_os=$( ((${#init_rss_os[@]})) && maximum "${init_rss_os[@]}" "${re_rss_os[@]}" || echo null)
m_cpu=$( ((${#init_cpu[@]})) && median "${init_cpu[@]}" || echo null)
m_re_s=$(median "${re_s[@]}")
max_written=$(maximum "${re_written[@]}")
max_delta=$(maximum "${re_log_delta[@]}")
m_sim=$( ((${#sim_rps[@]})) && median_int "${sim_rps[@]}" || echo null)
m_bare=$(median_int "${bare_rps[@]}")
m_plain=$(median_int "${plain_rps[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "null" }'; }
vs_bare=$(ratio "$m_init_rps" "$m_bare")
vs_plain=$(ratio "$m_init_rps" "$m_plain")
limit=$m_bare limit_name="sqlite bare insert"
if [[ $m_sim != null ]] && awk -v a="$m_sim" -v b="$m_bare" 'BEGIN { exit !(a < b) }'; then
  limit=$m_sim limit_name="simulator (wrk)"
fi
fraction=$(awk -v a="$m_init_rps" -v b="$limit" 'BEGIN { printf "%.2f\n", a / b }')
verdict() { awk "BEGIN { exit !($1) }" && echo PASS || echo FAIL; }
# The warehouse issue's targets: 300k records/s end to end with history and change log on, an
# unchanged re-sync at least 5x faster than the initial sync, peak RSS within 64 MB.
v_rate=$(verdict "$m_init_rps >= 300000")
v_rss=$(verdict "$max_rss <= 64")
v_zero=$(verdict "$max_written == 0 && $max_delta == 0")
v_faster=$(verdict "$m_re_s * 5 <= $m_init_s")
resync_speedup=$(awk -v a="$m_init_s" -v b="$m_re_s" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "null" }')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
json_list() {
  local IFS=,
  echo "[$*]"
}

mkdir -p "$(dirname "$RESULTS")"
cat >"$RESULTS" <<EOF
{
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)",
  "machine": {"cpus": $(nproc), "load_average_start": "$LOAD_START", "load_average_end": "$LOAD_END"},
  "size": {"employees_per_branch": $EMPLOYEES_PER_BRANCH, "sales_per_salesperson": $SALES_PER_SALESPERSON,
           "seed": $SEED, "records": $records, "sales": $sales_records, "sales_requests": $n_ids},
  "runs": $RUNS,
  "initial_sync": {"seconds": $(json_list "${init_s[@]}"), "records_per_s": $(json_list "${init_rps[@]}"),
                   "peak_rss_mb": $(json_list "${init_rss[@]}"),
                   "peak_rss_mb_time_v": $(json_list "${init_rss_os[@]}"),
                   "cpu_seconds": $(json_list "${init_cpu[@]}"),
                   "median_seconds": $m_init_s, "median_records_per_s": $m_init_rps,
                   "median_cpu_seconds": $m_cpu},
  "resync": {"seconds": $(json_list "${re_s[@]}"), "peak_rss_mb": $(json_list "${re_rss[@]}"),
             "peak_rss_mb_time_v": $(json_list "${re_rss_os[@]}"),
             "rows_written": $(json_list "${re_written[@]}"),
             "change_log_delta": $(json_list "${re_log_delta[@]}"),
             "unchanged": $re_unchanged, "median_seconds": $m_re_s,
             "initial_over_resync": $resync_speedup},
  "max_peak_rss_mb": $max_rss,
  "max_peak_rss_mb_time_v": $max_rss_os,
  "simulator": {"tool": "wrk -t$WRK_THREADS -c$WRK_CONNECTIONS", "seconds": $(json_list "${wrk_s[@]}"),
                "sales_per_s": $(json_list "${sim_rps[@]}"), "median_sales_per_s": $m_sim,
                "note": "$wrk_note"},
  "sqlite_bare_insert": {"seconds": $(json_list "${bare_s[@]}"), "rows_per_s": $(json_list "${bare_rps[@]}"),
                         "median_rows_per_s": $m_bare,
                         "what": "warehouse rows (carrying staging, history and change log) + listing records, one transaction per message, store pragmas"},
  "sqlite_plain_insert": {"seconds": $(json_list "${plain_s[@]}"), "rows_per_s": $(json_list "${plain_rps[@]}"),
                          "median_rows_per_s": $m_plain,
                          "what": "warehouse rows only, one table, one prepared INSERT, one transaction, store pragmas"},
  "cascade_over_bare_insert": $vs_bare,
  "cascade_over_plain_insert": $vs_plain,
  "limit": {"name": "$limit_name", "per_s": $limit},
  "fraction_of_limit": $fraction,
  "targets": {"records_per_s_ge_300000": "$v_rate", "peak_rss_le_64mb": "$v_rss",
              "resync_writes_zero_rows": "$v_zero", "resync_5x_faster_than_sync": "$v_faster"}
}
EOF

printf '\n%-44s %14s  %s\n' "cascade e2e benchmark ($RUNS runs, medians)" "value" "target"
printf '%-44s %14s\n' "records (sales)" "$records ($sales_records)"
printf '%-44s %14s\n' "initial sync wall s" "$m_init_s"
printf '%-44s %14s  >= 300000  %s\n' "initial sync records/s" "$m_init_rps" "$v_rate"
printf '%-44s %14s\n' "initial sync cpu s (user+sys)" "$m_cpu"
printf '%-44s %14s  <= 64      %s\n' "max peak RSS MB (summary)" "$max_rss" "$v_rss"
printf '%-44s %14s\n' "max peak RSS MB (/usr/bin/time -v)" "$max_rss_os"
printf '%-44s %14s  <= init/5  %s\n' "re-sync wall s" "$m_re_s" "$v_faster"
printf '%-44s %14s\n' "initial / re-sync" "$resync_speedup"
printf '%-44s %14s  == 0       %s\n' "re-sync rows written / change-log delta" "$max_written / $max_delta" "$v_zero"
printf '%-44s %14s\n' "peer: simulator sales/s (wrk)" "$m_sim"
printf '%-44s %14s\n' "peer: sqlite bare insert rows/s (same work)" "$m_bare"
printf '%-44s %14s\n' "peer: sqlite plain insert rows/s (1 table)" "$m_plain"
printf '%-44s %14s\n' "cascade / bare insert (store pragmas)" "$vs_bare"
printf '%-44s %14s\n' "cascade / plain insert (physical limit)" "$vs_plain"
printf '%-44s %14s\n' "cascade / lower limit ($limit_name)" "$fraction"
printf '%-44s %14s\n' "load average start / end" "$LOAD_START / $LOAD_END"
echo "results: $RESULTS"
