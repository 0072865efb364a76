#!/usr/bin/env bash
# Build the lab's container images as OCI archives, offline from Debian packages and the
# lab's own binaries, without any container tool and without pulling anything:
#
#   ferry.local/lab/pause:1                 pod sandbox (hack/lab/k8s-build/cmd/pause)
#   ferry.local/lab/busybox:1               Debian's busybox-static with its applet links
#   docker.io/lab/workload:latest           (same archive as busybox: sh, sleep, dd, nc, httpd ...)
#                                           = `lab/workload:latest` in a pod spec
#   docker.io/ferry/transfer:latest         Ferry's transfer image = `ferry/transfer:latest`
#                                           (DEFAULT_TRANSFER_IMAGE): a debootstrap'ed Debian
#                                           bookworm with the package list of
#                                           images/transfer/Containerfile (its "# PACKAGES:" line)
#                                           + findutils, upgraded from bookworm-updates/-security
#                                           like `apt-get install` in the Containerfile would be,
#                                           USER 65532:65532, WORKDIR /tmp, CMD ["/bin/bash"]
#
# Cache: ${FERRY_LAB_CACHE:-/var/cache/ferry-lab}/images/<name>-<key>.oci.tar, <key> = hash of
# what goes in (package list + suite for transfer, busybox-static's version for busybox, the
# pause binary for pause, and FORMAT below), plus a stable symlink <name>.oci.tar -> current key.
# Deterministic layers (sorted, mtime 0, gzip -n). Delete the directory for a cold build.
#
#   hack/lab/images.sh                build what is missing (no-op when cached), print the archives
#   hack/lab/images.sh --force NAME   rebuild NAME (pause|busybox|transfer) even if cached
#   hack/lab/images.sh --print-dir    print the image cache dir
#   hack/lab/images.sh --refs NAME    print the image names inside NAME's archive
#
# Import: ctr -a SOCK -n k8s.io images import --all-platforms FILE   (hack/lab/node.sh)
# Push:   skopeo copy oci-archive:FILE:REF docker://...               (hack/lab/registry.sh)
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/../.." && pwd)
CACHE_ROOT=${FERRY_LAB_CACHE:-/var/cache/ferry-lab}
OUT=$CACHE_ROOT/images
FORMAT=2 # bump when the way archives are made changes
SUITE=bookworm
GZIP_LEVEL=${FERRY_LAB_GZIP_LEVEL:-6}

declare -A REFS=(
  [pause]="ferry.local/lab/pause:1"
  [busybox]="ferry.local/lab/busybox:1 docker.io/lab/workload:latest"
  [transfer]="docker.io/ferry/transfer:latest"
)

log() { printf '[lab-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
hash_str() { printf '%s' "$1" | sha256sum | cut -c1-12; }

# The transfer image's package list: images/transfer/Containerfile's "# PACKAGES:" line
# (the Containerfile's own install list), plus findutils (Essential in Debian; named here so
# the lab image keeps it whatever the base does).
transfer_packages() {
  local f=$REPO_DIR/images/transfer/Containerfile line
  [[ -f $f ]] || die "$f missing"
  line=$(sed -n 's/^# PACKAGES:[[:space:]]*//p' "$f" | head -1)
  [[ -n $line ]] || die "$f has no '# PACKAGES:' line"
  printf '%s\n' $line findutils | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# The Debian mirror apt uses here (deb822 or one-line sources), for debootstrap.
debian_mirror() {
  local m=${FERRY_LAB_DEBIAN_MIRROR:-}
  [[ -n $m ]] && { echo "$m"; return; }
  m=$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 ~ (" " s "( |$)")) {print u; exit} }' s="$SUITE" \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -z $m ]] && m=$(awk -v s="$SUITE" '$1=="deb" && $3==s {print $2; exit}' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}

key_of() { # name -> cache key
  case $1 in
    pause) hash_str "f$FORMAT $(sha "$BIN/pause")" ;;
    busybox) hash_str "f$FORMAT $(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null)" ;;
    transfer) hash_str "f$FORMAT $SUITE minbase+upgrade $(transfer_packages)" ;;
  esac
}

# oci_archive NAME ROOTFS_DIR CONFIG_JSON_FRAGMENT [flatten-owner(1)|keep-owner(0)] -> $OUT/NAME-KEY.oci.tar
oci_archive() {
  local name=$1 rootfs=$2 cfg=$3 flatten=${4:-1} dest work diffid lsha lsize csha csize msha msize
  local -a own=(--numeric-owner)
  [[ $flatten == 1 ]] && own+=(--owner=0 --group=0)
  dest=$OUT/$name-$(key_of "$name").oci.tar
  work=$(mktemp -d "$OUT/.work.XXXXXX")
  mkdir -p "$work/blobs/sha256"
  tar -C "$rootfs" --sort=name --mtime=@0 "${own[@]}" -cf "$work/layer.tar" .
  diffid=$(sha "$work/layer.tar")
  nice -n 10 gzip -n "-$GZIP_LEVEL" "$work/layer.tar"
  lsha=$(sha "$work/layer.tar.gz"); lsize=$(stat -c %s "$work/layer.tar.gz")
  mv "$work/layer.tar.gz" "$work/blobs/sha256/$lsha"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"hack/lab/images.sh %s"}]}' \
    "$cfg" "$diffid" "$name" >"$work/config.json"
  csha=$(sha "$work/config.json"); csize=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$work/blobs/sha256/$csha"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$csha" "$csize" "$lsha" "$lsize" >"$work/manifest.json"
  msha=$(sha "$work/manifest.json"); msize=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$work/blobs/sha256/$msha"
  # one index entry per name (same manifest): ctr import makes one image per entry; skopeo
  # selects one with oci-archive:FILE:REF
  local ref entries=""
  for ref in ${REFS[$name]}; do
    entries+="${entries:+,}$(printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}' \
      "$msha" "$msize" "$ref" "$ref")"
  done
  printf '{"schemaVersion":2,"manifests":[%s]}' "$entries" >"$work/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
  tar -C "$work" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$dest.tmp" oci-layout index.json blobs
  mv "$dest.tmp" "$dest"
  rm -rf "$work"
  ln -sfn "$(basename "$dest")" "$OUT/$name.oci.tar"
  log "$name: $dest ($(du -h "$dest" | cut -f1), manifest sha256:$msha)"
}

build_pause() {
  local root=$1
  [[ -x $BIN/pause ]] || die "$BIN/pause missing: run hack/lab/build-binaries.sh"
  mkdir -p "$root/pause"
  install -m 0755 "$BIN/pause" "$root/pause/pause"
  oci_archive pause "$root/pause" '{"Entrypoint":["/pause"],"User":"65535:65535"}'
}

build_busybox() {
  local root=$1 a
  [[ -x /bin/busybox ]] || die "/bin/busybox missing: apt-get install busybox-static"
  file -L /bin/busybox | grep -q 'statically linked' || die "/bin/busybox is not static (need busybox-static)"
  mkdir -p "$root/bb/bin" "$root/bb/tmp" "$root/bb/etc" "$root/bb/data"
  chmod 1777 "$root/bb/tmp"
  install -m 0755 /bin/busybox "$root/bb/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$root/bb/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/bb/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/bb/etc/group"
  oci_archive busybox "$root/bb" '{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]}'
}

build_transfer() {
  local root=$1 rfs=$1/transfer pkgs mirror t0=$SECONDS
  command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap"
  pkgs=$(transfer_packages)
  mirror=$(debian_mirror)
  log "transfer: debootstrap --variant=minbase $SUITE from $mirror with: $pkgs (a few minutes cold)"
  if ! nice -n 10 debootstrap --variant=minbase --include="${pkgs// /,}" "$SUITE" "$rfs" "$mirror" \
    >"$root/debootstrap.log" 2>&1; then
    tail -n 30 "$root/debootstrap.log" >&2
    [[ -f $rfs/debootstrap/debootstrap.log ]] && tail -n 30 "$rfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  log "transfer: debootstrap took $((SECONDS - t0))s; upgrading from $SUITE-updates and -security"
  # the same sources as this machine's apt (deb.debian.org through whatever apt reaches here)
  rm -f "$rfs/etc/apt/sources.list"
  mkdir -p "$rfs/etc/apt/sources.list.d"
  cat >"$rfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cp /etc/resolv.conf "$rfs/etc/resolv.conf" 2>/dev/null || true
  mount -t proc proc "$rfs/proc"
  if ! nice -n 10 chroot "$rfs" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get -qq update && apt-get -qq -y -o Dpkg::Options::=--force-confold upgrade' \
    >"$root/upgrade.log" 2>&1; then
    umount "$rfs/proc" || true
    tail -n 30 "$root/upgrade.log" >&2
    die "apt-get upgrade in the transfer rootfs failed"
  fi
  umount "$rfs/proc"
  chroot "$rfs" dpkg-query -W -f='${Package} ${Version}\n' >"$root/packages.txt"
  # slim down like the Containerfile (rm -rf /var/lib/apt/lists/*) and drop host leftovers
  rm -rf "$rfs"/var/lib/apt/lists/* "$rfs"/var/cache/apt/*.bin "$rfs"/var/cache/apt/archives/*.deb \
    "$rfs"/var/cache/apt/archives/partial/* "$rfs"/var/log/* "$rfs"/debootstrap "$rfs"/tmp/* "$rfs"/var/tmp/* \
    "$rfs"/root/.bash_history
  find "$rfs/dev" -mindepth 1 -delete
  : >"$rfs/etc/resolv.conf"
  echo transfer >"$rfs/etc/hostname"
  rm -f "$rfs/etc/machine-id"; : >"$rfs/etc/machine-id"
  mkdir -p "$rfs/usr/share/ferry-lab"
  cp "$root/packages.txt" "$rfs/usr/share/ferry-lab/packages.txt"
  local p
  for p in $pkgs; do grep -q "^$p " "$root/packages.txt" || die "package $p missing from the rootfs"; done
  oci_archive transfer "$rfs" \
    '{"User":"65532:65532","WorkingDir":"/tmp","Entrypoint":[],"Cmd":["/bin/bash"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Labels":{"org.opencontainers.image.title":"ferry-transfer","org.opencontainers.image.description":"Ferry transfer image (lab build, images/transfer/Containerfile package set)"}}' 0
  cp "$root/packages.txt" "$OUT/transfer-$(key_of transfer).packages.txt"
  log "transfer: built in $((SECONDS - t0))s"
}

case "${1:-}" in
  --print-dir) echo "$OUT"; exit 0 ;;
  --refs) echo "${REFS[${2:?name}]}"; exit 0 ;;
esac

BIN=${FERRY_LAB_BIN:-$("$LAB_DIR/build-binaries.sh" --print-bin-dir)}
mkdir -p "$OUT"
# one builder at a time (lab.sh up, node.sh up and tests may call this concurrently)
exec 8<"$OUT"
flock 8

FORCE=""
[[ ${1:-} == --force ]] && FORCE=${2:?usage: $0 --force pause|busybox|transfer}

root=$(mktemp -d "$OUT/.root.XXXXXX")
cleanup() { # never recurse into a mount debootstrap/chroot left behind (proc, sys)
  { awk '{print $2}' /proc/self/mounts | grep "^$root/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
for name in pause busybox transfer; do
  f=$OUT/$name-$(key_of "$name").oci.tar
  if [[ -s $f && $FORCE != "$name" ]]; then
    ln -sfn "$(basename "$f")" "$OUT/$name.oci.tar"
  else
    "build_$name" "$root"
  fi
  # other keys of this image go (a changed package list / binary gives a new key)
  for old in "$OUT/$name"-*.oci.tar "$OUT/$name"-*.packages.txt; do
    [[ -e $old && $old != "$f" && $old != "${f%.oci.tar}.packages.txt" ]] && rm -f "$old"
  done
  echo "$f"
done
