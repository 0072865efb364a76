#!/usr/bin/env bash
# The lab's Gateway API implementation in the dst cluster, on top of `node.sh up` (hack/lab/lab.sh
# calls it after csi.sh; it can also be started alone on a running lab):
#
#   Gateway API standard-channel CRDs (sigs.k8s.io/gateway-api, the version traefik requires)
#   namespace ferry-gateway, ServiceAccount traefik-controller, traefik's upstream Gateway RBAC
#   traefik (build-gateway.sh)   process in dst-node1's network namespace (ferry-lab-dst), its
#                                ServiceAccount's token, provider kubernetesgateway; entryPoint
#                                `tls` on $GW_IP:$GW_PORT (the node IP: reachable from src pods)
#   GatewayClass traefik (controllerName traefik.io/gateway-controller)
#   Gateway ferry-gateway/lab-gateway: listener `tls`, protocol TLS, port $GW_PORT, hostname
#     *.gw.lab, tls.mode Passthrough, routes (TLSRoute) from all namespaces;
#     status.addresses = [$GW_IP] (traefik --providers.kubernetesgateway.statusAddress.ip)
#
# The process is started like the lab's other components: pid file under $STATE/run, log under
# $STATE/logs. Only dst has a Gateway (Ferry's endpoints live in the destination).
#
#   hack/lab/gateway.sh up | status | down
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${FERRY_LAB_STATE:-/var/lib/ferry-lab}
RUN=$STATE/run
LOGS=$STATE/logs
PKI=$STATE/pki
C=dst
NODE_NS=ferry-lab-dst
API_PORT=${FERRY_LAB_DST_PORT:-26443}
GW_IP=10.250.0.12 # dst-node1's eth0 on the lab wire
GW_PORT=${FERRY_LAB_GATEWAY_PORT:-443}
PING=127.0.0.1:${FERRY_LAB_GATEWAY_PING_PORT:-28080} # traefik's own entryPoint (ping), node netns loopback
GW_NS=ferry-gateway
SA=traefik-controller
PROC=traefik-$C
STOP_GRACE=${FERRY_LAB_STOP_GRACE:-5}
READY_TIMEOUT=${FERRY_LAB_READY_TIMEOUT:-120}
# shellcheck source=procs.sh
source "$LAB_DIR/procs.sh"

log() { printf '[lab-gateway %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
kc() { kubectl --kubeconfig "$STATE/kubeconfig" --context "ferry-$C" "$@"; }
proc_bin() { echo traefik; }
in_node() { nsenter --net="/run/netns/$NODE_NS" -- "$@"; }

apply_objects() {
  kc apply --server-side --force-conflicts --field-manager ferry-lab -f "$OUT/crds/" >/dev/null
  local f crds=()
  for f in "$OUT"/crds/gateway.networking.k8s.io_*.yaml; do f=${f##*/gateway.networking.k8s.io_}; crds+=("crd/${f%.yaml}.gateway.networking.k8s.io"); done
  kc wait --for=condition=Established --timeout=60s "${crds[@]}" >/dev/null
  kc create namespace "$GW_NS" --dry-run=client -o yaml | kc apply -f - >/dev/null
  kc -n "$GW_NS" create serviceaccount "$SA" --dry-run=client -o yaml | kc apply -f - >/dev/null
  # upstream RBAC, its ServiceAccount moved from `default` to $GW_NS
  sed "s/namespace: default\b/namespace: $GW_NS/" "$OUT/rbac/gateway.yaml" | kc apply -f - >/dev/null
  kc apply -f - >/dev/null <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: traefik
spec:
  controllerName: traefik.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: lab-gateway
  namespace: $GW_NS
  annotations:
    description: "lab: TLS passthrough by SNI for *.gw.lab on $GW_IP:$GW_PORT (traefik, hack/lab/gateway.sh)"
spec:
  gatewayClassName: traefik
  listeners:
  - name: tls
    protocol: TLS
    port: $GW_PORT
    hostname: "*.gw.lab"
    tls:
      mode: Passthrough
    allowedRoutes:
      namespaces:
        from: All
      kinds:
      - kind: TLSRoute
EOF
}

token_file() { # the ServiceAccount's token (1 year), as a pod's projected token would give
  local f=$RUN/$PROC.token
  if [[ ! -s $f ]]; then
    (umask 077; kc -n "$GW_NS" create token "$SA" --duration 8760h >"$f")
  fi
  echo "$f"
}

gateway_ready() { # the controller programmed lab-gateway and published its address
  [[ $(kc -n "$GW_NS" get gateway lab-gateway -o jsonpath='{.status.conditions[?(@.type=="Programmed")].status} {.status.addresses[0].value}') == "True $GW_IP" ]]
}

cmd_up() {
  local t0=$SECONDS exe
  [[ -s $STATE/kubeconfig && -e /run/netns/$NODE_NS ]] || die "run hack/lab/node.sh up first"
  OUT=${FERRY_LAB_GATEWAY_DIR:-$("$LAB_DIR/build-gateway.sh" --print-dir)}
  [[ -x $OUT/bin/traefik && -s $OUT/crds/.done && -s $OUT/rbac/gateway.yaml ]] || die "traefik missing in $OUT: run hack/lab/build-gateway.sh"
  mkdir -p "$RUN" "$LOGS"
  apply_objects
  if alive "$PROC"; then
    exe=$(readlink "/proc/$(<"$(pidfile "$PROC")")/exe" 2>/dev/null || true)
    if [[ $exe != "$OUT/bin/traefik" ]]; then log "$PROC runs ${exe% (deleted)}, not $OUT/bin/traefik: restarting it"; stop_procs "$PROC"
    elif started_with "$PROC" KUBECONFIG; then
      log "$PROC was started with KUBECONFIG set (it watches that kubeconfig's cluster, not dst): restarting it"; stop_procs "$PROC"
    fi
  fi
  if ! alive "$PROC"; then
    log "starting $PROC in $NODE_NS ($GW_IP:$GW_PORT)"
    # shellcheck disable=SC2094
    # Without KUBECONFIG (and the in-cluster variables): traefik's Kubernetes providers prefer them
    # to --providers.*.endpoint/token, and `npm run demo` exports KUBECONFIG, whose current
    # context is another cluster (traefik then waited on src, where no object of ours exists).
    setsid env -u KUBECONFIG -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT \
      nsenter --net="/run/netns/$NODE_NS" -- "$OUT/bin/traefik" \
      --global.checkNewVersion=false --global.sendAnonymousUsage=false \
      --log.level=INFO --log.noColor=true \
      --entryPoints.tls.address="$GW_IP:$GW_PORT" \
      --entryPoints.traefik.address="$PING" --ping=true --ping.entryPoint=traefik \
      --providers.kubernetesgateway=true \
      --providers.kubernetesgateway.endpoint="https://127.0.0.1:$API_PORT" \
      --providers.kubernetesgateway.token="$(token_file)" \
      --providers.kubernetesgateway.certAuthFilePath="$PKI/ca.crt" \
      --providers.kubernetesgateway.statusAddress.ip="$GW_IP" \
      </dev/null >>"$LOGS/$PROC.log" 2>&1 9<&- &
    echo $! >"$(pidfile "$PROC")"
  fi
  wait_for "$PROC ping ($LOGS/$PROC.log)" in_node curl -fsS "http://$PING/ping"
  wait_for "Gateway $GW_NS/lab-gateway Programmed with address $GW_IP ($LOGS/$PROC.log)" gateway_ready
  log "Gateway API up in $((SECONDS - t0))s (traefik $("$OUT/bin/traefik" version 2>/dev/null | sed -n 's/^Version:\s*//p'), Gateway $GW_NS/lab-gateway $GW_IP:$GW_PORT TLS Passthrough *.gw.lab)"
}

cmd_down() {
  [[ -d $RUN ]] || return 0
  stop_procs "$PROC"
  rm -f "$RUN/$PROC.token"
}

# cheap: pid + ping and the listening socket in the node namespace + one Gateway read
cmd_status() {
  local rc=0 line gw
  if alive "$PROC"; then line="traefik(pid $(<"$(pidfile "$PROC")"))"; else line="traefik(NOT RUNNING)"; rc=1; fi
  if [[ -e /run/netns/$NODE_NS ]] && in_node curl -fsS -m 3 "http://$PING/ping" >/dev/null 2>&1; then line+=" ping ok"; else line+=" ping FAILED"; rc=1; fi
  # the Gateway's address is traefik's own socket (nothing else, e.g. a kube-proxy rule, answers there)
  if alive "$PROC" && in_node ss -Hltnp "sport = :$GW_PORT" 2>/dev/null | grep -q "$GW_IP:$GW_PORT .*pid=$(<"$(pidfile "$PROC")")[,)]"; then
    line+=", listening on $GW_IP:$GW_PORT"
  else line+=", NOT listening on $GW_IP:$GW_PORT"; rc=1; fi
  gw=$(kc -n "$GW_NS" get gateway lab-gateway -o jsonpath='{.status.conditions[?(@.type=="Programmed")].status} {.status.addresses[0].value}:{.spec.listeners[0].port}' 2>/dev/null || true)
  [[ $gw == "True $GW_IP:$GW_PORT" ]] || rc=1
  printf '%s: %s\n     Gateway %s/lab-gateway Programmed=%s\n' "$C" "$line" "$GW_NS" "${gw:-(not found)}"
  return $rc
}

case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
