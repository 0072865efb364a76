#!/usr/bin/env bash
# Builds the production Temporal server, its SQL schema tool and the Web UI server from the Go module
# proxy, at the versions the temporal CLI of hack/install-temporal.sh embeds (server 1.29.1, ui-server
# 2.42.1), with the wrapper module hack/temporal/build (go.mod pins the CLI's dependency versions, so
# Go's build cache from the CLI build is reused). Idempotent: nothing is rebuilt when the cache holds
# binaries built from the same go.mod/go.sum. Prints the cache directory on stdout (messages on stderr):
#   TEMPORAL_HOME=$(bash hack/temporal/build.sh)
#
# Cache layout (${FERRY_TEMPORAL_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/temporal-server-1.29.1}):
#   bin/temporal-server      go.temporal.io/server/cmd/server
#   bin/temporal-sql-tool    go.temporal.io/server/cmd/tools/sql
#   bin/temporal-ui-server   github.com/temporalio/ui-server/v2/cmd/server (the Web UI, assets embedded)
#   schema/postgresql/v12/   the server module's SQL schema (temporal/, visibility/)
#   config/dynamicconfig/    the server module's sample dynamic config (reference only)
#   stamp                    sha256 of go.mod + go.sum the binaries were built from
#
# Compiles at low priority, one package at a time (GOFLAGS -p=1): the machine is shared. Set
# FERRY_GO_PARALLEL=N to compile N packages at a time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
SERVER_VERSION=1.29.1
HOME_DIR="${FERRY_TEMPORAL_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/temporal-server-$SERVER_VERSION}"

log() { echo "temporal-build: $*" >&2; }

stamp=$(cat "$here/build/go.mod" "$here/build/go.sum" | sha256sum | cut -d' ' -f1)
if [ -f "$HOME_DIR/stamp" ] && [ "$(cat "$HOME_DIR/stamp")" = "$stamp" ] &&
  [ -x "$HOME_DIR/bin/temporal-server" ] && [ -x "$HOME_DIR/bin/temporal-sql-tool" ] &&
  [ -x "$HOME_DIR/bin/temporal-ui-server" ] && [ -d "$HOME_DIR/schema/postgresql/v12/temporal" ]; then
  log "Temporal server $SERVER_VERSION already built in $HOME_DIR"
  echo "$HOME_DIR"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "error: Go is required to build the Temporal server $SERVER_VERSION from the module proxy."
  log "Install Go (https://go.dev/dl/), or run Temporal from the images named in docker-compose.yml."
  exit 1
fi

log "building Temporal server $SERVER_VERSION, temporal-sql-tool and ui-server into $HOME_DIR with $(go version)"
tmp="$HOME_DIR.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/schema/postgresql" "$tmp/config"
trap 'rm -rf "$tmp"' EXIT
cd "$here/build"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly -p=${FERRY_GO_PARALLEL:-1}"
start=$(date +%s)
nice -n 10 go build -o "$tmp/bin/temporal-server" go.temporal.io/server/cmd/server
nice -n 10 go build -o "$tmp/bin/temporal-sql-tool" go.temporal.io/server/cmd/tools/sql
nice -n 10 go build -o "$tmp/bin/temporal-ui-server" github.com/temporalio/ui-server/v2/cmd/server
src=$(go list -m -f '{{.Dir}}' go.temporal.io/server)
cp -r "$src/schema/postgresql/v12" "$tmp/schema/postgresql/"
cp -r "$src/config/dynamicconfig" "$tmp/config/"
chmod -R u+w "$tmp"
echo "$stamp" >"$tmp/stamp"
rm -rf "$HOME_DIR"
mv "$tmp" "$HOME_DIR"
trap - EXIT
log "built in $(($(date +%s) - start)) s: $(ls "$HOME_DIR/bin" | tr '\n' ' ')"
echo "$HOME_DIR"
