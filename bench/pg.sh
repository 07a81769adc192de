#!/usr/bin/env bash
# bench/pg.sh: cascade on PostgreSQL with 1, 2 and 4 workers, beside the bare limit (see
# bench/README.md). Starts a throwaway PostgreSQL 15 (initdb + pg_ctl in a temp dir, default
# durable settings, 127.0.0.1 on a free port) and cascade-sim; for each worker count syncs ~1M
# sales into a fresh database with that many `cascade sync` processes at once (RUNS times),
# checks every worker completed and the sales table holds exactly the simulator's sales, then
# measures the limit: the same sales rows through COPY into an empty table of the same shape
# (same columns, same primary key) on the same server. Reports wall time, records/s, CPU per
# worker and the server's CPU (where the time goes). Writes bench/results/pg-latest.json.
#
# Env: RUNS (3), WORKERS ("1 2 4"), EMPLOYEES_PER_BRANCH (80), SALES_PER_SALESPERSON (2400),
#      SEED (1), BUILD_DIR (default build-release, configured and built when missing), JOBS (2),
#      PG_BIN (/usr/lib/postgresql/15/bin), RESULTS (bench/results/pg-latest.json),
#      STEP_TIMEOUT (900 s, bound on any one step), KEEP_WORK (1 keeps the temp dir).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
WORKERS=${WORKERS:-1 2 4}
EMPLOYEES_PER_BRANCH=${EMPLOYEES_PER_BRANCH:-80}
SALES_PER_SALESPERSON=${SALES_PER_SALESPERSON:-2400}
SEED=${SEED:-1}
JOBS=${JOBS:-2}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
RESULTS=${RESULTS:-$ROOT/bench/results/pg-latest.json}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
PIPELINE=$ROOT/bench/pipeline.yaml

die() {
  echo "bench: $*" >&2
  exit 1
}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
for w in $WORKERS; do [[ $w =~ ^[1-9][0-9]?$ ]] || die "WORKERS must be counts 1..99"; done
[[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] ||
  die "no PostgreSQL 15 in $PG_BIN (scripts/setup.sh installs Debian's postgresql)"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cascade-pgbench.XXXXXX")
chmod 755 "$WORK"
SIM_PID="" CHILD="" PIDS=() PG_UP=0
AS=()
if [[ $(id -u) == 0 ]]; then AS=(runuser -u nobody --); fi
cleanup() {
  local rc=$?
  # shellcheck disable=SC2086 # empty ids vanish
  stop_pids $CHILD $SIM_PID "${PIDS[@]}"
  if ((PG_UP)); then "${AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null 2>&1 || true; fi
  if [[ ${KEEP_WORK:-0} == 1 ]]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. binaries
BUILD=${BUILD_DIR:-$ROOT/build-release}
if [[ ! -x $BUILD/src/cli/cascade || ! -x $BUILD/sim/cascade-sim ]]; then
  echo "bench: building Release tree in $BUILD (-j$JOBS)" >&2
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  child cmake --build "$BUILD" -j "$JOBS" --target cascade cascade-sim >"$WORK/build.log" 2>&1 ||
    {
      tail -n 30 "$WORK/build.log" >&2
      die "build failed"
    }
fi
CASCADE=$BUILD/src/cli/cascade
SIM=$BUILD/sim/cascade-sim
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (Debian package 'time')"

# ---- 2. PostgreSQL and the simulator
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port)
mkdir -p "$WORK/pg" "$WORK/sock"
[[ ${#AS[@]} -gt 0 ]] && chown nobody "$WORK/pg" "$WORK/sock"
"${AS[@]}" "$PG_BIN/initdb" -D "$WORK/pg" -U cascade --auth=trust -E UTF8 --locale=C.UTF-8 \
  >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
"${AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/sock/pg.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$WORK/sock -c max_connections=100" \
  start >/dev/null || { cat "$WORK/sock/pg.log" >&2; die "pg_ctl start failed"; }
PG_UP=1
POSTMASTER=$(head -n 1 "$WORK/pg/postmaster.pid")
PSQL=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U cascade -v ON_ERROR_STOP=1 -qAt)
# The server's CPU so far (its own and its exited backends'), in clock ticks.
pg_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$POSTMASTER/stat"; }
HZ=$(getconf CLK_TCK)

"$SIM" --host 127.0.0.1 --port 0 --seed "$SEED" --employees-per-branch "$EMPLOYEES_PER_BRANCH" \
  --sales-per-salesperson "$SALES_PER_SALESPERSON" >"$WORK/sim.out" 2>"$WORK/sim.err" &
SIM_PID=$!
PORT=""
for _ in $(seq 1 300); do
  PORT=$(sed -n 's#^listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$WORK/sim.out")
  [[ -n $PORT ]] && break
  kill -0 "$SIM_PID" 2>/dev/null || die "cascade-sim exited: $(cat "$WORK/sim.err")"
  sleep 0.1
done
[[ -n $PORT ]] || die "cascade-sim did not start listening"
URL=http://127.0.0.1:$PORT
EXPECTED_SALES=$(curl -sf "$URL/admin/truth" | python3 -c '
import json, sys
t = json.load(sys.stdin)
sp = {e["id"] for e in t["employees"] if e["occupation"] == "salesperson"}
print(sum(1 for s in t["sales"] if s["employee_id"] in sp))')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: PostgreSQL on 127.0.0.1:$PG_PORT, cascade-sim on $URL ($EXPECTED_SALES sales);" \
  "load average $LOAD_START; workers: $WORKERS; $RUNS runs" >&2

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "null";
  else if (NR%2) print a[(NR+1)/2]; else printf "%.10g\n", (a[NR/2]+a[NR/2+1])/2}'; }
cpu_of() { awk '/User time|System time/ {s += $NF} END {printf "%.2f\n", s}' "$1"; }

# ---- 3. N workers at once into a fresh database
declare -A SECONDS_OF RPS_OF CPU_OF PGCPU_OF
for n in $WORKERS; do
  secs=() rps=() cpu=() pgcpu=()
  for i in $(seq 1 "$RUNS"); do
    db=w${n}_$i
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $db" >/dev/null
    storage="postgresql://cascade@127.0.0.1:$PG_PORT/$db"
    p0=$(pg_ticks)
    t0=$(date +%s.%N)
    PIDS=()
    for w in $(seq 1 "$n"); do
      DM_API_URL=$URL timeout "$STEP_TIMEOUT" /usr/bin/time -v -o "$WORK/$db.$w.time" \
        "$CASCADE" sync "$PIPELINE" --storage "$storage" --json >"$WORK/$db.$w.json" \
        2>"$WORK/$db.$w.log" &
      PIDS+=($!)
    done
    for w in $(seq 1 "$n"); do
      wait "${PIDS[$((w - 1))]}" || {
        tail -n 20 "$WORK/$db.$w.log" >&2
        die "worker $w of $n failed"
      }
    done
    PIDS=()
    t1=$(date +%s.%N)
    # The workers' backends count once the postmaster has reaped them: wait for them to go.
    for _ in $(seq 1 100); do
      left=$("${PSQL[@]}" -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE
        backend_type = 'client backend' AND pid <> pg_backend_pid()")
      [[ $left == 0 ]] && break
      sleep 0.05
    done
    p1=$(pg_ticks)
    got=$("${PSQL[@]}" -d "$db" -c "SELECT count(*) FROM sales WHERE _deleted_at IS NULL")
    [[ $got == "$EXPECTED_SALES" ]] || die "$n workers: $got sales in the warehouse, expected $EXPECTED_SALES"
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }')
    c=0
    for w in $(seq 1 "$n"); do c=$(awk -v a="$c" -v b="$(cpu_of "$WORK/$db.$w.time")" 'BEGIN { print a + b }'); done
    secs+=("$s")
    rps+=("$(awk -v r="$EXPECTED_SALES" -v s="$s" 'BEGIN { printf "%.0f\n", r / s }')")
    cpu+=("$(awk -v c="$c" -v n="$n" 'BEGIN { printf "%.2f\n", c / n }')")
    pgcpu+=("$(awk -v a="$p0" -v b="$p1" -v hz="$HZ" 'BEGIN { printf "%.2f\n", (b - a) / hz }')")
    echo "bench: $n worker(s), run $i/$RUNS: ${s} s, ${rps[-1]} sales/s, CPU per worker ${cpu[-1]} s," \
      "server CPU ${pgcpu[-1]} s" >&2
  done
  SECONDS_OF[$n]=$(median "${secs[@]}")
  RPS_OF[$n]=$(median "${rps[@]}")
  CPU_OF[$n]=$(median "${cpu[@]}")
  PGCPU_OF[$n]=$(median "${pgcpu[@]}")
done

# ---- 4. the limit: the same sales rows through COPY into an empty table of the same shape
first=$(echo "$WORKERS" | awk '{print $1}')
src=w${first}_1
"${PSQL[@]}" -d "$src" -c "\\copy (SELECT * FROM sales) TO '$WORK/sales.csv' WITH (FORMAT csv)"
copy_s=()
for i in $(seq 1 "$RUNS"); do
  "${PSQL[@]}" -d "$src" -c "DROP TABLE IF EXISTS bench_copy; CREATE TABLE bench_copy (LIKE sales INCLUDING ALL)"
  t0=$(date +%s.%N)
  "${PSQL[@]}" -d "$src" -c "\\copy bench_copy FROM '$WORK/sales.csv' WITH (FORMAT csv)"
  t1=$(date +%s.%N)
  copy_s+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }')")
done
COPY_S=$(median "${copy_s[@]}")
COPY_RPS=$(awk -v r="$EXPECTED_SALES" -v s="$COPY_S" 'BEGIN { printf "%.0f\n", r / s }')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 5. report
printf '\n%-10s %10s %12s %18s %16s %12s\n' workers seconds "sales/s" "CPU/worker (s)" "server CPU (s)" "of COPY"
for n in $WORKERS; do
  printf '%-10s %10s %12s %18s %16s %12s\n' "$n" "${SECONDS_OF[$n]}" "${RPS_OF[$n]}" "${CPU_OF[$n]}" \
    "${PGCPU_OF[$n]}" "$(awk -v a="${RPS_OF[$n]}" -v b="$COPY_RPS" 'BEGIN { printf "%.2f\n", a / b }')"
done
printf '%-10s %10s %12s\n' COPY "$COPY_S" "$COPY_RPS"
echo "load average: start $LOAD_START, end $LOAD_END (medians of $RUNS runs; 2 shared vCPUs)"

mkdir -p "$(dirname "$RESULTS")"
{
  echo "{"
  echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\","
  echo "  \"machine\": {\"cpus\": $(nproc), \"load_average_start\": \"$LOAD_START\", \"load_average_end\": \"$LOAD_END\"},"
  echo "  \"sales\": $EXPECTED_SALES, \"runs\": $RUNS,"
  echo "  \"workers\": {"
  sep=""
  for n in $WORKERS; do
    printf '%s    "%s": {"median_seconds": %s, "median_sales_per_s": %s, "median_cpu_seconds_per_worker": %s, "median_server_cpu_seconds": %s}' \
      "$sep" "$n" "${SECONDS_OF[$n]}" "${RPS_OF[$n]}" "${CPU_OF[$n]}" "${PGCPU_OF[$n]}"
    sep=$',\n'
  done
  echo
  echo "  },"
  echo "  \"copy\": {\"what\": \"the same sales rows, COPY into an empty table LIKE sales INCLUDING ALL\", \"median_seconds\": $COPY_S, \"rows_per_s\": $COPY_RPS}"
  echo "}"
} >"$RESULTS"
echo "bench: results in $RESULTS" >&2
