#!/usr/bin/env bash
# Installs everything Ferry's tests and demo need on a fresh Debian bookworm machine (root):
# system packages (rsync, stunnel4, rclone, skopeo, iproute2, util-linux, openssl; acl and attr for
# the data-plane test's ACLs and xattrs; postgresql for the production Temporal of hack/temporal;
# chromium for the Temporal UI browser test, test/ui), npm
# dependencies, the temporal CLI (built once from the Go module proxy, cached under
# ${XDG_CACHE_HOME:-~/.cache}/ferry/bin) and the Temporal server, its schema tool and Web UI
# (hack/temporal/build.sh, cached beside it; ~20 s after the CLI build, whose Go build cache it reuses),
# and Docker Compose for `docker compose config` (hack/compose/build.sh; ~2 min once).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(rsync stunnel4 rclone skopeo iproute2 util-linux openssl ca-certificates acl attr postgresql chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# `npm install`, not `npm ci`: the registry reachable here does not serve the non-Linux optional
# platform packages of @swc/core (404), which `npm ci`'s lock-file check demands. `npm install`
# installs the exact versions package-lock.json pins and skips optional packages it cannot get.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm install (versions from package-lock.json)"
  npm install --no-audit --no-fund
fi

bash hack/install-temporal.sh
bash hack/temporal/build.sh >/dev/null
bash hack/compose/build.sh >/dev/null
echo "setup: done"
