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
