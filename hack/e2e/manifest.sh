#!/usr/bin/env bash
# Prints the manifest of the tree inside a PVC, read by a one-shot pod of the transfer image (root,
# read-only mount) in that cluster: one line per entry, sorted by path,
#
#   path|type|mode|uid|gid|size|link target|blocks|mtime|sha256|hard-link group
#
# (size and blocks are left out for directories, whose sizes depend on the file system's history;
# uid/gid are "-" with --no-owners; the hard-link group is the first path, in sort order, of the
# entries sharing an inode, "-" for a single link). lost+found and Ferry's .ferry-partial are skipped.
#
#   hack/e2e/manifest.sh CONTEXT NAMESPACE PVC [--no-owners]
set -euo pipefail
CTX=$1 NS=$2 PVC=$3 OWNERS=${4:-}
export KUBECONFIG=${KUBECONFIG:-/var/lib/ferry-lab/kubeconfig}
POD=manifest-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
K=(kubectl --context "$CTX" -n "$NS")

read -r -d '' SCRIPT <<'EOF' || true
set -euo pipefail
cd /d
find . -mindepth 1 \( -path ./lost+found -o -name '.ferry-partial*' \) -prune -o -printf '%i\t%p\t%y\t%m\t%U\t%G\t%s\t%l\t%b\t%T@\n' | LC_ALL=C sort -t$'\t' -k2,2 > /tmp/list
# sha256 of every regular file, keyed by path
LC_ALL=C awk -F'\t' '$3=="f"{print $2}' /tmp/list | tr '\n' '\0' | xargs -0 -r sha256sum | awk '{h=$1; sub(/^[0-9a-f]+  /,""); print $0"\t"h}' > /tmp/sums
LC_ALL=C awk -F'\t' -v owners="$OWNERS" '
  FILENAME=="/tmp/sums" { sum[$1]=$2; next }
  { ino=$1; if (!(ino in first)) first[ino]=$2; n[ino]++; line[NR]=$0; order[NR]=ino }
  END {
    for (i=1; i<=NR; i++) {
      if (!(i in line)) continue
      split(line[i], f, "\t")
      p=f[2]; t=f[3]
      size=(t=="d") ? "-" : f[7]; blocks=(t=="d") ? "-" : f[9]; mtime=(t=="d") ? "-" : f[10]
      uid=(owners=="--no-owners") ? "-" : f[5]; gid=(owners=="--no-owners") ? "-" : f[6]
      grp=(t!="d" && n[f[1]]>1) ? first[f[1]] : "-"
      printf "%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n", p, t, f[4], uid, gid, size, f[8], blocks, mtime, ((p in sum) ? sum[p] : "-"), grp
    }
  }' /tmp/sums /tmp/list
EOF

"${K[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $POD, labels: {ferry-e2e: manifest}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  securityContext: {runAsUser: 0, runAsGroup: 0}
  containers:
    - name: m
      image: ferry/transfer:latest
      imagePullPolicy: IfNotPresent
      env: [{name: OWNERS, value: "$OWNERS"}]
      command: [bash, -c]
      args:
        - |
$(printf '%s\n' "$SCRIPT" | sed 's/^/          /')
      securityContext: {capabilities: {add: [DAC_OVERRIDE, DAC_READ_SEARCH]}}
      volumeMounts: [{name: d, mountPath: /d, readOnly: true}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: $PVC, readOnly: true}}]
EOF
cleanup() { "${K[@]}" delete pod "$POD" --grace-period=0 --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  phase=$("${K[@]}" get pod "$POD" -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 1
done
if [[ $phase != Succeeded ]]; then
  echo "manifest pod $CTX/$NS/$POD ended '$phase':" >&2
  "${K[@]}" logs "$POD" >&2 || true
  exit 1
fi
"${K[@]}" logs "$POD"
