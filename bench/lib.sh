# Shared by bench/run.sh and bench/soak.sh (sourced, not run).

# child CMD...: runs CMD in the background and waits, so a signal reaches the trap at once
# (bash defers traps while a foreground command runs) and cleanup can stop CMD.
child() {
  "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

# stop_pids PID...: SIGTERM each still-running process and reap it (for the cleanup traps).
stop_pids() {
  local pid
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
}
