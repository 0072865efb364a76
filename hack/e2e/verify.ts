/**
 * The demo's checks (hack/demo.sh), over hack/e2e/lib.ts:
 *
 *   tsx hack/e2e/verify.ts snapshot NAMESPACE > before.json
 *       the source workloads' state before the migration
 *   tsx hack/e2e/verify.ts check PLAN BEFORE.json SUMMARY.json
 *       for every namespace of the plan: destination namespace and PVCs bound, every PVC's tree
 *       identical (owners compared in preserve-ownership mode), images at the destination with the
 *       source's digests, source workloads exactly as before and running again, no object of this
 *       migration (selected by its ferry.dev/migration label) left in either cluster; prints the figures of the summary (`ferry status ID -o json`).
 *       Exit 0 when everything holds, 1 otherwise.
 */
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { loadPlanFile } from '../../src/plan/load';
import type { MigrationState } from '../../src/core/state';
import { comparePVCs, DST_REGISTRY, ferryObjects, figuresTable, imageDigest, pvcPhases, readyReplicas, SRC_REGISTRY, waitUntil, workloadState } from './lib';

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'snapshot' && rest[0]) {
    process.stdout.write(`${JSON.stringify({ workloads: workloadState(rest[0]), ready: readyReplicas(rest[0]) }, null, 2)}\n`);
    return 0;
  }
  if (cmd !== 'check' || rest.length < 3) {
    process.stderr.write('usage: verify.ts snapshot NAMESPACE | verify.ts check PLAN BEFORE.json SUMMARY.json\n');
    return 2;
  }
  const plan = loadPlanFile(rest[0]!);
  const before = JSON.parse(readFileSync(rest[1]!, 'utf8')) as { workloads: Record<string, unknown>; ready: Record<string, number> };
  const summaryFile = JSON.parse(readFileSync(rest[2]!, 'utf8'));
  const summary = (summaryFile.state ?? summaryFile) as MigrationState;
  let failed = 0;
  const ok = (cond: boolean, what: string, detail = '') => {
    process.stdout.write(`${cond ? 'ok  ' : 'FAIL'} ${what}${detail ? `: ${detail}` : ''}\n`);
    if (!cond) failed++;
  };

  ok(summary.status === 'succeeded', 'migration succeeded', summary.status + (summary.error ? ` (${summary.error})` : ''));
  for (const ns of plan.namespaces) {
    const srcPVCs = pvcPhases('ferry-src', ns.source);
    const dstPVCs = await waitUntil(() => {
      const p = pvcPhases('ferry-dst', ns.destination);
      return Object.values(p).every((x) => x === 'Bound') ? p : undefined;
    }, `PVCs of ${ns.destination} bound`, 60_000).catch(() => pvcPhases('ferry-dst', ns.destination));
    ok(isDeepStrictEqual(Object.keys(dstPVCs).sort(), Object.keys(srcPVCs).sort()), `${ns.destination}: the destination has the source's PVCs`, Object.keys(dstPVCs).join(', '));
    ok(Object.values(dstPVCs).every((p) => p === 'Bound'), `${ns.destination}: every destination PVC is Bound`, JSON.stringify(dstPVCs));
    const owners = plan.security.mode === 'preserve-ownership';
    const cmp = await comparePVCs(ns.source, ns.destination, Object.keys(srcPVCs), { owners });
    for (const [pvc, c] of Object.entries(cmp)) {
      ok(c.differences.length === 0, `${ns.source}/${pvc}: identical tree (${c.entries} entries, ${c.files} files, ${(c.bytes / 1048576).toFixed(1)} MiB${owners ? ', owners compared' : ', owners not compared'})`, c.differences.slice(0, 10).join('; '));
    }
    if (plan.images.enabled && plan.images.mode === 'registry') {
      for (const repo of (plan.images.repositories ?? []).filter((r) => r.startsWith(`${ns.source}/`))) {
        const rest = repo.slice(ns.source.length + 1);
        // the sample's tag; other tags would be listed with skopeo list-tags
        const [a, b] = await Promise.all([imageDigest(SRC_REGISTRY, `${repo}:1`), imageDigest(DST_REGISTRY, `${ns.destination}/${rest}:1`)]);
        ok(!!a && a === b, `image ${repo}:1 at the destination with the same digest`, `${a} / ${b ?? 'missing'}`);
      }
    }
    const after = workloadState(ns.source);
    ok(isDeepStrictEqual(after, before.workloads), `${ns.source}: source workloads exactly as before`, JSON.stringify(after));
    const ready = await waitUntil(() => {
      const r = readyReplicas(ns.source);
      return isDeepStrictEqual(r, before.ready) ? r : undefined;
    }, 'the source workloads running again', 180_000).catch(() => readyReplicas(ns.source));
    ok(isDeepStrictEqual(ready, before.ready), `${ns.source}: source workloads running again`, JSON.stringify(ready));
  }
  // Only this migration's objects: another migration may run on the same clusters at the same time.
  const left = ferryObjects(undefined, summary.migrationId);
  ok(left.length === 0, `no object of migration ${summary.migrationId} (app.kubernetes.io/managed-by=ferry, ferry.dev/migration) in either cluster`, left.join(', '));
  process.stdout.write(`\n${figuresTable('demo', summary)}\n`);
  process.stdout.write(failed ? `\n${failed} check(s) FAILED\n` : '\nall checks passed\n');
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`verify: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
