#!/usr/bin/env bash
# The lab's two image registries, standing for the clusters' internal registries: Debian's
# docker-registry (the distribution registry 2.8) with TLS from a lab registry CA and
# htpasswd basic auth, one per cluster.
#
#   hack/lab/registry.sh up       start both (idempotent); needs hack/lab/apiserver.sh up (state dir)
#   hack/lab/registry.sh status
#   hack/lab/registry.sh down     stop them by pid (their data goes with the state dir)
#   hack/lab/registry.sh push     push the lab images (images.sh) into both registries
#
# Addresses (TLS is end to end; the relays only move bytes):
#   src  https://127.0.0.1:15000  from the host (the registry listens here)
#        https://10.250.0.21:5000 on the lab wire (ferry-lab-net; from both clusters' nodes and pods)
#   dst  https://127.0.0.1:25000  / https://10.250.0.22:5000
# The wire addresses exist only while hack/lab/node.sh has made the lab network (socat in
# ferry-lab-net -> unix socket -> socat in the root namespace -> the registry on loopback).
#
# Files for Ferry's plan (registry authFile / caFile) and for skopeo:
#   $STATE/registries/ca.crt             the lab registry CA
#   $STATE/registries/src/auth.json      containers-auth.json: user `ferry` for both src addresses
#   $STATE/registries/dst/auth.json      the same for dst
#   $STATE/registries/auth.json          both registries in one file
#   $STATE/registries/<c>/password       the plain password (user: ferry)
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${FERRY_LAB_STATE:-/var/lib/ferry-lab}
PKI=$STATE/pki
RUN=$STATE/run
LOGS=$STATE/logs
REG=$STATE/registries
SOCK_DIR=/run/ferry-lab
NET_NS=ferry-lab-net
CLUSTERS=(src dst)
declare -A HOST_PORT=([src]=${FERRY_LAB_SRC_REGISTRY_PORT:-15000} [dst]=${FERRY_LAB_DST_REGISTRY_PORT:-25000})
declare -A WIRE_IP=([src]=10.250.0.21 [dst]=10.250.0.22)
WIRE_PORT=5000
USER_NAME=ferry
STOP_GRACE=${FERRY_LAB_STOP_GRACE:-5}
# stop_procs: shared by apiserver.sh, node.sh and registry.sh (uses this script's alive, pidfile, log).
# shellcheck source=procs.sh
source "$LAB_DIR/procs.sh"
READY_TIMEOUT=${FERRY_LAB_READY_TIMEOUT:-60}

log() { printf '[lab-registry %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

host_addr() { echo "127.0.0.1:${HOST_PORT[$1]}"; }
wire_addr() { echo "${WIRE_IP[$1]}:$WIRE_PORT"; }

# --------------------------------------------------------------- PKI -------------
ensure_pki() {
  mkdir -p "$PKI" "$REG"
  if [[ ! -s $PKI/registry-ca.crt ]]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/registry-ca.key" 2>/dev/null
    openssl req -x509 -new -key "$PKI/registry-ca.key" -subj "/CN=ferry-lab-registry-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/registry-ca.crt" 2>/dev/null
  fi
  install -m 0644 "$PKI/registry-ca.crt" "$REG/ca.crt"
  local c d
  for c in "${CLUSTERS[@]}"; do
    d=$REG/$c
    mkdir -p "$d/data"
    [[ -s $d/tls.crt && -s $d/tls.key ]] && continue
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/tls.key" 2>/dev/null
    openssl req -new -key "$d/tls.key" -subj "/CN=registry.ferry-$c.lab" -out "$d/tls.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=DNS:localhost,DNS:registry.ferry-$c.lab,IP:127.0.0.1,IP:${WIRE_IP[$c]}" >"$d/tls.ext"
    openssl x509 -req -in "$d/tls.csr" -CA "$PKI/registry-ca.crt" -CAkey "$PKI/registry-ca.key" -CAcreateserial \
      -days 3650 -sha256 -extfile "$d/tls.ext" -out "$d/tls.crt" 2>/dev/null
    rm -f "$d/tls.csr" "$d/tls.ext"
    chmod 600 "$d/tls.key"
  done
}

ensure_auth() {
  local c d pw a all=""
  for c in "${CLUSTERS[@]}"; do
    d=$REG/$c
    [[ -s $d/password ]] || { openssl rand -hex 16 >"$d/password"; chmod 600 "$d/password"; }
    pw=$(<"$d/password")
    [[ -s $d/htpasswd ]] || htpasswd -Bbn "$USER_NAME" "$pw" >"$d/htpasswd" 2>/dev/null
    a=$(printf '%s:%s' "$USER_NAME" "$pw" | base64 -w0)
    printf '{"auths":{"%s":{"auth":"%s"},"%s":{"auth":"%s"}}}\n' "$(host_addr "$c")" "$a" "$(wire_addr "$c")" "$a" >"$d/auth.json"
    all+="${all:+,}$(printf '"%s":{"auth":"%s"},"%s":{"auth":"%s"}' "$(host_addr "$c")" "$a" "$(wire_addr "$c")" "$a")"
    chmod 600 "$d/auth.json" "$d/htpasswd"
  done
  printf '{"auths":{%s}}\n' "$all" >"$REG/auth.json"
  chmod 600 "$REG/auth.json"
}

write_config() { # cluster
  local c=$1 d=$REG/$1
  [[ -s $d/http-secret ]] || openssl rand -hex 16 >"$d/http-secret"
  cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  fields: {registry: ferry-lab-$c}
storage:
  filesystem: {rootdirectory: $d/data}
  delete: {enabled: true}
  maintenance:
    uploadpurging: {enabled: false}
http:
  addr: $(host_addr "$c")
  secret: $(<"$d/http-secret")
  tls:
    certificate: $d/tls.crt
    key: $d/tls.key
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: ferry-lab-$c
    path: $d/htpasswd
EOF
}

# --------------------------------------------------------- processes -------------
proc_bin() { case $1 in registry-*-relay*) echo socat ;; registry-*) echo docker-registry ;; esac; }
start_proc() { # name cmd...
  local name=$1; shift
  if alive "$name"; then return 0; fi
  log "starting $name"
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9<&- 8<&- &
  echo $! >"$(pidfile "$name")"
}

# healthy CLUSTER [ADDR]: an authenticated TLS request verified with the lab CA gets /v2/ 200
healthy() {
  local c=$1 addr=${2:-$(host_addr "$1")}
  curl -fsS --max-time 3 --cacert "$REG/ca.crt" -u "$USER_NAME:$(<"$REG/$c/password")" \
    "https://$addr/v2/" >/dev/null 2>&1
}
healthy_wire() { # cluster: from the other cluster's node namespace, over the lab wire
  local c=$1 other=dst
  [[ $c == dst ]] && other=src
  [[ -e /run/netns/ferry-lab-$other ]] || return 1
  nsenter --net="/run/netns/ferry-lab-$other" -- curl -fsS --max-time 3 --cacert "$REG/ca.crt" \
    -u "$USER_NAME:$(<"$REG/$c/password")" "https://$(wire_addr "$c")/v2/" >/dev/null 2>&1
}

wait_for() { # what cmd...
  local what=$1; shift
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 0.3
  done
}

cmd_up() {
  [[ -s $PKI/ca.crt ]] || die "run hack/lab/apiserver.sh up first (state dir $STATE)"
  command -v docker-registry >/dev/null || die "docker-registry missing: apt-get install docker-registry"
  command -v htpasswd >/dev/null || die "htpasswd missing: apt-get install apache2-utils"
  mkdir -p "$RUN" "$LOGS" "$SOCK_DIR"
  ensure_pki
  ensure_auth
  local c
  for c in "${CLUSTERS[@]}"; do
    write_config "$c"
    start_proc "registry-$c" docker-registry serve "$REG/$c/config.yml"
  done
  for c in "${CLUSTERS[@]}"; do wait_for "registry $c on $(host_addr "$c")" healthy "$c"; done
  if [[ -e /run/netns/$NET_NS ]]; then
    for c in "${CLUSTERS[@]}"; do
      # Read the addresses first: `ip … | grep -q` fails under pipefail when grep exits at the first
      # match while ip still writes (SIGPIPE), and the add then fails "Address already assigned".
      local addrs
      addrs=$(ip -n "$NET_NS" -4 -o addr show dev br0)
      [[ $addrs == *" ${WIRE_IP[$c]}/"* ]] || ip -n "$NET_NS" addr add "${WIRE_IP[$c]}/32" dev br0
      start_proc "registry-$c-relay-root" socat "UNIX-LISTEN:$SOCK_DIR/registry-$c.sock,fork,unlink-early,mode=600" \
        "TCP:$(host_addr "$c")"
      wait_for "relay socket registry-$c" test -S "$SOCK_DIR/registry-$c.sock"
      start_proc "registry-$c-relay-wire" nsenter --net="/run/netns/$NET_NS" -- socat \
        "TCP-LISTEN:$WIRE_PORT,bind=${WIRE_IP[$c]},fork,reuseaddr" "UNIX-CONNECT:$SOCK_DIR/registry-$c.sock"
    done
    for c in "${CLUSTERS[@]}"; do wait_for "registry $c on the wire ($(wire_addr "$c"))" healthy_wire "$c"; done
  else
    log "no lab network ($NET_NS): registries on the host addresses only (run hack/lab/node.sh up, then this again)"
  fi
  log "registries up: src https://$(host_addr src) / https://$(wire_addr src), dst https://$(host_addr dst) / https://$(wire_addr dst)"
}

# push the lab images into both registries (skipped when the registry already has the digest)
cmd_push() {
  local dir c name ref repo want have
  dir=$("$LAB_DIR/images.sh" --print-dir)
  for c in "${CLUSTERS[@]}"; do
    for name in transfer busybox; do
      for ref in $("$LAB_DIR/images.sh" --refs "$name"); do
        [[ $ref == docker.io/* ]] || continue
        repo=${ref#docker.io/}
        want=$(tar -xOf "$dir/$name.oci.tar" index.json | grep -o '"digest":"sha256:[0-9a-f]*"' | head -1 | cut -d'"' -f4)
        have=$( (skopeo inspect --raw --authfile "$REG/$c/auth.json" --cert-dir "$REG" \
          "docker://$(host_addr "$c")/$repo" 2>/dev/null || echo none) | sha256sum | cut -d' ' -f1)
        if [[ "sha256:$have" == "$want" ]]; then continue; fi
        skopeo copy --quiet --dest-authfile "$REG/$c/auth.json" --dest-cert-dir "$REG" \
          "oci-archive:$dir/$name.oci.tar:$ref" "docker://$(host_addr "$c")/$repo"
        log "pushed $repo to $c ($want)"
      done
    done
  done
}

cmd_down() {
  [[ -d $RUN ]] || return 0
  stop_procs registry-src-relay-wire registry-dst-relay-wire registry-src-relay-root registry-dst-relay-root \
    registry-src registry-dst
  rm -f "$SOCK_DIR"/registry-*.sock
}

cmd_status() {
  local c rc=0 state
  for c in "${CLUSTERS[@]}"; do
    if ! alive "registry-$c"; then state="not running"; rc=1
    elif healthy "$c"; then state="healthy"
    else state="UNHEALTHY"; rc=1; fi
    printf '%-22s pid %-8s %s  https://%s\n' "registry-$c" "$(cat "$(pidfile "registry-$c")" 2>/dev/null || echo -)" "$state" "$(host_addr "$c")"
    if healthy_wire "$c"; then state="healthy (from the other cluster's node)"; else state="UNREACHABLE"; rc=1; fi
    printf '%-22s %-12s %s  https://%s\n' "registry-$c (wire)" "" "$state" "$(wire_addr "$c")"
  done
  echo "registry CA:   $REG/ca.crt"
  for c in "${CLUSTERS[@]}"; do echo "auth $c:      $REG/$c/auth.json (user $USER_NAME, password in $REG/$c/password)"; done
  echo "auth both:     $REG/auth.json"
  return $rc
}

case "${1:-}" in
  up) cmd_up ;;
  push) cmd_push ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|push|status|down" >&2; exit 2 ;;
esac
