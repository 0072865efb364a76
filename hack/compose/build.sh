#!/usr/bin/env bash
# Builds Docker Compose v5.6.0 from the Go module proxy (wrapper module hack/compose/build), so that
# docker-compose.yml is checked by the real `docker compose config` on a machine whose docker CLI has no
# compose plugin (test/cluster/compose-config.test.ts). Idempotent: nothing is rebuilt when the cache
# holds a binary built from the same go.mod/go.sum. Prints the binary's path on stdout:
#   COMPOSE=$(bash hack/compose/build.sh); "$COMPOSE" config        # or, as a plugin: docker compose config
#
# Cache: ${FERRY_COMPOSE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/docker-compose-5.6.0}/docker-compose
# (and cli-plugins/docker-compose beside it, for DOCKER_CONFIG=<that dir> docker compose ...).
# Compiles at low priority, one package at a time (the machine is shared); FERRY_GO_PARALLEL=N for more.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
VERSION=5.6.0
HOME_DIR="${FERRY_COMPOSE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/docker-compose-$VERSION}"

log() { echo "compose-build: $*" >&2; }

stamp=$(cat "$here/build/go.mod" "$here/build/go.sum" | sha256sum | cut -d' ' -f1)
if [ -f "$HOME_DIR/stamp" ] && [ "$(cat "$HOME_DIR/stamp")" = "$stamp" ] && [ -x "$HOME_DIR/docker-compose" ]; then
  log "Docker Compose $VERSION already built in $HOME_DIR"
  echo "$HOME_DIR/docker-compose"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  log "error: Go (>= 1.26.8) is required to build Docker Compose $VERSION; or install the docker compose plugin."
  exit 1
fi
log "building Docker Compose $VERSION into $HOME_DIR with $(go version)"
start=$(date +%s)
tmp="$HOME_DIR.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/cli-plugins"
trap 'rm -rf "$tmp"' EXIT
cd "$here/build"
GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly -p=${FERRY_GO_PARALLEL:-1}" nice -n 10 \
  go build -ldflags "-X github.com/docker/compose/v5/internal.Version=v$VERSION" -o "$tmp/docker-compose" github.com/docker/compose/v5/cmd
ln -s ../docker-compose "$tmp/cli-plugins/docker-compose"
echo "$stamp" >"$tmp/stamp"
rm -rf "$HOME_DIR"
mv "$tmp" "$HOME_DIR"
trap - EXIT
log "built in $(($(date +%s) - start)) s: $("$HOME_DIR/docker-compose" version)"
echo "$HOME_DIR/docker-compose"
