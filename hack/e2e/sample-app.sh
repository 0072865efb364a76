#!/usr/bin/env bash
# Seeds Ferry's sample namespace in the lab's SOURCE cluster (idempotent: an existing namespace of
# that name is deleted first, in src and dst).
#
#   hack/e2e/sample-app.sh [NAMESPACE]        default NAMESPACE: ferry-demo
#
# Environment:
#   KUBECONFIG          default /var/lib/ferry-lab/kubeconfig (contexts ferry-src, ferry-dst)
#   SAMPLE_PROFILE      full (default): /usr/share of the transfer image (~5300 files, 85 MiB) + a
#                       256 MiB random file, 1Gi PVC; small: /usr/share/doc + 24 MiB, 256Mi PVC
#   SAMPLE_OWNERS       mixed (default): files owned by several uids/gids (needs preserve-ownership);
#                       app: everything owned by 1000:1000 and the workloads run as 1000 (restricted mode)
#   SAMPLE_FILES_SIZE   override the size of the "files" PVC (e.g. 200Mi)
#   SAMPLE_BIG_MB       override the size of the random file (MiB)
#   SAMPLE_SPARSE       override the apparent size of the sparse file (truncate -s syntax, e.g. 16M)
#   SAMPLE_DST_NS       destination namespace to delete as well (default: NAMESPACE)
#
# What it creates (namespace NAMESPACE, label ferry-e2e=sample):
#   PVC files (lab-local)  seeded by Job "seed" (transfer image, root): a real tree, a large random file,
#                          a sparse file, hard links, relative/absolute/dangling symlinks, mixed modes/owners
#   Deployment web (1)     image <src registry>/NAMESPACE/workload:1, mounts files
#   StatefulSet db (2)     volumeClaimTemplates data (64Mi): each replica writes its own files once
#   CronJob report         suspended, mounts files read-only
#   CronJob compact        not suspended (every minute, reads only), mounts files read-only
#   Job seed               the seeding job (completed)
# Images: lab/workload:latest copied to 127.0.0.1:15000/NAMESPACE/workload:1 (pulled by the node as
# 10.250.0.21:5000/NAMESPACE/workload:1).
set -euo pipefail

NS=${1:-ferry-demo}
DST_NS=${SAMPLE_DST_NS:-$NS}
PROFILE=${SAMPLE_PROFILE:-full}
OWNERS=${SAMPLE_OWNERS:-mixed}
export KUBECONFIG=${KUBECONFIG:-/var/lib/ferry-lab/kubeconfig}
LAB=${FERRY_LAB_STATE:-/var/lib/ferry-lab}
REG=$LAB/registries
SRC_REG_HOST=127.0.0.1:15000
SRC_REG_WIRE=10.250.0.21:5000
DST_REG_HOST=127.0.0.1:25000
KS=(kubectl --context ferry-src)
KD=(kubectl --context ferry-dst)

case $PROFILE in
  full) TREE_SRC=/usr/share; BIG_MB=256; SPARSE=512M; FILES_SIZE=1Gi ;;
  small) TREE_SRC=/usr/share/doc; BIG_MB=24; SPARSE=128M; FILES_SIZE=256Mi ;;
  *) echo "SAMPLE_PROFILE must be full or small" >&2; exit 2 ;;
esac
FILES_SIZE=${SAMPLE_FILES_SIZE:-$FILES_SIZE}
BIG_MB=${SAMPLE_BIG_MB:-$BIG_MB}
SPARSE=${SAMPLE_SPARSE:-$SPARSE}
case $OWNERS in mixed | app) ;; *) echo "SAMPLE_OWNERS must be mixed or app" >&2; exit 2 ;; esac

log() { printf '[sample-app %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# 1. a clean slate: delete the namespace in both clusters (and the dst image repository's tags stay:
#    Ferry skips an image already there with the same digest)
for k in src dst; do
  if [[ $k == src ]]; then K=("${KS[@]}"); n=$NS; else K=("${KD[@]}"); n=$DST_NS; fi
  if "${K[@]}" get ns "$n" >/dev/null 2>&1; then
    log "deleting namespace $n in ferry-$k"
    "${K[@]}" delete ns "$n" --wait=true --timeout=180s >/dev/null
  fi
done

# 2. the workload image in the src registry, under the namespace's path
log "copying lab/workload:latest to $SRC_REG_HOST/$NS/workload:1"
skopeo copy --quiet --src-authfile "$REG/src/auth.json" --src-cert-dir "$REG" \
  --dest-authfile "$REG/src/auth.json" --dest-cert-dir "$REG" \
  "docker://$SRC_REG_HOST/lab/workload:latest" "docker://$SRC_REG_HOST/$NS/workload:1"
IMAGE=$SRC_REG_WIRE/$NS/workload:1

if [[ $OWNERS == app ]]; then
  # OnRootMismatch: the kubelet walks the volume (chmod g+rw, setgid dirs) only while its root does not
  # match yet, i.e. not again when the workloads restart after the migration (that walk would change
  # the source's modes after the final sync).
  APP_SC='securityContext: {runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, fsGroupChangePolicy: OnRootMismatch}'
else
  APP_SC='securityContext: {}'
fi

# 3. the seeding script (bash + GNU coreutils of the transfer image, as root)
read -r -d '' SEED <<EOF || true
set -euo pipefail
cd /d
if [ -f .seeded ]; then echo already seeded; exit 0; fi
mkdir -p tree data links modes
cp -a $TREE_SRC/. tree/
dd if=/dev/urandom of=data/big.bin bs=1M count=$BIG_MB status=none
truncate -s $SPARSE data/sparse.img
dd if=/dev/urandom of=data/sparse.img bs=1M count=1 seek=7 conv=notrunc status=none
printf 'alpha\n' > data/a.txt; printf 'beta\n' > data/b.txt
: > data/empty
ln data/a.txt links/hard-a; ln data/a.txt links/hard-a2; ln data/big.bin links/hard-big
ln -s ../data/a.txt links/rel-a; ln -s ../tree links/rel-tree
ln -s /d/data/b.txt links/abs-b; ln -s /etc/hostname links/abs-outside; ln -s nowhere links/dangling
printf '#!/bin/sh\necho hi\n' > modes/run.sh; chmod 0755 modes/run.sh
printf 'secret\n' > modes/secret; chmod 0600 modes/secret
printf 'ro\n' > modes/readonly; chmod 0444 modes/readonly
printf 'grp\n' > modes/group; chmod 0640 modes/group
mkdir -p modes/private modes/shared modes/sticky; chmod 0700 modes/private; chmod 2775 modes/shared; chmod 1777 modes/sticky
printf 'x\n' > modes/private/inside; printf 'y\n' > modes/shared/inside; printf 'z\n' > modes/sticky/inside
mkfifo modes/fifo
touch -d '2001-02-03 04:05:06' data/a.txt modes/readonly
if [ "$OWNERS" = mixed ]; then
  chown -R 1000:1000 data; chown 1001:2000 modes/secret; chown 0:3000 modes/group; chown 65534:65534 modes/private
  chown -h 1002:1002 links/abs-b; chown -R 4242:4343 tree/doc 2>/dev/null || true
else
  chown -R -h 1000:1000 /d
fi
sync
touch .seeded
echo seeded: \$(find . | wc -l) entries, \$(du -sm . | cut -f1) MiB
EOF

# busybox (workload image): each StatefulSet replica writes its files once, then idles
read -r -d '' DB <<'EOF' || true
if [ ! -f /d/init.done ]; then
  mkdir -p /d/wal /d/tables
  i=1; while [ $i -le 20 ]; do dd if=/dev/urandom of=/d/tables/t$i bs=4096 count=$((i*8)) 2>/dev/null; i=$((i+1)); done
  echo "$HOSTNAME" > /d/identity; dd if=/dev/urandom of=/d/wal/000001 bs=1024 count=2048 2>/dev/null
  ln -s tables/t1 /d/current; touch /d/init.done
fi
echo ready; exec sleep 2147483647
EOF

indent() { sed 's/^/            /'; }

log "applying the sample namespace $NS (profile $PROFILE, owners $OWNERS)"
"${KS[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $NS, labels: {ferry-e2e: sample}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: files, namespace: $NS, labels: {app: web}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: $FILES_SIZE}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: seed, namespace: $NS}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      securityContext: {runAsUser: 0, runAsGroup: 0}
      containers:
        - name: seed
          image: ferry/transfer:latest
          imagePullPolicy: IfNotPresent
          command: [bash, -c]
          args:
            - |
$(printf '%s\n' "$SEED" | sed 's/^/              /')
          securityContext: {capabilities: {add: [CHOWN, FOWNER, DAC_OVERRIDE]}}
          volumeMounts: [{name: d, mountPath: /d}]
      volumes: [{name: d, persistentVolumeClaim: {claimName: files}}]
EOF

# The workloads come after the seeding: their first mount (with fsGroup in the "app" profile) then
# sees the whole tree, and no later mount (after the migration) changes modes.
log "waiting for the seed job"
"${KS[@]}" -n "$NS" wait --for=condition=complete job/seed --timeout=600s >/dev/null || {
  "${KS[@]}" -n "$NS" logs job/seed >&2 || true
  "${KS[@]}" -n "$NS" describe job/seed >&2 || true
  exit 1
}
"${KS[@]}" -n "$NS" logs job/seed >&2 || true

log "applying the workloads"
"${KS[@]}" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: $NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      $APP_SC
      containers:
        - name: web
          image: $IMAGE
          imagePullPolicy: Always
          command: [sh, -c, 'ls /d >/dev/null; echo ready; exec sleep 2147483647']
          volumeMounts: [{name: d, mountPath: /d}]
      volumes: [{name: d, persistentVolumeClaim: {claimName: files}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: $NS}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      $APP_SC
      containers:
        - name: db
          image: $IMAGE
          imagePullPolicy: IfNotPresent
          command: [sh, -c]
          args:
            - |
$(printf '%s\n' "$DB" | sed 's/^/              /')
          volumeMounts: [{name: data, mountPath: /d}]
  volumeClaimTemplates:
    - metadata: {name: data, labels: {app: db}}
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 64Mi}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: $NS}
spec:
  schedule: "0 3 * * *"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          $APP_SC
          containers:
            - {name: report, image: $IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, 'du -s /d'], volumeMounts: [{name: d, mountPath: /d, readOnly: true}]}
          volumes: [{name: d, persistentVolumeClaim: {claimName: files, readOnly: true}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: compact, namespace: $NS}
spec:
  schedule: "*/1 * * * *"
  suspend: false
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 1
  failedJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          $APP_SC
          containers:
            - {name: compact, image: $IMAGE, imagePullPolicy: IfNotPresent, command: [sh, -c, 'ls /d >/dev/null'], volumeMounts: [{name: d, mountPath: /d, readOnly: true}]}
          volumes: [{name: d, persistentVolumeClaim: {claimName: files, readOnly: true}}]
EOF

log "waiting for the Deployment and the StatefulSet"

"${KS[@]}" -n "$NS" rollout status deploy/web --timeout=300s >/dev/null
"${KS[@]}" -n "$NS" rollout status sts/db --timeout=300s >/dev/null
for i in 0 1; do
  for _ in $(seq 1 120); do
    "${KS[@]}" -n "$NS" logs "db-$i" 2>/dev/null | grep -q ready && break
    sleep 1
  done
done
log "sample namespace $NS ready: $("${KS[@]}" -n "$NS" get pvc --no-headers | awk '{print $1"="$4}' | xargs)"
