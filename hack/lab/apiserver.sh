#!/usr/bin/env bash
# Lightweight control plane for Ferry's tests: ONE etcd, TWO kube-apiservers ("src" and
# "dst", separate --etcd-prefix, separate secure ports on 127.0.0.1) and one
# kube-controller-manager per apiserver. No nodes: pods are never run.
#
#   hack/lab/apiserver.sh up       start (idempotent: running healthy components are kept)
#   hack/lab/apiserver.sh status   health of every component (exit 1 if any is unhealthy)
#   hack/lab/apiserver.sh down     stop everything by pid and remove the state dir
#   hack/lab/apiserver.sh env      print `export KUBECONFIG=...` for the lab
#
# Environment:
#   FERRY_LAB_STATE   state dir (default /var/lib/ferry-lab): pki/, etcd data, logs/, run/*.pid,
#                     kubeconfig (contexts ferry-src, ferry-dst), src.kubeconfig, dst.kubeconfig
#   FERRY_LAB_BIN     directory with etcd/kube-apiserver/kube-controller-manager
#                     (default: built/cached by hack/lab/build-binaries.sh)
#   FERRY_LAB_ETCD_PORT (23790)  FERRY_LAB_SRC_PORT (16443)  FERRY_LAB_DST_PORT (26443)
#   FERRY_LAB_SRC_KCM_PORT (16257)  FERRY_LAB_DST_KCM_PORT (26257)
#   FERRY_LAB_KEEP=1  with `down`: stop processes but keep the state dir (certs, etcd data)
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${FERRY_LAB_STATE:-/var/lib/ferry-lab}
PKI=$STATE/pki
RUN=$STATE/run
LOGS=$STATE/logs
ETCD_PORT=${FERRY_LAB_ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_PORT + 10))
declare -A API_PORT=([src]=${FERRY_LAB_SRC_PORT:-16443} [dst]=${FERRY_LAB_DST_PORT:-26443})
declare -A KCM_PORT=([src]=${FERRY_LAB_SRC_KCM_PORT:-16257} [dst]=${FERRY_LAB_DST_KCM_PORT:-26257})
# Service ranges are API-level allocations only here (no node, no proxy, no traffic).
declare -A SVC_CIDR=([src]=10.96.0.0/16 [dst]=10.112.0.0/16)
declare -A SVC_API_IP=([src]=10.96.0.1 [dst]=10.112.0.1)
# The `kubernetes` Service's endpoint: the apiservers listen on 127.0.0.1 only, but advertise
# this address of the lab wire (br0 in ferry-lab-net), where hack/lab/node.sh relays
# <ip>:<api port> to them, so pods reach the API through the Service. Without nodes nothing
# listens there (and nothing in the root namespace routes to it).
ADVERTISE_IP=${FERRY_LAB_ADVERTISE_IP:-10.250.0.1}
CLUSTERS=(src dst)
READY_TIMEOUT=${FERRY_LAB_READY_TIMEOUT:-90}
STOP_GRACE=${FERRY_LAB_STOP_GRACE:-5}
# stop_procs: shared by apiserver.sh, node.sh and registry.sh (uses this script's alive, pidfile, log).
# shellcheck source=procs.sh
source "$LAB_DIR/procs.sh"

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

bin_dir() {
  if [[ -n ${FERRY_LAB_BIN:-} ]]; then echo "$FERRY_LAB_BIN"; return; fi
  "$LAB_DIR/build-binaries.sh" --print-bin-dir
}

ensure_bins() {
  BIN=$(bin_dir)
  local b missing=0
  for b in etcd kube-apiserver kube-controller-manager; do [[ -x $BIN/$b ]] || missing=1; done
  if [[ $missing == 1 ]]; then
    [[ -n ${FERRY_LAB_BIN:-} ]] && die "FERRY_LAB_BIN=$FERRY_LAB_BIN lacks etcd/kube-apiserver/kube-controller-manager"
    log "binaries missing in $BIN; running hack/lab/build-binaries.sh (cold: tens of minutes)"
    "$LAB_DIR/build-binaries.sh" >&2
  fi
}

# ---------------------------------------------------------------- PKI ----------
gen_ca() { # name CN
  [[ -s $PKI/$1.crt ]] && return 0
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$1.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/$1.crt" 2>/dev/null
}

gen_cert() { # name subj extfile-content [ca-name]
  local name=$1 subj=$2 ext=$3 ca=${4:-ca}
  [[ -s $PKI/$name.crt && -s $PKI/$name.key ]] && return 0
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

ensure_pki() {
  mkdir -p "$PKI" && chmod 700 "$PKI"
  gen_ca ca ferry-lab-ca
  # front-proxy (request-header) CA: lets the apiserver publish a complete
  # extension-apiserver-authentication configmap (the controller-managers read it)
  gen_ca front-proxy-ca ferry-lab-front-proxy-ca
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  gen_cert admin "/O=system:masters/CN=ferry-admin" "$client"
  gen_cert kcm "/CN=system:kube-controller-manager" "$client"
  gen_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  gen_cert front-proxy-client "/CN=front-proxy-client" "$client" front-proxy-ca
  local c
  for c in "${CLUSTERS[@]}"; do
    gen_cert "apiserver-$c" "/CN=kube-apiserver-$c" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:${SVC_API_IP[$c]}"
    if [[ ! -s $PKI/sa-$c.key ]]; then
      openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa-$c.key" 2>/dev/null
      openssl pkey -in "$PKI/sa-$c.key" -pubout -out "$PKI/sa-$c.pub" 2>/dev/null
    fi
  done
  chmod 600 "$PKI"/*.key
}

b64() { base64 -w0 <"$1"; }

write_kubeconfigs() {
  local ca admc admk c
  ca=$(b64 "$PKI/ca.crt")
  admc=$(b64 "$PKI/admin.crt"); admk=$(b64 "$PKI/admin.key")
  {
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    for c in "${CLUSTERS[@]}"; do
      echo "- name: ferry-$c"
      echo "  cluster: {server: 'https://127.0.0.1:${API_PORT[$c]}', certificate-authority-data: $ca}"
    done
    echo "users:"
    echo "- name: ferry-admin"
    echo "  user: {client-certificate-data: $admc, client-key-data: $admk}"
    echo "contexts:"
    for c in "${CLUSTERS[@]}"; do
      echo "- name: ferry-$c"
      echo "  context: {cluster: ferry-$c, user: ferry-admin}"
    done
    echo "current-context: ferry-src"
  } >"$STATE/kubeconfig.tmp"
  mv "$STATE/kubeconfig.tmp" "$STATE/kubeconfig"
  for c in "${CLUSTERS[@]}"; do
    # single-context files: for the test harness and for the controller-managers
    kc_single "$c" admin >"$STATE/$c.kubeconfig"
    kc_single "$c" kcm >"$RUN/kcm-$c.kubeconfig"
  done
  chmod 600 "$STATE"/*.kubeconfig "$STATE/kubeconfig" "$RUN"/*.kubeconfig
}

kc_single() { # cluster certname
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ferry-$1
  cluster: {server: 'https://127.0.0.1:${API_PORT[$1]}', certificate-authority-data: $(b64 "$PKI/ca.crt")}
users:
- name: $2
  user: {client-certificate-data: $(b64 "$PKI/$2.crt"), client-key-data: $(b64 "$PKI/$2.key")}
contexts:
- name: ferry-$1
  context: {cluster: ferry-$1, user: $2}
current-context: ferry-$1
EOF
}

# ------------------------------------------------------------ processes --------
# pidfile NAME, alive NAME (the process is the binary we started): procs.sh
proc_bin() { case $1 in etcd) echo etcd ;; apiserver-*) echo kube-apiserver ;; kcm-*) echo kube-controller-manager ;; esac; }

start_proc() { # name binary args...
  local name=$1 bin=$2; shift 2
  if alive "$name"; then
    # Running: healthy (keep it), still starting (wait), or shutting down (wait, then restart).
    if settle "$name"; then log "$name already running (pid $(<"$(pidfile "$name")"))"; return 0; fi
    log "$name (pid $(<"$(pidfile "$name")")) exited while we waited; restarting it"
  fi
  log "starting $name"
  # setsid: own session so the lab survives the caller's shell; stdin from /dev/null;
  # 9<&-: do not hand the up/down lock to the daemon
  setsid "$BIN/$bin" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9<&- &
  echo $! >"$(pidfile "$name")"
}

curl_ok() { curl -fsS --max-time 3 "$@" >/dev/null 2>&1; }

healthy() { # name
  case $1 in
    etcd) curl_ok "http://127.0.0.1:$ETCD_PORT/health" ;;
    apiserver-*) curl_ok --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      "https://127.0.0.1:${API_PORT[${1#apiserver-}]}/readyz" ;;
    kcm-*) curl_ok -k "https://127.0.0.1:${KCM_PORT[${1#kcm-}]}/healthz" ;;
  esac
}

# settle NAME: wait until a running process is healthy (0) or gone (1)
settle() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  while alive "$1"; do
    healthy "$1" && return 0
    ((SECONDS < deadline)) || die "$1 (pid $(<"$(pidfile "$1")")) is running but not healthy after ${READY_TIMEOUT}s; log: $LOGS/$1.log"
    sleep 0.3
  done
  return 1
}

wait_healthy() { # name
  local deadline=$((SECONDS + READY_TIMEOUT))
  until healthy "$1"; do
    alive "$1" || { tail -n 30 "$LOGS/$1.log" >&2; die "$1 exited; log: $LOGS/$1.log"; }
    ((SECONDS < deadline)) || { tail -n 30 "$LOGS/$1.log" >&2; die "$1 not healthy after ${READY_TIMEOUT}s; log: $LOGS/$1.log"; }
    sleep 0.3
  done
}

start_etcd() {
  mkdir -p "$STATE/etcd" && chmod 700 "$STATE/etcd"
  start_proc etcd etcd \
    --name ferry-lab --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "ferry-lab=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes $((2 * 1024 * 1024 * 1024)) --log-level warn
}

start_apiserver() { # cluster
  local c=$1
  start_proc "apiserver-$c" kube-apiserver \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" --etcd-prefix "/ferry-$c" \
    --bind-address 127.0.0.1 --secure-port "${API_PORT[$c]}" \
    --advertise-address "$ADVERTISE_IP" --endpoint-reconciler-type lease \
    --tls-cert-file "$PKI/apiserver-$c.crt" --tls-private-key-file "$PKI/apiserver-$c.key" \
    --client-ca-file "$PKI/ca.crt" \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --egress-selector-config-file "$RUN/egress-selector.yaml" \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local/ferry-$c" \
    --service-account-key-file "$PKI/sa-$c.pub" --service-account-signing-key-file "$PKI/sa-$c.key" \
    --api-audiences "https://kubernetes.default.svc.cluster.local/ferry-$c" \
    --authorization-mode Node,RBAC --anonymous-auth=false \
    --allow-privileged=true \
    --service-cluster-ip-range "${SVC_CIDR[$c]}" --service-node-port-range 30000-32767 \
    --enable-admission-plugins NodeRestriction \
    --profiling=false --v 1
}

start_kcm() { # cluster
  local c=$1
  mkdir -p "$RUN/kcm-$c-certs"
  start_proc "kcm-$c" kube-controller-manager \
    --kubeconfig "$RUN/kcm-$c.kubeconfig" \
    --authentication-kubeconfig "$RUN/kcm-$c.kubeconfig" --authorization-kubeconfig "$RUN/kcm-$c.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "${KCM_PORT[$c]}" --cert-dir "$RUN/kcm-$c-certs" \
    --leader-elect=false --cluster-name "ferry-$c" \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI/sa-$c.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range "${SVC_CIDR[$c]}" \
    --controllers '*' --profiling=false --v 1
}

cmd_up() {
  local t0=$SECONDS
  ensure_bins
  mkdir -p "$STATE" "$RUN" "$LOGS"
  chmod 700 "$STATE"
  ensure_pki
  write_kubeconfigs
  # apiserver -> nodes/pods/services ("cluster" egress) goes only through the lab's
  # egress proxy (started by hack/lab/node.sh inside the lab's network namespace); with
  # no nodes the socket does not exist and such requests fail instead of leaving via
  # the root namespace's routes.
  cat >"$RUN/egress-selector.yaml" <<EOF
apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: $RUN/egress.sock
EOF
  start_etcd
  wait_healthy etcd
  local c
  for c in "${CLUSTERS[@]}"; do start_apiserver "$c"; done
  for c in "${CLUSTERS[@]}"; do wait_healthy "apiserver-$c"; done
  for c in "${CLUSTERS[@]}"; do start_kcm "$c"; done
  for c in "${CLUSTERS[@]}"; do wait_healthy "kcm-$c"; done
  # The default ServiceAccount appears once the controller-manager's serviceaccount
  # controller has run; tests that create pods-to-be need it, so wait for it here.
  for c in "${CLUSTERS[@]}"; do
    local deadline=$((SECONDS + READY_TIMEOUT))
    until curl_ok --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      "https://127.0.0.1:${API_PORT[$c]}/api/v1/namespaces/default/serviceaccounts/default"; do
      ((SECONDS < deadline)) || die "default ServiceAccount never appeared in $c (see $LOGS/kcm-$c.log)"
      sleep 0.3
    done
  done
  log "lab up in $((SECONDS - t0))s; KUBECONFIG=$STATE/kubeconfig (contexts ferry-src, ferry-dst)"
}


cmd_down() {
  # nodes first (hack/lab/node.sh), if any were started on this lab
  if [[ -d $STATE/nodes || -e /run/netns/ferry-lab-net ]]; then
    FERRY_LAB_LOCKED=1 "$LAB_DIR/node.sh" down
  fi
  if [[ -d $RUN ]]; then
    stop_procs kcm-src kcm-dst
    stop_procs apiserver-src apiserver-dst
    stop_procs etcd
  fi
  if [[ ${FERRY_LAB_KEEP:-0} != 1 && -d $STATE ]]; then
    rm -rf "$STATE"
    log "removed $STATE"
  fi
}

cmd_status() {
  local rc=0 n pid state
  [[ -d $RUN ]] || { echo "lab is down (no $RUN)"; return 1; }
  for n in etcd apiserver-src apiserver-dst kcm-src kcm-dst; do
    pid=-
    [[ -s $(pidfile "$n") ]] && pid=$(<"$(pidfile "$n")")
    if ! alive "$n"; then state="not running"; rc=1
    elif healthy "$n"; then state="healthy"
    else state="UNHEALTHY"; rc=1; fi
    printf '%-15s pid %-8s %s\n' "$n" "$pid" "$state"
  done
  if [[ $rc == 0 ]]; then
    for c in "${CLUSTERS[@]}"; do
      printf 'readyz %-4s https://127.0.0.1:%s: %s\n' "$c" "${API_PORT[$c]}" \
        "$(curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
          "https://127.0.0.1:${API_PORT[$c]}/readyz")"
    done
    echo "KUBECONFIG=$STATE/kubeconfig (contexts ferry-src, ferry-dst)"
  fi
  return $rc
}

# lock (procs.sh) serialises concurrent up/down (e.g. two test runners).
case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  env) echo "export KUBECONFIG=$STATE/kubeconfig" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
