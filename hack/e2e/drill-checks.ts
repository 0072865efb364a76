/**
 * Set-up and checks shared by the endpoint drills (test/e2e/tlsroute.e2e.test.ts,
 * test/e2e/ingress.e2e.test.ts, test/e2e/endpoint-auto.e2e.test.ts): the sample namespace and its
 * plan, the outcome of a migration started through a LabWorker, and "migrated intact" (PVCs Bound in
 * dst, every PVC's tree identical, the workloads as before, no Ferry object left). Uses jest's `expect`,
 * so only test files load it (not hack/demo.sh, which loads lib.ts).
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TemporalSession } from '../../src/cli/operations';
import type { MigrationState } from '../../src/core/state';
import type { MigrationPlan } from '../../src/plan/schema';
import { comparePVCs, ferryObjects, labPlan, pvcPhases, seedSample, waitUntil, workloadState } from './lib';

/**
 * Seeds the small sample namespace `ns` in src (hack/e2e/sample-app.sh: mixed owners, a 16 MiB random
 * file, a 16M sparse one; `ns` in dst deleted) and returns the plan that migrates it whole with
 * `endpoint` (one stage pass, quiesce, preserve-ownership, endpoint 120 s and server 300 s unless
 * `timeouts` says otherwise), the workloads' state before and the source PVC names, for
 * expectMigratedIntact.
 */
export async function sampleDrill(ns: string, endpoint: Record<string, unknown>, timeouts: Record<string, number> = {}): Promise<{ plan: MigrationPlan; before: Record<string, unknown>; srcPVCs: string[] }> {
  await seedSample(ns, { profile: 'small', owners: 'mixed', bigMiB: 16, sparse: '16M', dstNamespace: ns });
  const plan = labPlan({
    namespaces: [ns],
    stagePasses: 1,
    stageIntervalSeconds: 0,
    quiesce: true,
    endpoint,
    security: { mode: 'preserve-ownership' },
    timeouts: { endpointReadySeconds: 120, serverReadySeconds: 300, ...timeouts },
  });
  return { plan, before: workloadState(ns), srcPVCs: Object.keys(pvcPhases('ferry-src', ns)).sort() };
}

/**
 * The final state of migration `id`: its result when it succeeded, the state a failed workflow
 * carries in its ApplicationFailure's details otherwise.
 * @throws the workflow's error when it carries no state.
 */
export function migrationOutcome(session: TemporalSession, id: string): Promise<MigrationState> {
  return session.client.workflow.getHandle(id).result().then(
    (s) => s as MigrationState,
    (e: unknown) => {
      if (e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure && e.cause.details?.[0]) return e.cause.details[0] as MigrationState;
      throw e;
    },
  );
}

/**
 * Expects namespace `ns` migrated intact (same name in both clusters): the PVCs `srcPVCs` Bound in
 * dst (waits up to 60 s), every PVC's tree identical with owners (logged per PVC), the workloads
 * equal to `before` (workloadState before the migration), no Ferry object left in either cluster.
 */
export async function expectMigratedIntact(ns: string, srcPVCs: string[], before: Record<string, unknown>, log: (s: string) => void): Promise<void> {
  const dstPVCs = await waitUntil(() => {
    const p = pvcPhases('ferry-dst', ns);
    return Object.keys(p).length === srcPVCs.length && Object.values(p).every((x) => x === 'Bound') ? p : undefined;
  }, `the PVCs of ${ns} Bound in dst`, 60_000);
  expect(Object.keys(dstPVCs).sort()).toEqual([...srcPVCs].sort());
  const cmp = await comparePVCs(ns, ns, srcPVCs, { owners: true });
  for (const [pvc, c] of Object.entries(cmp)) {
    expect({ pvc, differences: c.differences.slice(0, 20) }).toEqual({ pvc, differences: [] });
    expect(c.entries).toBeGreaterThan(0);
    log(`  ${pvc}: ${c.entries} entries, ${(c.bytes / 1048576).toFixed(1)} MiB identical`);
  }
  expect(workloadState(ns)).toEqual(before);
  expect(ferryObjects([ns])).toEqual([]);
}
