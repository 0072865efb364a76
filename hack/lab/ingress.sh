#!/usr/bin/env bash
# The lab's Ingress controller in the dst cluster, ingress-nginx compatible (SSL passthrough
# included), on top of `node.sh up` and the lab controllers (hack/lab/lab.sh calls it after
# gateway.sh; it can also be started alone on a running lab):
#
#   namespace ingress-nginx, ServiceAccount traefik-ingress-nginx-controller, traefik's upstream
#     RBAC for its Ingress NGINX provider (build-gateway.sh caches it)
#   IngressClass nginx (controller k8s.io/ingress-nginx: what the provider watches by default)
#   Service ingress-nginx/ingress-nginx-controller, type LoadBalancer, port 443 (https), no
#     selector; its EndpointSlice names traefik's socket $EP_IP:$EP_PORT. lab-controller gives
#     it an IP of dst's LoadBalancer range (10.250.0.150-199, on dst-node1's eth0) and kube-proxy
#     DNATs <that IP>:443 to the socket, as for any LoadBalancer Service.
#   traefik (the Gateway's binary, build-gateway.sh), a second process in dst-node1's network
#     namespace (ferry-lab-dst), its ServiceAccount's token, provider kubernetesIngressNGINX:
#     entryPoint websecure on $EP_IP:$EP_PORT (Ingress passthrough routers: HostSNI, TLS
#     passthrough), entryPoint web on the node namespace's loopback (the provider's plain-HTTP
#     routers; nothing outside reaches it), ping on loopback; publishService = the Service above,
#     so every Ingress of class nginx gets the Service's LoadBalancer IP in its status, as
#     ingress-nginx's --publish-service does.
#
# The process is started like the lab's other components: pid file under $STATE/run, log under
# $STATE/logs. Only dst has it (Ferry's endpoints live in the destination).
#
#   hack/lab/ingress.sh up | status | down | address
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${FERRY_LAB_STATE:-/var/lib/ferry-lab}
RUN=$STATE/run
LOGS=$STATE/logs
PKI=$STATE/pki
C=dst
NODE_NS=ferry-lab-dst
API_PORT=${FERRY_LAB_DST_PORT:-26443}
EP_IP=10.250.0.12 # dst-node1's eth0 on the lab wire: the Service's endpoint
EP_PORT=${FERRY_LAB_INGRESS_PORT:-10443}
WEB=127.0.0.1:${FERRY_LAB_INGRESS_WEB_PORT:-28081}   # plain-HTTP entryPoint, node netns loopback
PING=127.0.0.1:${FERRY_LAB_INGRESS_PING_PORT:-28082} # traefik's own entryPoint (ping), node netns loopback
IG_NS=ingress-nginx
SVC=ingress-nginx-controller
SA=traefik-ingress-nginx-controller
CLASS=nginx
CONTROLLER=k8s.io/ingress-nginx
PROC=ingress-$C
LOG_LEVEL=${FERRY_LAB_INGRESS_LOG_LEVEL:-DEBUG} # DEBUG: traefik logs each connection it passes on ("Handling TCP connection")
STOP_GRACE=${FERRY_LAB_STOP_GRACE:-5}
READY_TIMEOUT=${FERRY_LAB_READY_TIMEOUT:-120}
# shellcheck source=procs.sh
source "$LAB_DIR/procs.sh"

log() { printf '[lab-ingress %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
kc() { kubectl --kubeconfig "$STATE/kubeconfig" --context "ferry-$C" "$@"; }
proc_bin() { echo traefik; }
in_node() { nsenter --net="/run/netns/$NODE_NS" -- "$@"; }

apply_objects() {
  kc create namespace "$IG_NS" --dry-run=client -o yaml | kc apply -f - >/dev/null
  kc -n "$IG_NS" create serviceaccount "$SA" --dry-run=client -o yaml | kc apply -f - >/dev/null
  # upstream RBAC, its ServiceAccount moved from `default` to $IG_NS
  sed "s/namespace: default\b/namespace: $IG_NS/" "$OUT/rbac/ingress-nginx.yaml" | kc apply -f - >/dev/null
  kc apply -f - >/dev/null <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: $CLASS
  annotations:
    description: "lab: traefik's Ingress NGINX provider (ssl-passthrough honoured), hack/lab/ingress.sh"
spec:
  controller: $CONTROLLER
---
apiVersion: v1
kind: Service
metadata:
  name: $SVC
  namespace: $IG_NS
  annotations:
    description: "lab: the Ingress controller's address (traefik on $EP_IP:$EP_PORT in dst-node1's netns, hack/lab/ingress.sh)"
spec:
  type: LoadBalancer
  ports:
  - name: https
    protocol: TCP
    port: 443
    targetPort: $EP_PORT
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $SVC-node
  namespace: $IG_NS
  labels:
    kubernetes.io/service-name: $SVC
    endpointslice.kubernetes.io/managed-by: ferry-lab
addressType: IPv4
ports:
- name: https
  protocol: TCP
  port: $EP_PORT
endpoints:
- addresses: ["$EP_IP"]
  conditions: {ready: true}
EOF
}

lb_ip() { kc -n "$IG_NS" get svc "$SVC" -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null; }

token_file() { # the ServiceAccount's token (1 year), as a pod's projected token would give
  local f=$RUN/$PROC.token
  if [[ ! -s $f ]]; then
    (umask 077; kc -n "$IG_NS" create token "$SA" --duration 8760h >"$f")
  fi
  echo "$f"
}

# the whole path answers: <LB IP>:443 -> kube-proxy -> traefik, which terminates an unknown SNI
# with its default certificate and answers 404 (no Ingress for it)
path_ok() {
  local ip=$1
  [[ -n $ip ]] && [[ $(in_node curl -sk -m 3 -o /dev/null -w '%{http_code}' --resolve "lab-probe.invalid:443:$ip" https://lab-probe.invalid/) == 404 ]]
}

cmd_up() {
  local t0=$SECONDS exe ip
  [[ -s $STATE/kubeconfig && -e /run/netns/$NODE_NS ]] || die "run hack/lab/node.sh up first"
  OUT=${FERRY_LAB_GATEWAY_DIR:-$("$LAB_DIR/build-gateway.sh" --print-dir)}
  [[ -x $OUT/bin/traefik && -s $OUT/rbac/ingress-nginx.yaml ]] || die "traefik or its Ingress NGINX RBAC missing in $OUT: run hack/lab/build-gateway.sh"
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
    log "starting $PROC in $NODE_NS ($EP_IP:$EP_PORT, Service $IG_NS/$SVC)"
    # shellcheck disable=SC2094
    # Without KUBECONFIG (and the in-cluster variables): traefik's Kubernetes providers prefer them
    # to --providers.*.endpoint/token, and `npm run demo` exports KUBECONFIG, whose current
    # context is another cluster (traefik then waited on src, where no object of ours exists).
    setsid env -u KUBECONFIG -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT \
      nsenter --net="/run/netns/$NODE_NS" -- "$OUT/bin/traefik" \
      --global.checkNewVersion=false --global.sendAnonymousUsage=false \
      --log.level="$LOG_LEVEL" --log.noColor=true \
      --entryPoints.websecure.address="$EP_IP:$EP_PORT" \
      --entryPoints.web.address="$WEB" \
      --entryPoints.traefik.address="$PING" --ping=true --ping.entryPoint=traefik \
      --providers.kubernetesIngressNGINX=true \
      --providers.kubernetesIngressNGINX.endpoint="https://127.0.0.1:$API_PORT" \
      --providers.kubernetesIngressNGINX.token="$(token_file)" \
      --providers.kubernetesIngressNGINX.certAuthFilePath="$PKI/ca.crt" \
      --providers.kubernetesIngressNGINX.ingressClass="$CLASS" \
      --providers.kubernetesIngressNGINX.controllerClass="$CONTROLLER" \
      --providers.kubernetesIngressNGINX.publishService="$IG_NS/$SVC" \
      --providers.kubernetesIngressNGINX.httpsEntryPoint=websecure \
      --providers.kubernetesIngressNGINX.httpEntryPoint=web \
      </dev/null >>"$LOGS/$PROC.log" 2>&1 9<&- &
    echo $! >"$(pidfile "$PROC")"
  fi
  wait_for "$PROC ping ($LOGS/$PROC.log)" in_node curl -fsS "http://$PING/ping"
  wait_for "a LoadBalancer IP for $IG_NS/$SVC (lab-controller-dst)" lb_ip
  ip=$(lb_ip)
  wait_for "https://$ip:443 answered by traefik through kube-proxy ($LOGS/$PROC.log)" path_ok "$ip"
  log "Ingress controller up in $((SECONDS - t0))s (traefik $("$OUT/bin/traefik" version 2>/dev/null | sed -n 's/^Version:\s*//p'), IngressClass $CLASS, address $ip:443 -> $EP_IP:$EP_PORT)"
}

cmd_down() {
  [[ -d $RUN ]] || return 0
  stop_procs "$PROC"
  rm -f "$RUN/$PROC.token"
}

# cheap: pid + ping, the listening socket, the Service's LoadBalancer IP, one request through it
cmd_status() {
  local rc=0 line ip="" ctl
  if alive "$PROC"; then line="traefik(pid $(<"$(pidfile "$PROC")"))"; else line="traefik(NOT RUNNING)"; rc=1; fi
  if [[ -e /run/netns/$NODE_NS ]] && in_node curl -fsS -m 3 "http://$PING/ping" >/dev/null 2>&1; then line+=" ping ok"; else line+=" ping FAILED"; rc=1; fi
  if alive "$PROC" && in_node ss -Hltnp "sport = :$EP_PORT" 2>/dev/null | grep -q "$EP_IP:$EP_PORT .*pid=$(<"$(pidfile "$PROC")")[,)]"; then
    line+=", listening on $EP_IP:$EP_PORT"
  else line+=", NOT listening on $EP_IP:$EP_PORT"; rc=1; fi
  [[ -e /run/netns/$NODE_NS ]] && ip=$(lb_ip || true)
  if [[ -z $ip ]]; then line+=", Service $IG_NS/$SVC has no LoadBalancer IP"; rc=1
  elif path_ok "$ip"; then line+=", $ip:443 answers"
  else line+=", $ip:443 does NOT answer (404 from traefik expected)"; rc=1; fi
  ctl=$(kc get ingressclass "$CLASS" -o jsonpath='{.spec.controller}' 2>/dev/null || true)
  [[ $ctl == "$CONTROLLER" ]] || rc=1
  printf '%s: %s\n     IngressClass %s controller=%s\n' "$C" "$line" "$CLASS" "${ctl:-(not found)}"
  return $rc
}

case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  address) lb_ip; echo ;;
  *) echo "usage: $0 up|down|status|address" >&2; exit 2 ;;
esac
