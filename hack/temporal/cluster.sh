#!/usr/bin/env bash
# A production Temporal on this machine, without containers or system services: PostgreSQL (Debian's
# `postgresql` package) as an unprivileged cluster in a state directory, the schema applied by
# temporal-sql-tool, the Temporal server (all four services in one process) with a config file and a
# dynamic config file, the Web UI (ui-server), the "default" namespace and Ferry's search attributes.
# The binaries come from hack/temporal/build.sh (built once from the Go module proxy, cached).
#
#   bash hack/temporal/cluster.sh up       start everything (idempotent: a running cluster is left as is)
#   bash hack/temporal/cluster.sh status   what runs, and whether the frontend answers (exit 1 if not)
#   bash hack/temporal/cluster.sh env      export lines: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_UI_URL
#   bash hack/temporal/cluster.sh down     stop everything and delete the state directory (all histories)
#
#   eval "$(bash hack/temporal/cluster.sh env)"; ferry worker   # then as many workers as you like
#
# Environment:
#   FERRY_TEMPORAL_CLUSTER_DIR   state directory (default /var/lib/ferry-temporal as root — PostgreSQL
#                                then runs as the `postgres` user, which cannot enter /root —, else
#                                ~/.ferry/temporal-cluster)
#   FERRY_TEMPORAL_CLUSTER_PORT  base port P (default 17233, at most 30000), all on 127.0.0.1:
#                                P frontend gRPC (TEMPORAL_ADDRESS), P+10 frontend HTTP, P+1 history,
#                                P+2 matching, P+3 worker, P+100..P+103 membership, P+20 Prometheus
#                                metrics (/metrics), P+1000 Web UI, P+2000 PostgreSQL
#   FERRY_TEMPORAL_HOME          where build.sh caches the binaries (see there)
#
# Layout of the state directory: pg/ (PostgreSQL data; socket in pg-run/), config/ (server config
# ferry.yaml, dynamic config dynamicconfig.yaml), ui/ (ui-server config), *.log, *.pid, ports,
# pg-password (the `temporal` database user's password, generated at the first `up`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ "$(id -u)" -eq 0 ]; then default_dir=/var/lib/ferry-temporal; else default_dir="${FERRY_STATE_DIR:-$HOME/.ferry}/temporal-cluster"; fi
STATE="${FERRY_TEMPORAL_CLUSTER_DIR:-$default_dir}"
MARKER="$STATE/.ferry-temporal-cluster"
PORT="${FERRY_TEMPORAL_CLUSTER_PORT:-17233}"
# A running cluster keeps the ports it was started with.
if [ -f "$STATE/ports" ]; then PORT=$(cat "$STATE/ports"); fi
# Temporal's SQL schema keeps membership ports in a smallint column (cluster_membership.rpc_port): a
# port above 32767 makes the server exit ("value ... is out of range for type smallint").
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1024 ] || [ "$PORT" -gt 30000 ]; then
  echo "cluster: FERRY_TEMPORAL_CLUSTER_PORT=$PORT: need 1024..30000 (ports up to P+2000 are used, and Temporal's SQL schema keeps them as smallint)" >&2
  exit 2
fi
PG_PORT=$((PORT + 2000))
UI_PORT=$((PORT + 1000))
METRICS_PORT=$((PORT + 20))
ADDRESS="127.0.0.1:$PORT"
NAMESPACE=default

log() { echo "cluster: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && echo "$d"
  done | sort -V | tail -1
}

# as_pg CMD...: runs a PostgreSQL program as the user owning the data (root may not run PostgreSQL).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# alive PIDFILE: the process recorded there runs, and is one of ours (a Temporal binary): a pid reused
# by another process after a crash is never signalled.
alive() {
  local pid
  [ -f "$1" ] && pid=$(cat "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'temporal-'
}

# The last errors of the server log, without their stack traces.
server_log_tail() { grep -E '"level":"(error|fatal|dpanic|panic)"|^[^{]' "$STATE/server.log" | tail -8 | sed -E 's/,"stacktrace":.*//' | cut -c1-400 >&2; }

TEMPORAL_CLI=
temporal_cli() {
  if [ -z "$TEMPORAL_CLI" ]; then
    TEMPORAL_CLI=$(bash "$root/hack/install-temporal.sh" 2>/dev/null) || die "the temporal CLI is missing: run bash hack/install-temporal.sh"
  fi
  "$TEMPORAL_CLI" "$@" --address "$ADDRESS"
}

frontend_answers() { temporal_cli operator cluster health >/dev/null 2>&1; }

pg_running() { [ -d "$STATE/pg" ] && as_pg "$PG/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; }

write_configs() {
  local pw=$1
  mkdir -p "$STATE/config" "$STATE/ui"
  # The server's config (go.temporal.io/server/common/config; compare config/development-postgres12.yaml
  # of the server module). One process runs frontend, history, matching and worker.
  cat >"$STATE/config/ferry.yaml" <<EOF
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  # Fixed for the life of the database: 4 is plenty for one machine.
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "127.0.0.1:$PG_PORT"
        connectProtocol: tcp
        user: temporal
        password: "$pw"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "127.0.0.1:$PG_PORT"
        connectProtocol: tcp
        user: temporal
        password: "$pw"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "127.0.0.1:$METRICS_PORT"
services:
  frontend:
    rpc: { grpcPort: $PORT, membershipPort: $((PORT + 100)), bindOnLocalHost: true, httpPort: $((PORT + 10)) }
  history:
    rpc: { grpcPort: $((PORT + 1)), membershipPort: $((PORT + 101)), bindOnLocalHost: true }
  matching:
    rpc: { grpcPort: $((PORT + 2)), membershipPort: $((PORT + 102)), bindOnLocalHost: true }
  worker:
    rpc: { grpcPort: $((PORT + 3)), membershipPort: $((PORT + 103)), bindOnLocalHost: true }
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:$PORT"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "$STATE/config/dynamicconfig.yaml"
  pollInterval: 10s
EOF
  # Dynamic config, shared with docker-compose.yml.
  cp "$here/dynamicconfig.yaml" "$STATE/config/dynamicconfig.yaml"
  # The Web UI's config (github.com/temporalio/ui-server/v2/server/config).
  cat >"$STATE/ui/ferry.yaml" <<EOF
temporalGrpcAddress: "127.0.0.1:$PORT"
host: 127.0.0.1
port: $UI_PORT
publicPath: ""
enableUi: true
defaultNamespace: $NAMESPACE
refreshInterval: 1m
notifyOnNewVersion: false
cors:
  cookieInsecure: true
  allowOrigins:
    - "http://127.0.0.1:$UI_PORT"
    - "http://localhost:$UI_PORT"
EOF
}

cmd_up() {
  [ -n "$PG" ] || die "PostgreSQL is not installed: apt-get install postgresql (hack/setup.sh installs it)"
  if [ -f "$MARKER" ] && alive "$STATE/server.pid" && alive "$STATE/ui.pid" && pg_running && frontend_answers; then
    log "already up at $ADDRESS (state $STATE)"
    return 0
  fi
  local home pw sql_tool
  home=$(bash "$here/build.sh") || die "cannot build the Temporal server (hack/temporal/build.sh)"
  sql_tool="$home/bin/temporal-sql-tool"
  if [ -e "$STATE" ] && [ ! -f "$MARKER" ] && [ -n "$(ls -A "$STATE" 2>/dev/null)" ]; then
    die "$STATE exists and is not a Ferry Temporal cluster: choose another FERRY_TEMPORAL_CLUSTER_DIR"
  fi
  mkdir -p "$STATE"
  touch "$MARKER"
  echo "$PORT" >"$STATE/ports"
  # PostgreSQL runs as the `postgres` user when we are root: it must be able to enter the state dir.
  if [ "$(id -u)" -eq 0 ]; then chmod 0711 "$STATE"; fi
  if [ ! -f "$STATE/pg-password" ]; then (umask 077 && openssl rand -hex 16 >"$STATE/pg-password"); fi
  pw=$(cat "$STATE/pg-password")

  # 1. PostgreSQL: a private cluster, TCP on 127.0.0.1 only, its socket in the state dir.
  if [ ! -f "$STATE/pg/PG_VERSION" ]; then
    rm -rf "$STATE/pg" "$STATE/pg-run"
    mkdir -p "$STATE/pg" "$STATE/pg-run"
    # The superuser is `temporal`; peers on the socket are trusted, TCP needs the password.
    (umask 077 && echo "$pw" >"$STATE/pg-run/pwfile")
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$STATE/pg" "$STATE/pg-run"; fi
    as_pg test -w "$STATE/pg" || die "the postgres user cannot write $STATE/pg (a parent directory closed to it?): choose another FERRY_TEMPORAL_CLUSTER_DIR"
    log "initdb $STATE/pg"
    as_pg "$PG/initdb" -D "$STATE/pg" -U temporal --pwfile="$STATE/pg-run/pwfile" --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$STATE/initdb.log" 2>&1 || { cat "$STATE/initdb.log" >&2; die "initdb failed"; }
    rm -f "$STATE/pg-run/pwfile"
  fi
  if ! pg_running; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg "$PG/pg_ctl" -D "$STATE/pg" -l "$STATE/pg-run/postgresql.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$STATE/pg-run -c max_connections=100" start >/dev/null ||
      { tail -20 "$STATE/pg-run/postgresql.log" >&2; die "PostgreSQL did not start"; }
  fi

  # 2. The schema, from the server module's schema files (setup-schema and update-schema are idempotent:
  #    an up-to-date database is left as is).
  local sql=("$sql_tool" --plugin postgres12 --ep 127.0.0.1 -p "$PG_PORT" -u temporal --pw "$pw")
  local db dir
  for db in temporal temporal_visibility; do
    if [ "$db" = temporal ]; then dir=temporal; else dir=visibility; fi
    if ! PGPASSWORD="$pw" "$PG/psql" -h 127.0.0.1 -p "$PG_PORT" -U temporal -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
      "${sql[@]}" --db "$db" create-database >>"$STATE/schema.log" 2>&1 || { tail -20 "$STATE/schema.log" >&2; die "create-database $db failed"; }
    fi
    "${sql[@]}" --db "$db" setup-schema -v 0.0 >>"$STATE/schema.log" 2>&1 || { tail -20 "$STATE/schema.log" >&2; die "setup-schema $db failed"; }
    "${sql[@]}" --db "$db" update-schema -d "$home/schema/postgresql/v12/$dir/versioned" >>"$STATE/schema.log" 2>&1 ||
      { tail -20 "$STATE/schema.log" >&2; die "update-schema $db failed"; }
  done
  log "schema: $(PGPASSWORD="$pw" "$PG/psql" -h 127.0.0.1 -p "$PG_PORT" -U temporal -d temporal -tAc 'select curr_version from schema_version') (temporal), $(PGPASSWORD="$pw" "$PG/psql" -h 127.0.0.1 -p "$PG_PORT" -U temporal -d temporal_visibility -tAc 'select curr_version from schema_version') (visibility)"

  # 3. The server and the UI, each in its own session (they outlive this script).
  write_configs "$pw"
  # Unknown keys and mistyped values are only warnings to the server (ignored at run time): refuse them.
  if ! "$home/bin/temporal-server" validate-dynamic-config "$STATE/config/dynamicconfig.yaml" >"$STATE/dynamicconfig-check.log" 2>&1 ||
    grep -qE '^\s+(warning|error):' "$STATE/dynamicconfig-check.log"; then
    cat "$STATE/dynamicconfig-check.log" >&2
    die "hack/temporal/dynamicconfig.yaml does not validate against the server's keys"
  fi
  if ! alive "$STATE/server.pid"; then
    log "starting the Temporal server $("$home/bin/temporal-server" --version | awk '{print $3}') on $ADDRESS"
    setsid "$home/bin/temporal-server" --root "$STATE" --config config --env ferry --allow-no-auth start \
      >>"$STATE/server.log" 2>&1 </dev/null &
    echo $! >"$STATE/server.pid"
  fi
  if ! alive "$STATE/ui.pid"; then
    setsid "$home/bin/temporal-ui-server" --root "$STATE" --config ui --env ferry start >>"$STATE/ui.log" 2>&1 </dev/null &
    echo $! >"$STATE/ui.pid"
  fi
  local deadline=$((SECONDS + 90))
  until frontend_answers; do
    alive "$STATE/server.pid" || { server_log_tail; die "the Temporal server exited (log: $STATE/server.log)"; }
    [ $SECONDS -lt $deadline ] || { server_log_tail; die "the Temporal frontend does not answer at $ADDRESS after 90 s"; }
    sleep 1
  done

  # 4. The namespace and Ferry's search attributes (src/workflows/search-attributes.ts).
  if ! temporal_cli operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
    log "creating namespace $NAMESPACE"
    temporal_cli operator namespace create --namespace "$NAMESPACE" --retention 72h >/dev/null
  fi
  deadline=$((SECONDS + 30))
  until temporal_cli operator search-attribute list --namespace "$NAMESPACE" >"$STATE/search-attributes.txt" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "namespace $NAMESPACE is not usable after 30 s"
    sleep 1
  done
  local line name type
  while IFS= read -r line; do
    name=${line%%=*}
    type=${line#*=}
    if ! grep -qw "$name" "$STATE/search-attributes.txt"; then
      temporal_cli operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type "$type" >/dev/null
      log "search attribute $name ($type) registered"
    fi
  done < <(cd "$root" && node --import tsx hack/temporal/search-attributes.ts)
  rm -f "$STATE/search-attributes.txt"

  deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null "http://127.0.0.1:$UI_PORT/"; do
    alive "$STATE/ui.pid" || { tail -20 "$STATE/ui.log" >&2; die "the Web UI exited (log: $STATE/ui.log)"; }
    [ $SECONDS -lt $deadline ] || die "the Web UI does not answer on port $UI_PORT"
    sleep 1
  done
  log "up: Temporal $ADDRESS (namespace $NAMESPACE), Web UI http://127.0.0.1:$UI_PORT, PostgreSQL 127.0.0.1:$PG_PORT, metrics http://127.0.0.1:$METRICS_PORT/metrics, state $STATE"
}

cmd_status() {
  local ok=0
  if [ ! -f "$MARKER" ]; then
    echo "down (no cluster in $STATE)"
    return 1
  fi
  if pg_running; then echo "postgresql  running  127.0.0.1:$PG_PORT"; else echo "postgresql  stopped"; ok=1; fi
  if alive "$STATE/server.pid"; then echo "server      running  pid $(cat "$STATE/server.pid")"; else echo "server      stopped"; ok=1; fi
  if frontend_answers; then echo "frontend    serving  $ADDRESS"; else echo "frontend    not answering at $ADDRESS"; ok=1; fi
  if alive "$STATE/ui.pid"; then echo "ui          running  http://127.0.0.1:$UI_PORT (pid $(cat "$STATE/ui.pid"))"; else echo "ui          stopped"; ok=1; fi
  return $ok
}

cmd_env() {
  echo "export TEMPORAL_ADDRESS=$ADDRESS"
  echo "export TEMPORAL_NAMESPACE=$NAMESPACE"
  echo "export TEMPORAL_UI_URL=http://127.0.0.1:$UI_PORT"
}

# stop PIDFILE NAME: SIGTERM, SIGKILL after 15 s.
stop_pid() {
  local file=$1 name=$2 pid i
  alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$file"
}

cmd_down() {
  if [ ! -e "$STATE" ]; then
    log "nothing to do ($STATE does not exist)"
    return 0
  fi
  [ -f "$MARKER" ] || die "$STATE is not a Ferry Temporal cluster; not touching it"
  stop_pid "$STATE/ui.pid" "the Web UI"
  stop_pid "$STATE/server.pid" "the Temporal server"
  if [ -n "$PG" ] && pg_running; then
    log "stopping PostgreSQL"
    as_pg "$PG/pg_ctl" -D "$STATE/pg" -m fast -w -t 60 stop >/dev/null
  fi
  rm -rf "$STATE"
  log "down: $STATE removed"
}

PG=$(pg_bin)
case "${1:-}" in
  up) cmd_up ;;
  status) cmd_status ;;
  env) cmd_env ;;
  down) cmd_down ;;
  *)
    echo "usage: $0 up|status|env|down" >&2
    exit 2
    ;;
esac
