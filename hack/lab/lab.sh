#!/usr/bin/env bash
# The lab, in one command: two real single-node Kubernetes clusters ("src", "dst") on this
# machine, with LoadBalancer IPs, dynamically provisioned size-limited volumes and an image
# registry each.
#
#   hack/lab/lab.sh up       install missing Debian packages, build binaries (cached), the CSI
#                            stack (cached), traefik (cached) and images (cached), start control
#                            planes, nodes, registries, the lab controllers, the CSI stack (csi.sh)
#                            the dst Gateway (gateway.sh: traefik, Gateway API) and the dst
#                            Ingress controller (ingress.sh: traefik's Ingress NGINX provider,
#                            IngressClass nginx, ssl-passthrough), push the images; idempotent
#                            (a running lab is kept)
#   hack/lab/lab.sh status   health of every component (exit 1 if anything is unhealthy)
#   hack/lab/lab.sh down     stop everything by pid; leaves no process, netns, mount, loop
#                            device, cgroup, iptables rule or veth behind (checked), no state dir
#   hack/lab/lab.sh env      print `export KUBECONFIG=...` and the registry settings
#   hack/lab/lab.sh openshift-apis on|off
#                            register / remove the route.openshift.io/v1 Route and
#                            image.openshift.io/v1 ImageStream CRDs in both clusters (off by
#                            default: with a Route API Ferry's endpoint type `auto` picks Route,
#                            and no router admits Routes in the lab)
#
# Environment: FERRY_LAB_STATE (/var/lib/ferry-lab), FERRY_LAB_CACHE (/var/cache/ferry-lab),
# FERRY_LAB_OPENSHIFT_APIS=1 (up also registers the OpenShift CRDs), FERRY_LAB_NO_APT=1 (never
# run apt-get; fail on a missing package instead), and the port variables of apiserver.sh.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${FERRY_LAB_STATE:-/var/lib/ferry-lab}
RUN=$STATE/run
LOGS=$STATE/logs
SOCK_DIR=/run/ferry-lab
CLUSTERS=(src dst)
declare -A LB_RANGE=([src]=10.250.0.100-10.250.0.149 [dst]=10.250.0.150-10.250.0.199)
PROVISIONER=ferry.local/lab-local
STOP_GRACE=${FERRY_LAB_STOP_GRACE:-5}
export FERRY_LAB_STATE=$STATE

# Debian packages the lab needs (command they provide, for the message)
PACKAGES=(
  containerd runc socat busybox-static iptables conntrack containernetworking-plugins
  debootstrap docker-registry skopeo apache2-utils openssl curl e2fsprogs util-linux mount
  iproute2 file tar gzip
)

# pidfile, lock (and alive, redefined below for the controllers)
# shellcheck source=procs.sh
source "$LAB_DIR/procs.sh"

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
node_name() { echo "$1-node1"; }
kc() { kubectl --kubeconfig "$STATE/kubeconfig" --context "ferry-$1" "${@:2}"; }

# ----------------------------------------------------------- packages ------------
ensure_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    [[ ${FERRY_LAB_NO_APT:-0} == 1 ]] && die "missing Debian packages: ${missing[*]} (FERRY_LAB_NO_APT=1)"
    log "installing Debian packages: ${missing[*]}"
    # no daemon of these packages may start on its own (containerd, docker-registry): the lab
    # runs its own instances; a policy-rc.d made here (and only then) tells invoke-rc.d so
    local policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } ||
      rc=$?
    [[ -n $policy ]] && rm -f "$policy"
    ((rc == 0)) || die "apt-get install ${missing[*]} failed"
  fi
  command -v go >/dev/null || die "go (>= 1.26) is needed to build the lab's binaries"
  command -v kubectl >/dev/null || die "kubectl (>= 1.23) is needed (this machine kind ships one in /usr/bin)"
}

# --------------------------------------------------------- controllers -----------
alive() { # name binary
  local f pid exe
  f=$(pidfile "$1"); [[ -s $f ]] || return 1
  pid=$(<"$f"); [[ -d /proc/$pid ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true); exe=${exe% (deleted)}
  [[ $exe == */$2 ]]
}

start_controllers() {
  local c n
  for c in "${CLUSTERS[@]}"; do
    n=controller-$c
    if alive "$n" lab-controller; then continue; fi
    log "starting $n (LoadBalancer ${LB_RANGE[$c]}, provisioner $PROVISIONER)"
    mkdir -p "$STATE/nodes/$(node_name "$c")/volumes"
    setsid "$BIN/lab-controller" --kubeconfig "$STATE/$c.kubeconfig" --node "$(node_name "$c")" \
      --netns "ferry-lab-$c" --iface eth0 --lb-range "${LB_RANGE[$c]}" \
      --volume-dir "$STATE/nodes/$(node_name "$c")/volumes" --provisioner "$PROVISIONER" \
      </dev/null >>"$LOGS/$n.log" 2>&1 9<&- &
    echo $! >"$(pidfile "$n")"
  done
  for c in "${CLUSTERS[@]}"; do
    local deadline=$((SECONDS + 60))
    until grep -q "lab-controller for node" "$LOGS/controller-$c.log" 2>/dev/null; do
      alive "controller-$c" lab-controller || { tail -n 20 "$LOGS/controller-$c.log" >&2; die "controller-$c exited"; }
      ((SECONDS < deadline)) || die "controller-$c did not sync in 60s ($LOGS/controller-$c.log)"
      sleep 0.3
    done
  done
}

stop_controllers() {
  local c pid i
  for c in "${CLUSTERS[@]}"; do
    alive "controller-$c" lab-controller || { rm -f "$(pidfile "controller-$c")"; continue; }
    pid=$(<"$(pidfile "controller-$c")")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_GRACE * 10; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    [[ -d /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$(pidfile "controller-$c")"
    log "stopped controller-$c (pid $pid)"
  done
}

apply_addons() {
  local c
  for c in "${CLUSTERS[@]}"; do
    kc "$c" apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: lab-local
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
    description: "lab: dynamic local volumes, one ext4 filesystem of the requested size per PV (hack/lab)"
provisioner: $PROVISIONER
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: false
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: lab-local-wait
  annotations:
    description: "lab: like lab-local, provisioned once a pod using the claim is scheduled"
provisioner: $PROVISIONER
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: false
EOF
  done
  if [[ ${FERRY_LAB_OPENSHIFT_APIS:-0} == 1 ]]; then openshift_apis on; fi
}

openshift_apis() { # on|off
  local c
  for c in "${CLUSTERS[@]}"; do
    if [[ $1 == on ]]; then
      kc "$c" apply -f "$LAB_DIR/crds/openshift.yaml" >/dev/null
      kc "$c" wait --for=condition=Established --timeout=60s crd/routes.route.openshift.io crd/imagestreams.image.openshift.io >/dev/null
      log "$c: route.openshift.io/v1 Route and image.openshift.io/v1 ImageStream registered (CRDs; no router admits Routes)"
    else
      kc "$c" delete --ignore-not-found -f "$LAB_DIR/crds/openshift.yaml" >/dev/null
      log "$c: OpenShift CRDs removed"
    fi
  done
}

# ------------------------------------------------------------- commands ----------
phase() { local name=$1 t=$SECONDS; shift; "$@"; log "phase $name: $((SECONDS - t))s"; }

cmd_up() {
  local t0=$SECONDS
  phase packages ensure_packages
  phase binaries bash -c '"$1" >&2' _ "$LAB_DIR/build-binaries.sh"
  phase csi-build bash -c '"$1" >&2' _ "$LAB_DIR/build-csi.sh"
  phase gateway-build bash -c '"$1" >&2' _ "$LAB_DIR/build-gateway.sh"
  BIN=${FERRY_LAB_BIN:-$("$LAB_DIR/build-binaries.sh" --print-bin-dir)}
  phase images bash -c '"$1" >/dev/null' _ "$LAB_DIR/images.sh"
  export FERRY_LAB_LOCKED=1
  phase control-planes "$LAB_DIR/apiserver.sh" up
  mkdir -p "$RUN" "$LOGS"
  phase registries "$LAB_DIR/registry.sh" up     # host side; makes the credentials the nodes use
  phase nodes "$LAB_DIR/node.sh" up
  phase registries-wire "$LAB_DIR/registry.sh" up
  phase controllers start_controllers
  phase addons apply_addons
  phase csi "$LAB_DIR/csi.sh" up
  phase gateway "$LAB_DIR/gateway.sh" up
  phase ingress "$LAB_DIR/ingress.sh" up
  phase push "$LAB_DIR/registry.sh" push
  log "lab up in $((SECONDS - t0))s"
  cmd_status
}

# lab_loop DEV|PATH: DEV is still attached to PATH, or to "/" (PATH's mount lazily unmounted)
lab_loop() {
  local f=/sys/block/${1%%|*}/loop/backing_file b
  f=${f/\/dev\//}
  [[ -e $f ]] || return 1
  b=$(<"$f"); b=${b% (deleted)}
  [[ $b == "${1#*|}" || $b == / ]]
}

leftovers() { # what would make `down` incomplete
  local n
  for n in "$RUN"/*.pid; do
    [[ -s $n ]] && [[ -d /proc/$(<"$n") ]] && echo "process $(basename "$n" .pid) (pid $(<"$n"))"
  done
  for n in /run/netns/ferry-lab-*; do [[ -e $n ]] && echo "netns ${n##*/}"; done
  awk '{print $2}' /proc/self/mounts | grep -E "^($STATE|$SOCK_DIR)(/|$)" | sed 's/^/mount /' || true
  losetup -a 2>/dev/null | grep -F "$STATE/" | sed 's/^/loop /' || true
  for n in ${LAB_LOOPS:-}; do lab_loop "$n" && echo "loop ${n%%|*} (was ${n#*|})"; done
  pgrep -f "containerd-shim-runc-v2 .*-address $SOCK_DIR/" | sed 's/^/shim pid /' || true
  local d
  for d in /sys/fs/cgroup/*/ferry-lab-*; do [[ -d $d ]] && echo "cgroup $d"; done
  ip -o link show 2>/dev/null | grep -E ': (eth-(src|dst)|br0|cni0)[@:]' | sed 's/^/root-ns link /' || true
  iptables-save 2>/dev/null | grep -E 'KUBE-|CNI-|ferry' | head -3 | sed 's/^/root-ns iptables /' || true
  [[ -d $STATE ]] && echo "state dir $STATE"
  return 0
}

cmd_down() {
  local t0=$SECONDS
  export FERRY_LAB_LOCKED=1
  # the lab's loop devices, recorded before anything is unmounted: the kubelet's own loop device
  # over a Block PVC's device node (CSI volumeDevices) shows its backing file as "/" once that
  # node's bind mount is lazily unmounted, and it holds the driver's loop device open
  # (entries dev|backing-file, from sysfs: no spaces)
  local f
  LAB_LOOPS=""
  for f in /sys/block/loop*/loop/backing_file; do
    [[ -e $f && $(<"$f") == "$STATE/"* ]] && LAB_LOOPS+="/dev/$(basename "$(dirname "$(dirname "$f")")")|$(<"$f") "
  done
  if [[ -d $RUN ]]; then
    "$LAB_DIR/ingress.sh" down
    "$LAB_DIR/gateway.sh" down
    "$LAB_DIR/csi.sh" down
    stop_controllers
    "$LAB_DIR/registry.sh" down
  fi
  # node.sh down stops pods, kubelets, containerd, relays; unmounts what is under the state dir
  # (the volumes' loop mounts too: autoclear frees their loop devices)
  if [[ -d $STATE/nodes || -e /run/netns/ferry-lab-net ]]; then "$LAB_DIR/node.sh" down; fi
  local l
  # a busy device (held by another lab loop device) is set to autoclear and goes with its holder
  for l in $(losetup -a 2>/dev/null | grep -F "$STATE/" | cut -d: -f1); do losetup -d "$l" 2>/dev/null || true; done
  for l in $LAB_LOOPS; do lab_loop "$l" && { losetup -d "${l%%|*}" 2>/dev/null || true; }; done
  "$LAB_DIR/apiserver.sh" down
  local left
  left=$(leftovers)
  if [[ -n $left ]]; then
    log "down left these behind:"; echo "$left" >&2; exit 1
  fi
  log "lab down in $((SECONDS - t0))s; nothing left behind (processes, netns, mounts, loop devices, cgroups, links, iptables, state dir checked)"
}

cmd_status() {
  local rc=0 c
  echo "== control planes (hack/lab/apiserver.sh)"
  "$LAB_DIR/apiserver.sh" status || rc=1
  [[ -d $RUN ]] || return 1
  echo "== nodes (hack/lab/node.sh)"
  "$LAB_DIR/node.sh" status || rc=1
  echo "== registries (hack/lab/registry.sh)"
  "$LAB_DIR/registry.sh" status || rc=1
  echo "== lab controllers (LoadBalancer allocator + $PROVISIONER provisioner)"
  for c in "${CLUSTERS[@]}"; do
    if alive "controller-$c" lab-controller; then
      printf '%-16s pid %-8s running  LB range %s, volumes %s\n' "controller-$c" "$(<"$(pidfile "controller-$c")")" \
        "${LB_RANGE[$c]}" "$STATE/nodes/$(node_name "$c")/volumes"
    else
      printf '%-16s not running\n' "controller-$c"; rc=1
    fi
  done
  echo "== CSI (hack/lab/csi.sh: snapshot-controller, csi-provisioner, csi-snapshotter, lab-csi-hostpath, lab-csi-registrar)"
  "$LAB_DIR/csi.sh" status || rc=1
  echo "== Gateway API (hack/lab/gateway.sh: traefik in dst, Gateway ferry-gateway/lab-gateway, TLS passthrough)"
  "$LAB_DIR/gateway.sh" status || rc=1
  echo "== Ingress (hack/lab/ingress.sh: traefik's Ingress NGINX provider in dst, IngressClass nginx, ssl-passthrough)"
  "$LAB_DIR/ingress.sh" status || rc=1
  echo "== cluster add-ons"
  for c in "${CLUSTERS[@]}"; do
    local sc lbs pvs kube crds
    sc=$(kc "$c" get storageclass -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}{" "}{end}' 2>/dev/null |
      sed -e 's/=true/(default)/g' -e 's/=[a-z]*//g') || sc="?"
    lbs=$(kc "$c" get svc -A -o jsonpath='{range .items[?(@.spec.type=="LoadBalancer")]}{.metadata.namespace}/{.metadata.name}={.status.loadBalancer.ingress[0].ip} {end}' 2>/dev/null) || lbs="?"
    pvs=$(kc "$c" get pv -o name 2>/dev/null | wc -l)
    kube=$(kc "$c" get endpointslices -n default -l kubernetes.io/service-name=kubernetes -o jsonpath='{.items[0].endpoints[0].addresses[0]}:{.items[0].ports[0].port}' 2>/dev/null) || kube="?"
    crds=$(kc "$c" get crd -o name 2>/dev/null | grep -c openshift.io || true)
    [[ $sc == *"lab-local(default)"* ]] || { rc=1; sc+=" (lab-local NOT default)"; }
    printf '%s: storageclasses [%s], PVs %s, LoadBalancers [%s], kubernetes svc -> %s, OpenShift CRDs %s\n' \
      "$c" "${sc% }" "$pvs" "${lbs% }" "$kube" "$crds"
  done
  echo "KUBECONFIG=$STATE/kubeconfig (contexts ferry-src, ferry-dst)"
  echo "images: ferry/transfer:latest lab/workload:latest ferry.local/lab/busybox:1 (imported on both nodes; also in both registries)"
  return $rc
}

cmd_env() {
  cat <<EOF
export KUBECONFIG=$STATE/kubeconfig
# registries (user ferry): src https://127.0.0.1:15000 (lab wire 10.250.0.21:5000), dst https://127.0.0.1:25000 (10.250.0.22:5000)
export FERRY_LAB_REGISTRY_CA=$STATE/registries/ca.crt
export FERRY_LAB_SRC_REGISTRY_AUTH=$STATE/registries/src/auth.json
export FERRY_LAB_DST_REGISTRY_AUTH=$STATE/registries/dst/auth.json
EOF
}


case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  openshift-apis)
    [[ ${2:-} == on || ${2:-} == off ]] || { echo "usage: $0 openshift-apis on|off" >&2; exit 2; }
    openshift_apis "$2" ;;
  *) echo "usage: $0 up|down|status|env|openshift-apis on|off" >&2; exit 2 ;;
esac
