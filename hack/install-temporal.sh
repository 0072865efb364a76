#!/usr/bin/env bash
# Installs the official Temporal CLI (which embeds the dev server Ferry runs by default) at the version
# Ferry is tested with. Idempotent: when a temporal binary of that version is already on PATH or in the
# cache directory, nothing is done. The binary's path is printed on stdout (messages go to stderr), so
#   TEMPORAL_BIN=$(bash hack/install-temporal.sh)
# works.
#
# Installs with `go install` from the Go module proxy into ${XDG_CACHE_HOME:-$HOME/.cache}/ferry/bin
# (tags after v1.5.x carry a replace directive in go.mod and cannot be `go install`ed).
#
# Environment: TEMPORAL_CLI_VERSION (default 1.5.1), FERRY_TEMPORAL_BIN_DIR (default the cache dir above).
set -euo pipefail

VERSION="${TEMPORAL_CLI_VERSION:-1.5.1}"
BIN_DIR="${FERRY_TEMPORAL_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/bin}"
MODULE=github.com/temporalio/cli

log() { echo "install-temporal: $*" >&2; }

# has_version BINARY: true when BINARY is the temporal CLI at $VERSION. Release builds report it in
# `temporal --version`; `go install` builds report 0.0.0-DEV unless built with our -ldflags, so their
# module version is read from the Go build info instead.
has_version() {
  local bin=$1 out
  [ -x "$bin" ] || return 1
  out=$("$bin" --version 2>/dev/null) || return 1
  case "$out" in
    "temporal version $VERSION "*) return 0 ;;
  esac
  if command -v go >/dev/null 2>&1; then
    go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$MODULE[[:space:]]+v$VERSION([[:space:]]|\$)" && return 0
  fi
  return 1
}

candidates=()
if on_path=$(command -v temporal 2>/dev/null); then candidates+=("$on_path"); fi
candidates+=("$BIN_DIR/temporal")
for bin in "${candidates[@]}"; do
  if has_version "$bin"; then
    log "temporal CLI $VERSION already installed"
    echo "$bin"
    exit 0
  fi
done

if ! command -v go >/dev/null 2>&1; then
  log "error: Go is required to install the temporal CLI $VERSION (go install $MODULE/cmd/temporal@v$VERSION)."
  log "Install Go (https://go.dev/dl/), or set TEMPORAL_ADDRESS to use an existing Temporal server,"
  log "or FERRY_TEMPORAL_BIN to an existing temporal binary."
  exit 1
fi

mkdir -p "$BIN_DIR"
log "installing temporal CLI $VERSION into $BIN_DIR with $(go version) (a cold build takes several minutes)"
GOBIN="$BIN_DIR" go install \
  -ldflags "-X $MODULE/temporalcli.Version=$VERSION" \
  "$MODULE/cmd/temporal@v$VERSION"

if ! has_version "$BIN_DIR/temporal"; then
  log "error: $BIN_DIR/temporal was built but does not report version $VERSION"
  exit 1
fi
log "installed $("$BIN_DIR/temporal" --version)"
echo "$BIN_DIR/temporal"
