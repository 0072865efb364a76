#!/usr/bin/env bash
# EXPERIMENTAL next stage of the lab: one worker node per cluster (src, dst) on top of
# hack/lab/apiserver.sh. Each node is a network namespace of its own with containerd
# (Debian 1.6) + kubelet (+ kube-proxy); a kube-scheduler per cluster runs beside the
# apiservers. All addresses used are loopback or inside network namespaces made here.
#
#   hack/lab/node.sh up       needs `hack/lab/apiserver.sh up` first; idempotent
#   hack/lab/node.sh status
#   hack/lab/node.sh down     stops the node processes, deletes the namespaces and cgroups
#
# Network (all inside namespaces created by this script, nothing in the root namespace):
#   netns ferry-lab-net : bridge br0, the "physical" segment 10.250.0.0/24 between nodes
#   netns ferry-lab-src : node src-node1, eth0 10.250.0.11, pods 10.244.0.0/24 (bridge cni0)
#   netns ferry-lab-dst : node dst-node1, eth0 10.250.0.12, pods 10.245.0.0/24
# The kubelet/kube-proxy in a node namespace reach their apiserver at 127.0.0.1:<port> of
# that namespace through a socat relay over a unix socket (the apiservers listen on the
# root namespace's 127.0.0.1 only).
# Needs: apt-get install containerd runc socat busybox-static iptables conntrack
#        (containernetworking-plugins for /usr/lib/cni).
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${FERRY_LAB_STATE:-/var/lib/ferry-lab}
PKI=$STATE/pki
RUN=$STATE/run
LOGS=$STATE/logs
SOCK_DIR=/run/ferry-lab
declare -A API_PORT=([src]=${FERRY_LAB_SRC_PORT:-16443} [dst]=${FERRY_LAB_DST_PORT:-26443})
declare -A SCHED_PORT=([src]=${FERRY_LAB_SRC_SCHED_PORT:-16259} [dst]=${FERRY_LAB_DST_SCHED_PORT:-26259})
declare -A NODE_IP=([src]=10.250.0.11 [dst]=10.250.0.12)
declare -A POD_CIDR=([src]=10.244.0.0/24 [dst]=10.245.0.0/24)
declare -A SVC_CIDR=([src]=10.96.0.0/16 [dst]=10.112.0.0/16)
CLUSTERS=(src dst)
NET_NS=ferry-lab-net
NET_IP=10.250.0.1 # br0 in ferry-lab-net; also where pods reach the apiservers (the `kubernetes` Service)
PAUSE_IMAGE=ferry.local/lab/pause:1
REG=$STATE/registries
declare -A REGISTRY_WIRE=([src]=10.250.0.21:5000 [dst]=10.250.0.22:5000)
declare -A REGISTRY_HOST=([src]=127.0.0.1:${FERRY_LAB_SRC_REGISTRY_PORT:-15000} [dst]=127.0.0.1:${FERRY_LAB_DST_REGISTRY_PORT:-25000})
READY_TIMEOUT=${FERRY_LAB_READY_TIMEOUT:-120}
STOP_GRACE=${FERRY_LAB_STOP_GRACE:-5}
# stop_procs: shared by apiserver.sh, node.sh and registry.sh (uses this script's alive, pidfile, log).
# shellcheck source=procs.sh
source "$LAB_DIR/procs.sh"

log() { printf '[lab-node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

node_name() { echo "$1-node1"; }
node_ns() { echo "ferry-lab-$1"; }
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }

# --------------------------------------------------------------- PKI -------------
gen_cert() { # name subj extfile-content
  local name=$1 subj=$2 ext=$3
  [[ -s $PKI/$name.crt && -s $PKI/$name.key ]] && return 0
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
  chmod 600 "$PKI/$name.key"
}

client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

b64() { base64 -w0 <"$1"; }

kubeconfig() { # cluster certname
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

# --------------------------------------------------------- processes -------------
proc_bin() {
  case $1 in
    egress) echo lab-egress ;; relay-*) echo socat ;; containerd-*) echo containerd ;; kubelet-*) echo kubelet ;;
    scheduler-*) echo kube-scheduler ;; proxy-*) echo kube-proxy ;;
  esac
}
start_proc() { # name cmd...
  local name=$1; shift
  if alive "$name"; then log "$name already running (pid $(<"$(pidfile "$name")"))"; return 0; fi
  log "starting $name"
  # nsenter/setsid exec the final binary, so $! is the daemon's pid
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9<&- &
  echo $! >"$(pidfile "$name")"
}

# ------------------------------------------------------------ network ------------
ensure_net() {
  local c ns
  if [[ ! -e /run/netns/$NET_NS ]]; then
    ip netns add "$NET_NS"
    ip -n "$NET_NS" link set lo up
    ip -n "$NET_NS" link add br0 type bridge
    ip -n "$NET_NS" link set br0 up
    ip -n "$NET_NS" addr add "$NET_IP/24" dev br0
  fi
  for c in "${CLUSTERS[@]}"; do
    ns=$(node_ns "$c")
    [[ -e /run/netns/$ns ]] && continue
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$NET_NS" link add "eth-$c" type veth peer name eth0 netns "$ns"
    ip -n "$NET_NS" link set "eth-$c" master br0 up
    ip -n "$ns" addr add "${NODE_IP[$c]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    # a default route so that ClusterIP traffic gets routed (then DNATed by kube-proxy);
    # anything else ends at br0 in ferry-lab-net, which has no way out
    ip -n "$ns" route add default dev eth0
    in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
    # the egress proxy in ferry-lab-net reaches pods through their node
    ip -n "$NET_NS" route replace "${POD_CIDR[$c]}" via "${NODE_IP[$c]}"
  done
}

delete_net() {
  local c
  for c in "${CLUSTERS[@]}"; do
    [[ -e /run/netns/$(node_ns "$c") ]] && ip netns delete "$(node_ns "$c")"
  done
  [[ -e /run/netns/$NET_NS ]] && ip netns delete "$NET_NS"
  return 0
}

# ------------------------------------------------------------- cgroups -----------
# cgroup v1: each kubelet gets its own --cgroup-root (/ferry-lab-<c>) so the two nodes'
# kubepods hierarchies do not collide. The kubelet requires the root to exist.
CG_CTRLS=(cpu cpuacct cpuset memory devices freezer blkio pids systemd hugetlb)
ensure_cgroups() { # cluster
  local d ctl
  for ctl in "${CG_CTRLS[@]}"; do
    d=/sys/fs/cgroup/$ctl
    [[ -d $d ]] || continue
    mkdir -p "$d/ferry-lab-$1"
    if [[ $ctl == cpuset ]]; then
      cat "$d/cpuset.cpus" >"$d/ferry-lab-$1/cpuset.cpus"
      cat "$d/cpuset.mems" >"$d/ferry-lab-$1/cpuset.mems"
    fi
  done
  [[ -d /sys/fs/cgroup/unified ]] && mkdir -p "/sys/fs/cgroup/unified/ferry-lab-$1" || true
}
delete_cgroups() { # cluster: remove leaf-first whatever the kubelet left
  local ctl d
  for ctl in "${CG_CTRLS[@]}" unified; do
    d=/sys/fs/cgroup/$ctl/ferry-lab-$1
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [[ -d $d ]] && log "could not remove cgroup $d (processes left?)"
  done
  return 0
}

# --------------------------------------------------------------- node ------------
write_node_files() { # cluster
  local c=$1 n ns dir
  n=$(node_name "$c"); ns=$(node_ns "$c"); dir=$STATE/nodes/$n
  mkdir -p "$dir"/{containerd,kubelet,cni/net.d,cni/ipam,pod-logs} "$SOCK_DIR/$n"
  gen_cert "node-$c" "/O=system:nodes/CN=system:node:$n" "$client_ext"
  gen_cert "kubelet-serving-$c" "/CN=$n" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$n,IP:${NODE_IP[$c]},IP:127.0.0.1"
  gen_cert "scheduler" "/CN=system:kube-scheduler" "$client_ext"
  gen_cert "kube-proxy" "/CN=system:kube-proxy" "$client_ext"
  kubeconfig "$c" "node-$c" >"$dir/kubelet.kubeconfig"
  kubeconfig "$c" kube-proxy >"$dir/kube-proxy.kubeconfig"
  kubeconfig "$c" scheduler >"$RUN/scheduler-$c.kubeconfig"
  chmod 600 "$dir"/*.kubeconfig "$RUN/scheduler-$c.kubeconfig"
  : >"$dir/resolv.conf" # pods get no upstream DNS server (nothing outside is reachable anyway)

  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd"
state = "$SOCK_DIR/$n/containerd-state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK_DIR/$n/containerd.sock"
[ttrpc]
  address = "$SOCK_DIR/$n/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # this VM withholds CAP_SYS_RESOURCE: a pod sandbox's oom_score_adj of -998 fails with
  # EPERM in runc ("can't get final child's PID from pipe: EOF") unless this is on
  restrict_oom_score_adj = true
  # raw block volumes (volumeDevices) owned by the pod's runAsUser/runAsGroup instead of root 0600,
  # so that a non-root (restricted) pod can read and write them: containerd's CRI option (1.6+;
  # CRI-O has the same name), off by default; Ferry's block-mode PVC support needs it in restricted mode
  device_ownership_from_security_context = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
  # the lab registries (hack/lab/registry.sh): trust the lab registry CA for both, pull with
  # this cluster's credentials from its own one (certs.d/<host>/hosts.toml below)
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
$(registry_auth_toml "$c")
EOF
  write_registry_hosts "$c"

  cat >"$dir/cni/net.d/10-ferry-lab.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "ferry-lab-$c",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$dir/cni/ipam",
              "ranges": [[{"subnet": "${POD_CIDR[$c]}"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${NODE_IP[$c]}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving-$c.crt
tlsPrivateKeyFile: $PKI/kubelet-serving-$c.key
cgroupDriver: cgroupfs
cgroupRoot: /ferry-lab-$c
cgroupsPerQOS: true
containerRuntimeEndpoint: unix://$SOCK_DIR/$n/containerd.sock
failSwapOn: false
resolvConf: $dir/resolv.conf
clusterDomain: cluster.local
podCIDR: ${POD_CIDR[$c]}
podLogsDir: $dir/pod-logs
serializeImagePulls: false
maxPods: 110
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
enableServer: true
EOF

  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $n
bindAddress: ${NODE_IP[$c]}
clusterCIDR: ${POD_CIDR[$c]}
clientConnection: {kubeconfig: $dir/kube-proxy.kubeconfig}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0}
nodePortAddresses: [${NODE_IP[$c]}/32]
EOF
}

# containerd credentials for the cluster's own registry (none until registry.sh made them)
registry_auth_toml() { # cluster
  local c=$1
  [[ -s $REG/$c/password ]] || return 0
  cat <<EOF
    [plugins."io.containerd.grpc.v1.cri".registry.configs."${REGISTRY_WIRE[$c]}".auth]
      username = "ferry"
      password = "$(<"$REG/$c/password")"
EOF
}

# certs.d: each registry by its wire address and by its host address (both go to the wire
# address, the only one reachable from a node), and docker.io -> this cluster's registry, so
# `ferry/transfer:latest` / `lab/workload:latest` resolve there (nothing is ever pulled from
# outside the lab; pods normally use the images imported below)
write_registry_hosts() { # cluster
  local c=$1 dir=$STATE/nodes/$(node_name "$1")/certs.d r
  rm -rf "$dir"
  for r in src dst; do
    mkdir -p "$dir/${REGISTRY_WIRE[$r]}" "$dir/${REGISTRY_HOST[$r]}"
    # containerd 1.6.20 refuses a hosts.toml without a [host] table ("invalid `host` tree")
    printf 'server = "https://%s"\n\n[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n' \
      "${REGISTRY_WIRE[$r]}" "${REGISTRY_WIRE[$r]}" "$REG/ca.crt" >"$dir/${REGISTRY_WIRE[$r]}/hosts.toml"
    cp "$dir/${REGISTRY_WIRE[$r]}/hosts.toml" "$dir/${REGISTRY_HOST[$r]}/hosts.toml"
  done
  mkdir -p "$dir/docker.io"
  cp "$dir/${REGISTRY_WIRE[$c]}/hosts.toml" "$dir/docker.io/hosts.toml"
}

# import an OCI archive unless every name in it already points at its manifest
import_image() { # sock archive
  local sock=$1 f=$2 want ref missing=0
  want=$(tar -xOf "$f" index.json | grep -o '"digest":"sha256:[0-9a-f]*"' | head -1 | cut -d'"' -f4)
  for ref in $(tar -xOf "$f" index.json | grep -o '"io.containerd.image.name":"[^"]*"' | cut -d'"' -f4); do
    ctr -a "$sock" -n k8s.io images ls "name==$ref" 2>/dev/null | grep -q "$want" || missing=1
  done
  ((missing)) || return 0
  ctr -a "$sock" -n k8s.io images import --all-platforms "$f" >/dev/null
}

start_cluster_node() { # cluster
  local c=$1 n ns dir
  n=$(node_name "$c"); ns=$(node_ns "$c"); dir=$STATE/nodes/$n
  ensure_cgroups "$c"
  # relay: node-namespace 127.0.0.1:<api port> -> unix socket -> root-namespace 127.0.0.1:<api port>
  start_proc "relay-$c-root" socat "UNIX-LISTEN:$SOCK_DIR/$n/apiserver.sock,fork,unlink-early,mode=600" \
    "TCP:127.0.0.1:${API_PORT[$c]}"
  wait_for "relay socket $c" test -S "$SOCK_DIR/$n/apiserver.sock"
  start_proc "relay-$c-node" nsenter --net="/run/netns/$ns" -- socat \
    "TCP-LISTEN:${API_PORT[$c]},bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$SOCK_DIR/$n/apiserver.sock"
  start_proc "containerd-$c" nsenter --net="/run/netns/$ns" -- containerd --config "$dir/containerd.toml"
  wait_for "containerd $c" ctr -a "$SOCK_DIR/$n/containerd.sock" version
  local img
  for img in pause busybox transfer; do
    import_image "$SOCK_DIR/$n/containerd.sock" "$IMAGES/$img.oci.tar"
  done
  # pods -> `kubernetes` Service -> endpoint $NET_IP:<api port> (the apiserver's advertise
  # address) -> this relay in ferry-lab-net -> the root relay's unix socket -> the apiserver
  start_proc "relay-$c-wire" nsenter --net="/run/netns/$NET_NS" -- socat \
    "TCP-LISTEN:${API_PORT[$c]},bind=$NET_IP,fork,reuseaddr" "UNIX-CONNECT:$SOCK_DIR/$n/apiserver.sock"
  start_proc "kubelet-$c" nsenter --net="/run/netns/$ns" -- "$BIN/kubelet" \
    --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
    --root-dir "$dir/kubelet" --hostname-override "$n" --node-ip "${NODE_IP[$c]}" --v 1
  start_proc "proxy-$c" nsenter --net="/run/netns/$ns" -- "$BIN/kube-proxy" \
    --config "$dir/kube-proxy.yaml" --v 1
  start_proc "scheduler-$c" "$BIN/kube-scheduler" \
    --kubeconfig "$RUN/scheduler-$c.kubeconfig" \
    --authentication-kubeconfig "$RUN/scheduler-$c.kubeconfig" \
    --authorization-kubeconfig "$RUN/scheduler-$c.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "${SCHED_PORT[$c]}" --leader-elect=false --v 1
}

kc() { kubectl --kubeconfig "$STATE/kubeconfig" --context "ferry-$1" "${@:2}"; }

cmd_up() {
  local t0=$SECONDS c
  [[ -s $PKI/ca.key && -s $STATE/kubeconfig ]] || die "run hack/lab/apiserver.sh up first"
  for c in containerd runc socat nsenter ctr iptables conntrack; do command -v $c >/dev/null || die "$c not installed"; done
  [[ -x /usr/lib/cni/bridge ]] || die "CNI plugins missing: apt-get install containernetworking-plugins"
  BIN=${FERRY_LAB_BIN:-$("$LAB_DIR/build-binaries.sh" --print-bin-dir)}
  IMAGES=$("$LAB_DIR/images.sh" --print-dir)
  [[ -x $BIN/kubelet && -x $BIN/kube-proxy && -x $BIN/kube-scheduler ]] || die "binaries missing in $BIN"
  "$LAB_DIR/images.sh" >/dev/null
  mkdir -p "$RUN" "$LOGS"
  ensure_net
  for c in "${CLUSTERS[@]}"; do write_node_files "$c"; done
  start_proc egress nsenter --net="/run/netns/$NET_NS" -- "$BIN/lab-egress" \
    --socket "$RUN/egress.sock" --allow "10.250.0.0/24,${POD_CIDR[src]},${POD_CIDR[dst]}"
  for c in "${CLUSTERS[@]}"; do start_cluster_node "$c"; done
  for c in "${CLUSTERS[@]}"; do
    wait_for "node $(node_name "$c") Ready" \
      kc "$c" wait --for=condition=Ready "node/$(node_name "$c")" --timeout=2s
  done
  log "nodes up in $((SECONDS - t0))s"
}

cmd_down() {
  local c
  if [[ -d $RUN ]]; then
    stop_procs scheduler-src scheduler-dst proxy-src proxy-dst kubelet-src kubelet-dst
    # pods' containers: stop them through containerd before containerd itself goes
    for c in "${CLUSTERS[@]}"; do
      local sock=$SOCK_DIR/$(node_name "$c")/containerd.sock
      if alive "containerd-$c" && [[ -S $sock ]]; then
        local t id
        # the pod network namespaces containerd made (bind mounts under /var/run/netns)
        for id in $(ctr -a "$sock" -n k8s.io containers ls -q 2>/dev/null); do
          ctr -a "$sock" -n k8s.io containers info "$id" 2>/dev/null |
            grep -o '/var/run/netns/cni-[0-9a-f-]*' || true
        done | sort -u >"$RUN/pod-netns-$c"
        for t in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
          ctr -a "$sock" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
        done
        sleep 1
        for t in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
          ctr -a "$sock" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true
        done
      fi
    done
    stop_procs containerd-src containerd-dst relay-src-wire relay-dst-wire relay-src-node relay-dst-node \
      relay-src-root relay-dst-root egress
  fi
  # leftover shims (containerd-shim-runc-v2 outlives containerd by design): only ours,
  # recognised by our containerd socket in their command line
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $SOCK_DIR/" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # overlay/shm/netns mounts the kubelet and containerd left below the state dir
  if [[ -d $STATE/nodes ]]; then
    awk '{print $2}' /proc/self/mounts | grep -E "^($STATE/nodes|$SOCK_DIR)/" | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  for c in "${CLUSTERS[@]}"; do
    if [[ -s $RUN/pod-netns-$c ]]; then
      while read -r p; do ip netns delete "${p##*/}" 2>/dev/null || true; done <"$RUN/pod-netns-$c"
    fi
    rm -f "$RUN/pod-netns-$c"
    delete_cgroups "$c"
  done
  delete_net
  rm -rf "$SOCK_DIR" "$STATE/nodes"
  log "nodes down"
}

cmd_status() {
  local n rc=0
  for n in egress relay-src-root relay-src-node relay-src-wire containerd-src kubelet-src proxy-src scheduler-src \
    relay-dst-root relay-dst-node relay-dst-wire containerd-dst kubelet-dst proxy-dst scheduler-dst; do
    if alive "$n"; then printf '%-16s pid %s\n' "$n" "$(<"$(pidfile "$n")")"
    else printf '%-16s not running\n' "$n"; rc=1; fi
  done
  for c in "${CLUSTERS[@]}"; do kc "$c" get nodes -o wide 2>&1 || rc=1; done
  return $rc
}


case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
