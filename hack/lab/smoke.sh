#!/usr/bin/env bash
# Smoke test of a running lab. Prints one line per check and a closing "N passed, N failed".
#   hack/lab/smoke.sh          API checks (needs hack/lab/apiserver.sh up)
#   hack/lab/smoke.sh --nodes  also pods, PVC data over a cross-cluster NodePort, ClusterIP,
#                              kubectl logs/exec (needs hack/lab/node.sh up)
# Uses namespace ferry-smoke in both clusters and deletes it at the end.
set -uo pipefail

STATE=${FERRY_LAB_STATE:-/var/lib/ferry-lab}
export KUBECONFIG=$STATE/kubeconfig
NS=ferry-smoke
PASS=0 FAIL=0
k() { kubectl --context "ferry-$1" "${@:2}"; }
check() { # description command...
  local what=$1; shift
  local out
  if out=$("$@" 2>&1); then PASS=$((PASS + 1)); echo "ok   $what"
  else FAIL=$((FAIL + 1)); echo "FAIL $what"; echo "$out" | tail -n 5 | sed 's/^/     /'; fi
}

for c in src dst; do
  k $c delete ns $NS --ignore-not-found --wait=true --timeout=60s >/dev/null 2>&1
  check "$c: readyz" k $c get --raw /readyz
  check "$c: server version v1.32" bash -c "kubectl --context ferry-$c version -o json | grep -q '\"gitVersion\": \"v1.32'"
  check "$c: create namespace" k $c create ns $NS
  check "$c: default ServiceAccount appears" k $c -n $NS wait --for=jsonpath='{.metadata.name}'=default sa/default --timeout=30s
  check "$c: create PVC + NodePort Service" k $c -n $NS apply -f - <<'EOF'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Service
metadata: {name: server}
spec:
  type: NodePort
  selector: {app: server}
  ports: [{port: 80, targetPort: 8080}]
EOF
  check "$c: NodePort allocated" bash -c "[[ -n \$(kubectl --context ferry-$c -n $NS get svc server -o jsonpath='{.spec.ports[0].nodePort}') ]]"
done
check "isolation: src-only namespace is absent in dst" bash -c \
  "kubectl --context ferry-src create ns ferry-smoke-only-src >/dev/null && ! kubectl --context ferry-dst get ns ferry-smoke-only-src 2>/dev/null; rc=\$?; kubectl --context ferry-src delete ns ferry-smoke-only-src --wait=false >/dev/null; exit \$rc"

if [[ ${1:-} == --nodes ]]; then
  # a hostPath PV on the src node for the src PVC (the lab has no provisioner yet)
  check "src: PV binds the PVC" bash -c "kubectl --context ferry-src apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: ferry-smoke-pv}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  persistentVolumeReclaimPolicy: Retain
  claimRef: {namespace: $NS, name: data}
  hostPath: {path: $STATE/nodes/src-node1/volumes/ferry-smoke-pv, type: DirectoryOrCreate}
EOF
kubectl --context ferry-src -n $NS wait --for=jsonpath='{.status.phase}'=Bound pvc/data --timeout=60s"
  check "src: pod with the PVC runs" bash -c "kubectl --context ferry-src -n $NS apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: ferry.local/lab/busybox:1
    command: [sh, -c, 'echo hello-from-src-pvc > /data/hello.txt; echo server-started; exec httpd -f -v -p 8080 -h /data']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
EOF
kubectl --context ferry-src -n $NS wait --for=condition=Ready pod/server --timeout=60s"
  check "src: PVC data is on the node's hostPath" \
    grep -q hello-from-src-pvc "$STATE/nodes/src-node1/volumes/ferry-smoke-pv/hello.txt"
  np=$(k src -n $NS get svc server -o jsonpath='{.spec.ports[0].nodePort}')
  src_ip=$(k src get node src-node1 -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
  check "dst pod -> src NodePort $src_ip:$np -> src pod (cross-cluster)" bash -c "kubectl --context ferry-dst -n $NS run client --image=ferry.local/lab/busybox:1 --restart=Never --command -- sh -c 'printf \"GET /hello.txt HTTP/1.0\r\n\r\n\" | nc -w 5 $src_ip $np' >/dev/null &&
kubectl --context ferry-dst -n $NS wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=60s >/dev/null &&
kubectl --context ferry-dst -n $NS logs client | grep -q hello-from-src-pvc"
  check "src pod -> ClusterIP (kube-proxy) -> src pod" bash -c "kubectl --context ferry-src -n $NS run client --image=ferry.local/lab/busybox:1 --restart=Never --command -- sh -c 'printf \"GET /hello.txt HTTP/1.0\r\n\r\n\" | nc -w 5 \$SERVER_SERVICE_HOST 80' >/dev/null &&
kubectl --context ferry-src -n $NS wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=60s >/dev/null &&
kubectl --context ferry-src -n $NS logs client | grep -q hello-from-src-pvc"
  check "src: kubectl logs (apiserver -> egress proxy -> kubelet)" bash -c "kubectl --context ferry-src -n $NS logs server | grep -q server-started"
  check "src: kubectl exec" bash -c "kubectl --context ferry-src -n $NS exec server -- cat /data/hello.txt | grep -q hello-from-src-pvc"
  k src delete pv ferry-smoke-pv --wait=false >/dev/null 2>&1
fi

for c in src dst; do
  check "$c: namespace deletion completes" k $c delete ns $NS --wait=true --timeout=90s
done
[[ ${1:-} == --nodes ]] && k src delete pv ferry-smoke-pv --ignore-not-found >/dev/null 2>&1
echo "lab smoke: $PASS passed, $FAIL failed"
((FAIL == 0))
