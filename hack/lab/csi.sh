#!/usr/bin/env bash
# The lab's CSI stack, per cluster (src, dst), on top of `node.sh up` (hack/lab/lab.sh calls it):
#
#   snapshot CRDs (external-snapshotter client/v8 config/crd)        cluster-wide
#   upstream RBAC of the three kubernetes-csi components              ServiceAccounts in kube-system
#   snapshot-controller      (external-snapshotter)                   process, its ServiceAccount's token
#   csi-provisioner          (external-provisioner)      sidecar      process, its ServiceAccount's token
#   csi-snapshotter          (external-snapshotter)      sidecar      process, its ServiceAccount's token
#   lab-csi-hostpath         the lab's CSI driver (controller + node) process, as root, beside the kubelet
#   lab-csi-registrar        kubelet plugin registration               process, <kubelet root>/plugins_registry
#   CSIDriver lab-hostpath.csi.ferry.local, StorageClass csi-hostpath (not default),
#   VolumeSnapshotClass csi-hostpath-snapclass, VolumeGroupSnapshotClass csi-hostpath-groupsnapclass
#   (both the driver's default class, as a real install marks them)
#
# All of them are processes in the root network and mount namespaces (the kubelet shares the
# mount namespace; unix sockets do not care about network namespaces), started like the lab's
# other components: pid files under $STATE/run, logs under $STATE/logs. The three kubernetes-csi
# components authenticate with their ServiceAccounts' tokens and are authorized by their
# upstream RBAC, as in-cluster pods would be.
#
#   hack/lab/csi.sh up | status | down
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${FERRY_LAB_STATE:-/var/lib/ferry-lab}
RUN=$STATE/run
LOGS=$STATE/logs
PKI=$STATE/pki
CLUSTERS=(src dst)
declare -A API_PORT=([src]=${FERRY_LAB_SRC_PORT:-16443} [dst]=${FERRY_LAB_DST_PORT:-26443})
DRIVER=lab-hostpath.csi.ferry.local
SA_NS=kube-system
STOP_GRACE=${FERRY_LAB_STOP_GRACE:-5}
READY_TIMEOUT=${FERRY_LAB_READY_TIMEOUT:-120}
# shellcheck source=procs.sh
source "$LAB_DIR/procs.sh"

log() { printf '[lab-csi %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
kc() { kubectl --kubeconfig "$STATE/kubeconfig" --context "ferry-$1" "${@:2}"; }
node_name() { echo "$1-node1"; }
kubelet_root() { echo "$STATE/nodes/$(node_name "$1")/kubelet"; }
csi_sock() { echo "$(kubelet_root "$1")/plugins/$DRIVER/csi.sock"; }

proc_bin() { # name -> binary
  case $1 in
    csi-driver-*) echo lab-csi-hostpath ;; csi-registrar-*) echo lab-csi-registrar ;;
    csi-provisioner-*) echo csi-provisioner ;; csi-snapshotter-*) echo csi-snapshotter ;;
    snapshot-controller-*) echo snapshot-controller ;;
  esac
}
start_proc() { # name binary args...: kept when running from this binary, restarted when from another build
  local name=$1 exe; shift
  if alive "$name"; then
    exe=$(readlink "/proc/$(<"$(pidfile "$name")")/exe" 2>/dev/null || true)
    [[ $exe == "$1" ]] && return 0
    log "$name runs ${exe% (deleted)}, not $1: restarting it"
    stop_procs "$name"
  fi
  log "starting $name"
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9<&- &
  echo $! >"$(pidfile "$name")"
}
PROCS() { local c; for c in "${CLUSTERS[@]}"; do echo "snapshot-controller-$c csi-provisioner-$c csi-snapshotter-$c csi-registrar-$c csi-driver-$c"; done; }

# kubeconfig with a ServiceAccount token (1 year), as a pod's projected token would give
sa_kubeconfig() { # cluster sa -> path
  local c=$1 sa=$2 f=$RUN/$2-$1.kubeconfig token
  if [[ ! -s $f ]]; then
    token=$(kc "$c" create token "$sa" -n "$SA_NS" --duration 8760h)
    cat >"$f" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ferry-$c
  cluster: {server: 'https://127.0.0.1:${API_PORT[$c]}', certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")}
users:
- name: $sa
  user: {token: $token}
contexts:
- name: ferry-$c
  context: {cluster: ferry-$c, user: $sa, namespace: $SA_NS}
current-context: ferry-$c
EOF
    chmod 600 "$f"
  fi
  echo "$f"
}

apply_objects() { # cluster
  local c=$1 f
  kc "$c" apply -f "$OUT/crds/" >/dev/null
  kc "$c" wait --for=condition=Established --timeout=60s \
    $(for f in "$OUT"/crds/*.yaml; do f=${f##*/}; f=${f%.yaml}; echo "crd/${f#*_}.${f%%_*}"; done) >/dev/null
  # upstream RBAC, its ServiceAccounts moved from `default` to kube-system (as its comments ask)
  for f in "$OUT"/rbac/*.yaml; do
    sed 's/namespace: default\b/namespace: kube-system/' "$f" | kc "$c" apply -n "$SA_NS" -f - >/dev/null
  done
  kc "$c" apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: $DRIVER
spec:
  attachRequired: false
  podInfoOnMount: false
  fsGroupPolicy: File
  volumeLifecycleModes: [Persistent]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: csi-hostpath
  annotations:
    description: "lab: CSI volumes (hack/lab/csi.sh): ext4 or raw block on a loop-attached image of the requested size; snapshots, clones"
provisioner: $DRIVER
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: false
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-hostpath-snapclass
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: "true"
driver: $DRIVER
deletionPolicy: Delete
---
apiVersion: groupsnapshot.storage.k8s.io/v1
kind: VolumeGroupSnapshotClass
metadata:
  name: csi-hostpath-groupsnapclass
  annotations:
    groupsnapshot.storage.kubernetes.io/is-default-class: "true"
driver: $DRIVER
deletionPolicy: Delete
EOF
}

cmd_up() {
  local t0=$SECONDS c n sock
  [[ -s $STATE/kubeconfig && -d $STATE/nodes ]] || die "run hack/lab/node.sh up first"
  OUT=${FERRY_LAB_CSI_DIR:-$("$LAB_DIR/build-csi.sh" --print-dir)}
  BIN=$OUT/bin
  [[ -x $BIN/lab-csi-hostpath && -s $OUT/crds/.done ]] || die "CSI binaries missing in $BIN: run hack/lab/build-csi.sh"
  for c in losetup mkfs.ext4 e2fsck resize2fs mount umount; do command -v $c >/dev/null || die "$c not installed"; done
  mkdir -p "$RUN" "$LOGS"
  for c in "${CLUSTERS[@]}"; do
    n=$(node_name "$c"); sock=$(csi_sock "$c")
    apply_objects "$c"
    start_proc "csi-driver-$c" "$BIN/lab-csi-hostpath" --endpoint "unix://$sock" --nodeid "$n" \
      --drivername "$DRIVER" --data-dir "$STATE/nodes/$n/csi-hostpath"
    wait_for "csi-driver-$c socket" test -S "$sock"
    start_proc "csi-registrar-$c" "$BIN/lab-csi-registrar" --csi-address "$sock" \
      --kubelet-registration-path "$sock" --plugin-registration-path "$(kubelet_root "$c")/plugins_registry"
    start_proc "csi-provisioner-$c" "$BIN/csi-provisioner" --csi-address "$sock" \
      --kubeconfig "$(sa_kubeconfig "$c" csi-provisioner)" --extra-create-metadata --timeout 120s --v 2
    start_proc "csi-snapshotter-$c" "$BIN/csi-snapshotter" --csi-address "$sock" \
      --kubeconfig "$(sa_kubeconfig "$c" csi-snapshotter)" --extra-create-metadata --timeout 120s --v 2
    start_proc "snapshot-controller-$c" "$BIN/snapshot-controller" \
      --kubeconfig "$(sa_kubeconfig "$c" snapshot-controller)" --v 2
  done
  for c in "${CLUSTERS[@]}"; do
    wait_for "$DRIVER registered on $(node_name "$c") (CSINode; $LOGS/csi-registrar-$c.log)" registered "$c"
    local p
    for p in $(PROCS | tr ' ' '\n' | grep -- "-$c\$"); do alive "$p" || { tail -n 20 "$LOGS/$p.log" >&2; die "$p exited"; }; done
  done
  log "CSI up in $((SECONDS - t0))s (driver $DRIVER, StorageClass csi-hostpath, VolumeSnapshotClass csi-hostpath-snapclass, VolumeGroupSnapshotClass csi-hostpath-groupsnapclass)"
}

registered() { # cluster
  kc "$1" get csinode "$(node_name "$1")" -o jsonpath='{.spec.drivers[*].name}' 2>/dev/null | grep -qw "$DRIVER"
}

cmd_down() {
  [[ -d $RUN ]] || return 0
  # sidecars and controller first, the driver last (the kubelet's pods are gone by then or get
  # their mounts removed by node.sh down); its loop devices and mounts under the state dir are
  # released by node.sh / lab.sh down
  # shellcheck disable=SC2046
  stop_procs $(PROCS | tr ' ' '\n' | grep -v -e '^csi-driver-' -e '^csi-registrar-')
  # shellcheck disable=SC2046
  stop_procs $(PROCS | tr ' ' '\n' | grep -e '^csi-registrar-' -e '^csi-driver-')
  rm -f "$RUN"/csi-provisioner-*.kubeconfig "$RUN"/csi-snapshotter-*.kubeconfig "$RUN"/snapshot-controller-*.kubeconfig
}

# cheap: pid checks + one CSINode read and one CRD list per cluster
cmd_status() {
  local rc=0 c p line
  for c in "${CLUSTERS[@]}"; do
    line=""
    for p in csi-driver csi-registrar csi-provisioner csi-snapshotter snapshot-controller; do
      if alive "$p-$c"; then line+="$p(pid $(<"$(pidfile "$p-$c")")) "; else line+="$p(NOT RUNNING) "; rc=1; fi
    done
    local crds reg=registered
    registered "$c" || { reg="NOT registered"; rc=1; }
    crds=$(kc "$c" get crd -o name 2>/dev/null | grep -c 'snapshot.storage.k8s.io' || true)
    ((crds >= 6)) || rc=1
    printf '%s: %s\n     driver %s %s on %s, snapshot CRDs %s\n' "$c" "${line% }" "$DRIVER" "$reg" "$(node_name "$c")" "$crds"
  done
  return $rc
}


case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
