/**
 * Issue 9 §3: plan maxSyncsPerNode bounds the syncs of PVCs in use on one source node, stage and final,
 * while PVCs of other nodes (and PVCs mounted nowhere) still fill the namespace's concurrency. Real
 * Temporal dev server, simulated clusters (./support/fake-cluster.ts).
 */
import { migrationWorkflow } from '../../src/workflows';
import { FakeCluster, type SourceSpec } from './support/fake-cluster';
import { suiteTemporal, TEST_TUNING, testPlan, unique, withFakeWorker } from './support/env';

jest.setTimeout(90_000);

const temporal = suiteTemporal();

/** Six PVCs in use on node-a, three on node-b, two mounted nowhere. */
const SPEC: SourceSpec = {
  shop: {
    pvcs: [
      ...Array.from({ length: 6 }, (_, i) => ({ name: `a${i}`, bytes: 1000, nodeName: 'node-a' })),
      ...Array.from({ length: 3 }, (_, i) => ({ name: `b${i}`, bytes: 1000, nodeName: 'node-b' })),
      { name: 'idle0', bytes: 1000 },
      { name: 'idle1', bytes: 1000 },
    ],
    workloads: [{ name: 'app', replicas: 1 }],
  },
};

async function migrate(plan: Parameters<typeof testPlan>[0]): Promise<FakeCluster> {
  const fake = new FakeCluster({ source: SPEC, transferMs: 150 });
  const env = temporal();
  await withFakeWorker(env, fake, async (taskQueue) => {
    const id = unique('mig');
    const handle = await env.client.workflow.start(migrationWorkflow, { taskQueue, workflowId: id, args: [{ migrationId: id, plan: testPlan(plan), tuning: TEST_TUNING }] });
    expect((await handle.result()).status).toBe('succeeded');
  });
  return fake;
}

test('maxSyncsPerNode 2: never more than 2 syncs of node-a (or node-b) at once, while the namespace runs more', async () => {
  const fake = await migrate({ stagePasses: 1, stageIntervalSeconds: 0, concurrency: 6, finalConcurrency: 6, maxSyncsPerNode: 2 });
  expect(fake.maxConcurrentByNode).toEqual({ 'node-a': 2, 'node-b': 2 });
  // the other node's and the idle PVCs filled the slots node-a could not use
  expect(fake.maxConcurrentTransfers).toBeGreaterThan(2);
  expect(fake.maxConcurrentTransfers).toBeLessThanOrEqual(6);
});

test('without the limit, node-a runs as many syncs as the namespace concurrency allows', async () => {
  const fake = await migrate({ stagePasses: 1, stageIntervalSeconds: 0, concurrency: 6, finalConcurrency: 6 });
  expect(fake.maxConcurrentByNode['node-a']).toBeGreaterThan(2);
});
