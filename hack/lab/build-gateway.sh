#!/usr/bin/env bash
# Build the lab's Gateway API implementation from the Go module proxy, reproducibly (committed
# go.mod/go.sum of the wrapper module gateway-build/) and cached under
# ${FERRY_LAB_CACHE:-/var/cache/ferry-lab}/<key>/:
#
#   <key>/bin/traefik     github.com/traefik/traefik/v3 $TRAEFIK_VERSION, cmd/traefik
#   <key>/crds/*.yaml     the Gateway API standard-channel CRDs of sigs.k8s.io/gateway-api, the
#                         version traefik's go.mod requires (config/crd/standard, verbatim; the
#                         safe-upgrades ValidatingAdmissionPolicy of that directory is left out)
#   <key>/rbac/gateway.yaml  traefik's RBAC for its Gateway API provider (the module's
#                         docs/content/reference/dynamic-configuration/kubernetes-gateway-rbac.yml)
#   <key>/rbac/ingress-nginx.yaml  traefik's RBAC for its Ingress NGINX provider (same directory,
#                         kubernetes-ingress-nginx-rbac.yml; used by ingress.sh)
#
# Traefik's go.mod cannot be built from the module proxy as it stands; the wrapper module does
# three things about it (hack/lab/README.md, "Gateway API"):
#   * github.com/traefik/traefik/dynamic/ext (`=> ./pkg/config/dynamic/ext` upstream, a nested
#     module, so neither in the traefik/v3 zip nor served): gateway-build/ext, the two empty types
#     upstream has there.
#   * github.com/abbot/go-http-auth (upstream: `=> github.com/containous/go-http-auth <pseudo>`, a
#     fork the proxy refuses): abbot/go-http-auth v0.4.0 from the proxy, copied to
#     gateway-build/.gen/go-http-auth, plus CheckSecret and DigestAuth.RequireAuthStale
#     (gateway-build/patches/go-http-auth-fork.go.in), the fork's two additions traefik calls.
#   * github.com/go-acme/lego/v5 (the ACME DNS-01 providers, linked by the static configuration):
#     six providers need modules the proxy refuses (akamai edgegrid v13, nrdcg/oci-go-sdk,
#     huaweicloud-sdk-go-v3 v0.1.213, ucloud-sdk-go v0.22.116, sacloud-sdk-go v0.1.0,
#     yandex-cloud go-sdk/services/dns v0.0.94): lego is copied from the proxy to
#     gateway-build/.gen/lego without those six (edgedns, huaweicloud, oraclecloud, sakuracloud,
#     ucloud, yandexcloud) and its provider table without their entries. The lab uses no ACME.
# gateway-build/.gen is made by this script from the module cache (not committed).
#
#   hack/lab/build-gateway.sh               build what is missing (idempotent, no-op when cached)
#   hack/lab/build-gateway.sh --print-dir   print the output dir of the current key (no build)
#   hack/lab/build-gateway.sh --gen         (re)make gateway-build/.gen only (for go mod tidy)
#   hack/lab/build-gateway.sh --force       rebuild even if the outputs exist
set -euo pipefail

TRAEFIK_VERSION=${TRAEFIK_VERSION:-v3.7.13}
TRAEFIK_MOD=github.com/traefik/traefik/v3
LEGO_DROP=(edgedns huaweicloud oraclecloud sakuracloud ucloud yandexcloud)

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GB=$LAB_DIR/gateway-build
CACHE_ROOT=${FERRY_LAB_CACHE:-/var/cache/ferry-lab}

log() { printf '[build-gateway %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# module@version -> its directory in the module cache (downloaded when missing)
mod_dir() { (cd "$GB" && go mod download -json "$1") | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p'; }
# the version of module $1 that gateway-build/go.mod selects
mod_version() { sed -nE "s#^(require)?\s*$1 (v[^ ]+)( // indirect)?\$#\2#p" "$GB/go.mod" | head -n1; }

gen() { # gateway-build/.gen from the module cache; idempotent (rewritten when the inputs change)
  local lego_ver auth_ver stamp lego auth p
  lego_ver=$(mod_version github.com/go-acme/lego/v5)
  auth_ver=v0.4.0
  [[ -n $lego_ver ]] || { echo "gateway-build/go.mod requires no github.com/go-acme/lego/v5" >&2; exit 1; }
  stamp="lego $lego_ver drop ${LEGO_DROP[*]}; go-http-auth $auth_ver $(sha256sum <"$GB/patches/go-http-auth-fork.go.in" | cut -c1-12)"
  [[ -f $GB/.gen/stamp && $(<"$GB/.gen/stamp") == "$stamp" ]] && return 0
  rm -rf "$GB/.gen"
  mkdir -p "$GB/.gen"
  # GOFLAGS=-mod=mod: a module that is only a replacement target is not in go.sum's require graph
  lego=$(GOFLAGS=-mod=mod mod_dir "github.com/go-acme/lego/v5@$lego_ver")
  auth=$(GOFLAGS=-mod=mod mod_dir "github.com/abbot/go-http-auth@$auth_ver")
  [[ -f $lego/go.mod && -f $auth/basic.go ]] || { echo "cannot download lego $lego_ver / go-http-auth $auth_ver" >&2; exit 1; }
  cp -r "$lego" "$GB/.gen/lego"
  chmod -R u+w "$GB/.gen/lego"
  for p in "${LEGO_DROP[@]}"; do rm -rf "$GB/.gen/lego/providers/dns/$p"; done
  # the provider table without the dropped providers: their import lines and their `case` + `return` pairs
  awk -v drop="^($(IFS='|'; echo "${LEGO_DROP[*]}"))\$" '
    /^\t"github.com\/go-acme\/lego\/v5\/providers\/dns\// { p = $0; sub(/.*\/providers\/dns\//, "", p); sub(/".*/, "", p); if (p ~ drop) next }
    /^\tcase "/ { getline nxt; q = nxt; sub(/^\t\treturn /, "", q); sub(/\..*/, "", q); if (q ~ drop) next; print; print nxt; next }
    { print }' "$lego/providers/dns/zz_gen_dns_providers.go" >"$GB/.gen/lego/providers/dns/zz_gen_dns_providers.go"
  for p in "${LEGO_DROP[@]}"; do
    ! grep -q "providers/dns/$p\"" "$GB/.gen/lego/providers/dns/zz_gen_dns_providers.go" || { echo "lego provider table: $p still there" >&2; exit 1; }
  done
  mkdir -p "$GB/.gen/go-http-auth"
  (cd "$auth" && cp auth.go basic.go digest.go md5crypt.go misc.go users.go LICENSE "$GB/.gen/go-http-auth/")
  chmod u+w "$GB/.gen/go-http-auth"/*
  cp "$GB/patches/go-http-auth-fork.go.in" "$GB/.gen/go-http-auth/fork.go"
  printf '// abbot/go-http-auth %s (no go.mod upstream) + CheckSecret; made by hack/lab/build-gateway.sh\nmodule github.com/abbot/go-http-auth\n\ngo 1.20\n' "$auth_ver" >"$GB/.gen/go-http-auth/go.mod"
  echo "$stamp" >"$GB/.gen/stamp"
  log "made gateway-build/.gen ($stamp)"
}

cache_key() {
  local sum
  sum=$( (cd "$GB" && cat go.mod go.sum ext/go.mod ext/*.go patches/*) | sha256sum | cut -c1-10)
  echo "gateway-traefik-${TRAEFIK_VERSION}_$(go env GOVERSION)_$(go env GOOS)-$(go env GOARCH)_${sum}"
}

FORCE=0
case "${1:-}" in
  --gen) gen; exit 0 ;;
  --force) FORCE=1 ;;
  --print-dir) echo "$CACHE_ROOT/$(cache_key)"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--force|--gen|--print-dir]" >&2; exit 2 ;;
esac

command -v go >/dev/null || { echo "go not found (need Go >= 1.26)" >&2; exit 1; }
grep -Eq "^(require)?\s*$TRAEFIK_MOD $TRAEFIK_VERSION( // indirect)?\$" "$GB/go.mod" ||
  { echo "gateway-build/go.mod does not require $TRAEFIK_MOD $TRAEFIK_VERSION" >&2; exit 1; }

mkdir -p "$CACHE_ROOT"
exec 9<"$CACHE_ROOT"
flock 9 # one build at a time per cache root (build-binaries.sh and build-csi.sh take the same lock)

KEY=$(cache_key)
OUT=$CACHE_ROOT/$KEY
BIN=$OUT/bin
export GOCACHE=${FERRY_LAB_GOCACHE:-$CACHE_ROOT/gocache}
export GOTOOLCHAIN=local
export CGO_ENABLED=${CGO_ENABLED:-0}

# traefik's RBAC files for the providers the lab runs, from the module at the tag
install_rbac() {
  local traefik
  traefik=$(mod_dir "$TRAEFIK_MOD@$TRAEFIK_VERSION")
  mkdir -p "$OUT/rbac"
  install -m 0644 "$traefik/docs/content/reference/dynamic-configuration/kubernetes-gateway-rbac.yml" "$OUT/rbac/gateway.yaml"
  install -m 0644 "$traefik/docs/content/reference/dynamic-configuration/kubernetes-ingress-nginx-rbac.yml" "$OUT/rbac/ingress-nginx.yaml"
}

if [[ $FORCE == 0 && -x $BIN/traefik && -s $OUT/crds/.done && -s $OUT/rbac/gateway.yaml ]]; then
  log "traefik present in $BIN, skipping"
  [[ -s $OUT/rbac/ingress-nginx.yaml ]] || { install_rbac; log "added rbac/ingress-nginx.yaml (a key cached before ingress.sh)"; }
  ln -sfn "$KEY" "$CACHE_ROOT/gateway-current"
  exit 0
fi

log "cache key $KEY"
mkdir -p "$BIN"
T0=$(date +%s)
tmp=$(mktemp -d "$OUT/tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

gen
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
log "go mod download ..."
(cd "$GB" && go mod download)
T1=$(date +%s)
log "building traefik $TRAEFIK_VERSION (nice 10) ..."
(cd "$GB" && nice -n 10 go build -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
  -o "$tmp/" "$TRAEFIK_MOD/cmd/traefik")
T2=$(date +%s)
mv -f "$tmp/traefik" "$BIN/traefik"

# the standard-channel CRDs exactly as the module publishes them
gwapi=$(mod_dir "sigs.k8s.io/gateway-api@$(mod_version sigs.k8s.io/gateway-api)")
rm -rf "$OUT/crds"
mkdir -p "$OUT/crds"
install -m 0644 "$gwapi"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$OUT/crds/"
rm -f "$OUT/crds/gateway.networking.k8s.io_vap_safeupgrades.yaml"
ls "$OUT/crds" >"$OUT/crds/.done"
install_rbac

echo "$(date -u +%FT%TZ) download=$((T1 - T0))s traefik=$((T2 - T1))s cgo=$CGO_ENABLED" >>"$OUT/build.log"
ln -sfn "$KEY" "$CACHE_ROOT/gateway-current"
if [[ ${FERRY_LAB_KEEP_OLD:-0} != 1 ]]; then
  for d in "$CACHE_ROOT"/gateway-traefik-*; do
    [[ -d $d && $d != "$OUT" ]] && { log "removing old key $(basename "$d")"; rm -rf "$d"; }
  done
fi
log "done in $(($(date +%s) - T0))s (download $((T1 - T0))s, traefik $((T2 - T1))s)"
