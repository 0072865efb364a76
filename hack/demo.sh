#!/usr/bin/env bash
# `npm run demo`: a real migration on the lab, end to end, from a fresh clone.
#
#   0. set-up (bash hack/setup.sh: system packages, npm dependencies, the temporal CLI), before
#      anything that needs them
#   1. the lab up (bash hack/lab/lab.sh up: two clusters src/dst, registries, LoadBalancers, storage)
#   2. the sample namespace ferry-demo seeded in src (hack/e2e/sample-app.sh; recreated if present)
#   3. `ferry worker` in the background (embedded Temporal dev server, Web UI http://127.0.0.1:8233)
#   4. `ferry migrate -f examples/lab-plan.yaml` with live progress, then its summary
#   5. checks (hack/e2e/verify.ts): identical trees in every PVC, images with equal digests, source
#      workloads back exactly as before, no object of this migration left in either cluster (other
#      migrations running at the same time are not counted); figures printed
#   6. the worker stopped (the Temporal dev server keeps running: `npm run ferry -- server stop`)
# Exit status: 0 when the migration succeeded and every check holds, non-zero otherwise.
#
# Environment: DEMO_NAMESPACE (default ferry-demo; the plan's namespace is rewritten to it),
# SAMPLE_PROFILE (full | small, see hack/e2e/sample-app.sh), DEMO_KEEP=1 keeps the work dir.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
NS=${DEMO_NAMESPACE:-ferry-demo}
export KUBECONFIG=/var/lib/ferry-lab/kubeconfig
unset TEMPORAL_ADDRESS
WORK=$(mktemp -d /tmp/ferry-demo.XXXXXX)
FERRY=(node --max-semi-space-size=2 --max-old-space-size=512 --import tsx src/client.ts)  # heap flags: src/temporal/worker-heap.ts
WORKER_PID=
T0=$(date +%s)

step() { printf '\n\033[1m== %s\033[0m (%ss)\n' "$*" "$(($(date +%s) - T0))"; }

stop_worker() {
  if [[ -n $WORKER_PID ]] && kill -0 "$WORKER_PID" 2>/dev/null; then
    kill -TERM "$WORKER_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$WORKER_PID" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$WORKER_PID" 2>/dev/null && kill -KILL "$WORKER_PID" 2>/dev/null || true
  fi
  WORKER_PID=
}
finish() {
  local rc=$?
  stop_worker
  if [[ $rc -ne 0 ]]; then
    echo "demo FAILED (exit $rc); worker log: $WORK/worker.log" >&2
  elif [[ ${DEMO_KEEP:-} != 1 ]]; then
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

step "set-up (hack/setup.sh: packages, npm dependencies, temporal CLI)"
# A fresh clone has no node_modules: everything below runs TypeScript through npx tsx.
bash hack/setup.sh

step "lab up"
# `lab.sh up` is idempotent, but on a running lab it sometimes fails spuriously (SIGPIPE from
# `etcd --version | head -1` under pipefail in build-binaries.sh; "Address already assigned"): a
# healthy lab is used as it is, and `up` gets a second try.
if bash hack/lab/lab.sh status >/dev/null 2>&1; then
  echo "the lab is up and healthy"
else
  bash hack/lab/lab.sh up || { echo "lab.sh up failed; trying once more" >&2; bash hack/lab/lab.sh up; }
fi

step "sample namespace $NS in src (idempotent: recreated)"
bash hack/e2e/sample-app.sh "$NS"
kubectl --context ferry-src -n "$NS" get deploy,sts,cronjob,job,pvc
PLAN=$WORK/plan.yaml
sed "s/ferry-demo/$NS/g" examples/lab-plan.yaml > "$PLAN"
npx tsx hack/e2e/verify.ts snapshot "$NS" > "$WORK/before.json"

step "ferry worker (background, log in $WORK/worker.log)"
"${FERRY[@]}" worker > "$WORK/worker.log" 2>&1 &
WORKER_PID=$!
for _ in $(seq 1 180); do
  grep -q '"msg":"worker started"' "$WORK/worker.log" && break
  kill -0 "$WORKER_PID" 2>/dev/null || { cat "$WORK/worker.log" >&2; echo "the worker exited" >&2; exit 1; }
  sleep 1
done
grep -q '"msg":"worker started"' "$WORK/worker.log" || { tail -20 "$WORK/worker.log" >&2; echo "the worker did not start" >&2; exit 1; }
grep -o '"msg":"[^"]*Temporal[^"]*"' "$WORK/worker.log" | head -2 || true

ID=lab-demo-$(date -u +%Y%m%d-%H%M%S)
step "ferry plan -f examples/lab-plan.yaml --id $ID (dry run: what the migration would do; read-only)"
"${FERRY[@]}" plan -f "$PLAN" --id "$ID"

step "ferry migrate -f examples/lab-plan.yaml --id $ID"
set +e
"${FERRY[@]}" migrate -f "$PLAN" --id "$ID"
MIGRATE_RC=$?
set -e
echo "ferry migrate exited $MIGRATE_RC"
"${FERRY[@]}" status "$ID" -o json > "$WORK/summary.json"

step "verify"
set +e
npx tsx hack/e2e/verify.ts check "$PLAN" "$WORK/before.json" "$WORK/summary.json"
VERIFY_RC=$?
set -e

stop_worker
step "done"
# The dev server is its own process and outlives the worker: the migration stays visible in the Web UI.
"${FERRY[@]}" server status || true
echo "(\`npm run ferry -- server stop\` stops the Temporal dev server)"
if [[ $MIGRATE_RC -ne 0 || $VERIFY_RC -ne 0 ]]; then
  echo "demo FAILED: ferry migrate exit $MIGRATE_RC, verification exit $VERIFY_RC"
  exit 1
fi
echo "demo OK: namespace $NS migrated from ferry-src to ferry-dst, data and images verified (${SECONDS}s)"
