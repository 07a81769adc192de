#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each for SECONDS (default 60).
# Exit 1 on any finding (crash, sanitizer report, unexpected exception) or build failure.
# Usage: scripts/fuzz.sh [SECONDS]   env: JOBS (default 2), FUZZ_TARGETS (default all)
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
jobs="${JOBS:-2}"
targets="${FUZZ_TARGETS:-pipeline_fuzz records_fuzz column_names_fuzz}"

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 1; }

mkdir -p "$build"
CXX=clang++ cmake -S "$root" -B "$build" -DCASCADE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" --target $targets

status=0
for t in $targets; do
  name="${t%_fuzz}"
  seeds="$root/fuzz/corpus/$name"
  # The working corpus grows in build-fuzz; the seeds in the repository stay small and reviewed.
  work="$build/corpus/$name"
  artifacts="$build/artifacts/$name/"
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts"
  log="$build/$t.log"
  echo "== $t for ${seconds}s (log: $log)"
  set +e
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$log" | tail -2 || true
  if [ "$rc" -ne 0 ] || ls "$artifacts" | grep -q .; then
    echo "FINDING in $t (exit $rc); artifacts in $artifacts; last lines of the log:" >&2
    tail -40 "$log" >&2
    status=1
  fi
done
exit "$status"
