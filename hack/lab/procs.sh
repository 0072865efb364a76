# Process helpers shared by the lab scripts (sourced, not run). The sourcing script defines
# RUN (pid file dir), proc_bin NAME (the binary NAME's process runs), log MESSAGE, die MESSAGE,
# STOP_GRACE and READY_TIMEOUT (seconds); it may redefine any helper after sourcing this file.

# pidfile NAME: the pid file's path
pidfile() { echo "$RUN/$1.pid"; }

# alive NAME: its pid file names a running process of the binary proc_bin NAME
alive() {
  local f pid exe
  f=$(pidfile "$1"); [[ -s $f ]] || return 1
  pid=$(<"$f"); [[ -d /proc/$pid ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true); exe=${exe% (deleted)}
  [[ $exe == */$(proc_bin "$1") ]]
}

# started_with NAME VAR: the process of NAME's pid file has VAR in its environment (as it was started)
started_with() {
  local f; f=$(pidfile "$1"); [[ -s $f ]] || return 1
  tr '\0' '\n' 2>/dev/null <"/proc/$(<"$f")/environ" | grep -q "^$2="
}

# wait_for DESCRIPTION COMMAND...: until COMMAND succeeds (output discarded), at most READY_TIMEOUT s
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 0.5
  done
}

# lock: one up/down of the lab at a time (flock on the state dir's parent; FERRY_LAB_LOCKED=1 when
# the caller holds it already)
lock() {
  [[ ${FERRY_LAB_LOCKED:-0} == 1 ]] && return 0
  mkdir -p "$(dirname "$STATE")"; exec 9<"$(dirname "$STATE")"; flock 9
}

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
