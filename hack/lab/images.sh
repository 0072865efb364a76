#!/usr/bin/env bash
# Build the lab's container images as OCI archives, without any container tool (no
# registry is reachable here, so nothing can be pulled):
#   ferry.local/lab/pause:1     the pod sandbox (hack/lab/k8s-build/cmd/pause)
#   ferry.local/lab/busybox:1   Debian's busybox-static with its applet links (sh, nc, wget, ...)
# Output: <bin dir>/../images/<name>.oci.tar, deterministic (fixed mtimes, sorted, gzip -n).
# Import: ctr -a SOCK -n k8s.io images import --all-platforms FILE  (hack/lab/node.sh does it)
#
#   hack/lab/images.sh          build what is missing, print the archive paths
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${FERRY_LAB_BIN:-$("$LAB_DIR/build-binaries.sh" --print-bin-dir)}
OUT=$(dirname "$BIN")/images
PAUSE_IMAGE=ferry.local/lab/pause:1
BUSYBOX_IMAGE=ferry.local/lab/busybox:1
mkdir -p "$OUT"

sha() { sha256sum "$1" | cut -d' ' -f1; }

# oci_archive NAME REF ROOTFS_DIR CONFIG_JSON_FRAGMENT -> $OUT/NAME.oci.tar
oci_archive() {
  local name=$1 ref=$2 rootfs=$3 cfg=$4 work layer diffid lsha lsize csha csize msha msize
  [[ -s $OUT/$name.oci.tar ]] && { echo "$OUT/$name.oci.tar"; return 0; }
  work=$(mktemp -d)
  mkdir -p "$work/blobs/sha256"
  tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/layer.tar" .
  diffid=$(sha "$work/layer.tar")
  gzip -n -9 "$work/layer.tar"
  lsha=$(sha "$work/layer.tar.gz"); lsize=$(stat -c %s "$work/layer.tar.gz")
  mv "$work/layer.tar.gz" "$work/blobs/sha256/$lsha"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"hack/lab/images.sh"}]}' \
    "$cfg" "$diffid" >"$work/config.json"
  csha=$(sha "$work/config.json"); csize=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$work/blobs/sha256/$csha"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$csha" "$csize" "$lsha" "$lsize" >"$work/manifest.json"
  msha=$(sha "$work/manifest.json"); msize=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$work/blobs/sha256/$msha"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$msha" "$msize" "$ref" "$ref" >"$work/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
  tar -C "$work" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$OUT/$name.oci.tar.tmp" oci-layout index.json blobs
  mv "$OUT/$name.oci.tar.tmp" "$OUT/$name.oci.tar"
  rm -rf "$work"
  echo "$OUT/$name.oci.tar"
}

[[ -x $BIN/pause ]] || { echo "$BIN/pause missing: run hack/lab/build-binaries.sh" >&2; exit 1; }
[[ -x /bin/busybox ]] || { echo "/bin/busybox missing: apt-get install busybox-static" >&2; exit 1; }
file -L /bin/busybox | grep -q 'statically linked' || { echo "/bin/busybox is not static (need busybox-static)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/pause"
install -m 0755 "$BIN/pause" "$root/pause/pause"
oci_archive pause "$PAUSE_IMAGE" "$root/pause" '{"Entrypoint":["/pause"],"User":"65535:65535"}'

mkdir -p "$root/bb/bin" "$root/bb/tmp" "$root/bb/etc" "$root/bb/data"
chmod 1777 "$root/bb/tmp"
install -m 0755 /bin/busybox "$root/bb/bin/busybox"
for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$root/bb/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/bb/etc/passwd"
echo 'root:x:0:' >"$root/bb/etc/group"
oci_archive busybox "$BUSYBOX_IMAGE" "$root/bb" '{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]}'
