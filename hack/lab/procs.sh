# Process helpers shared by the lab scripts (sourced, not run). The sourcing script defines
# pidfile NAME (the pid file's path), alive NAME (its process is running), log MESSAGE and STOP_GRACE.

# stop_procs NAME...: SIGTERM all of them at once, SIGKILL what is left after STOP_GRACE
stop_procs() {
  local n pid i left
  local -A pids=()
  for n in "$@"; do
    if alive "$n"; then pids[$n]=$(<"$(pidfile "$n")"); kill -TERM "${pids[$n]}" 2>/dev/null || true; fi
  done
  # kube-apiserver keeps open watch connections up to its 60s request timeout after
  # SIGTERM (it stops listening at once); it keeps no state, so a short grace is enough.
  for ((i = 0; i < STOP_GRACE * 10; i++)); do
    left=0; for n in "${!pids[@]}"; do [[ -d /proc/${pids[$n]} ]] && left=1; done
    ((left)) || break; sleep 0.1
  done
  for n in "${!pids[@]}"; do
    pid=${pids[$n]}
    if [[ -d /proc/$pid ]]; then
      log "$n (pid $pid) still running after ${STOP_GRACE}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    fi
    log "stopped $n (pid $pid)"
  done
  for n in "$@"; do rm -f "$(pidfile "$n")"; done
}
