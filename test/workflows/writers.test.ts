/**
 * Writers Ferry cannot stop (issue 8, item 3), in the namespace workflow against a real Temporal dev
 * server with the simulated clusters of ./support/fake-cluster.ts: re-discovery right before quiesce
 * (a workload created during the warm migration is quiesced too), checkSourceWriters right before the
 * final sync (deleting unmanaged pods with `unmanagedPods: delete`) and right after it, and the
 * rollback with the pods' names when a writer remains. Review findings A3/A4: a PVC the selection
 * matches that appears during the stage passes (a StatefulSet scaled 2 → 3 creates data-db-2) fails the
 * namespace at that re-discovery, before quiesce (nothing touched, source running); a quiesced
 * StatefulSet whose retention policy an operator sets back to Delete stops it right before the final
 * sync (checkSourceWriters with retentionGuard), source restored.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { renderView } from '../../src/cli/render';
import type { MigrationPlan } from '../../src/plan/schema';
import { createWorker } from '../../src/worker';
import { migrationWorkflow } from '../../src/workflows';
import type { MigrationSummary, NamespaceState } from '../../src/core/state';
import { FakeCluster, type SourceSpec } from './support/fake-cluster';
import { startTemporal, TEST_TUNING, testPlan, unique, workflowBundle } from './support/env';

jest.setTimeout(90_000);

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  [env] = await Promise.all([startTemporal(), workflowBundle()]);
});

afterAll(async () => {
  await env?.teardown();
});

const SHOP = (): SourceSpec => ({
  shop: {
    pvcs: [
      { name: 'data', bytes: 1000 },
      { name: 'logs', bytes: 300 },
    ],
    workloads: [{ name: 'web', replicas: 2 }],
  },
});

async function run(fake: FakeCluster, plan: MigrationPlan): Promise<{ summary: MigrationSummary; failed: boolean }> {
  const taskQueue = unique('q-tq');
  const worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: fake.activities(), workflowBundle: await workflowBundle() });
  return worker.runUntil(async () => {
    const id = unique('q-mig');
    const handle: WorkflowHandle<typeof migrationWorkflow> = await env.client.workflow.start(migrationWorkflow, { taskQueue, workflowId: id, args: [{ migrationId: id, plan, tuning: TEST_TUNING }] });
    try {
      return { summary: await handle.result(), failed: false };
    } catch (err) {
      if (!(err instanceof WorkflowFailedError) || !(err.cause instanceof ApplicationFailure)) throw err;
      return { summary: err.cause.details?.[0] as MigrationSummary, failed: true };
    }
  });
}

const shopResult = (s: MigrationSummary): NamespaceState => s.namespaces.find((n) => n.source === 'shop')!.result!;
/** The namespace's activities from the first stage sync on. */
const fromStage = (fake: FakeCluster) => {
  const order = fake.activityOrder({ namespace: 'shop' });
  return order.slice(order.indexOf('runTransfer'));
};

test('a workload and a bare pod created during the stage passes: re-discovered, quiesced / deleted, checks around the final sync', async () => {
  const fake = new FakeCluster({ source: SHOP(), transferMs: 30 });
  let added = false;
  fake.hold = (req) => {
    if (!req.final && !added) {
      added = true;
      fake.addWorkload('shop', 'late', 1);
      fake.addPod('shop', { name: 'debug', pvcs: ['data'] });
    }
    return false;
  };
  const { summary, failed } = await run(fake, testPlan({ unmanagedPods: 'delete' }));
  expect({ failed, error: summary.error }).toEqual({ failed: false, error: undefined });
  expect(fromStage(fake)).toEqual([
    'runTransfer',
    'runTransfer',
    'discoverNamespace',
    'quiesce',
    'waitForQuiesced',
    'checkSourceWriters',
    'runTransfer',
    'runTransfer',
    'checkSourceWriters',
    'releaseAgents',
    'unquiesce',
    'cleanup',
  ]);
  const checks = fake.journal().filter((e) => e.activity === 'checkSourceWriters' && e.event === 'start').map((e) => e.detail);
  expect(checks).toEqual(['shop delete=true', 'shop delete=false']);
  const shop = shopResult(summary);
  // The late workload was quiesced and restored; the bare pod deleted before the final sync.
  expect(shop.quiesced.map((r) => r.workload.name)).toEqual(['web', 'late']);
  expect(fake.replicas('shop', 'late')).toBe(1);
  expect(fake.replicas('shop', 'web')).toBe(2);
  expect(fake.pods('shop')).toEqual([]);
  expect(shop.warnings).toEqual(['deleted pods Ferry cannot quiesce before the final sync (unmanagedPods: delete): debug']);
  expect(shop.unmanagedPods).toBeUndefined(); // none left; the deleted one is in the warnings
  // The final sync ran with no writer: the copy equals the source.
  for (const pvc of ['data', 'logs']) expect(fake.data('shop', pvc).destination).toBe(fake.data('shop', pvc).source);
});

test('default unmanagedPods (fail): a pod found by re-discovery stops the namespace before quiesce; nothing is scaled', async () => {
  const fake = new FakeCluster({ source: SHOP(), transferMs: 30 });
  fake.hold = (req) => {
    if (!req.final && fake.pods('shop').length === 0) fake.addPod('shop', { name: 'debug', pvcs: ['logs'] });
    return false;
  };
  const { summary, failed } = await run(fake, testPlan());
  expect(failed).toBe(true);
  const shop = shopResult(summary);
  expect(shop.status).toBe('rolled-back');
  expect(shop.error).toMatch(/before quiesce, 1 pod other than Ferry's mounts source PVCs of shop and could write: pod debug \(mounts logs; no controller\).*unmanagedPods: delete/);
  expect(fromStage(fake)).toEqual(['runTransfer', 'runTransfer', 'discoverNamespace', 'cleanup']);
  expect(fake.replicas('shop', 'web')).toBe(2);
  expect(shop.downtime).toBeUndefined();
});

test('a pod its controller recreates: the final sync does not start, the source is restored', async () => {
  const fake = new FakeCluster({ source: SHOP(), transferMs: 30 });
  fake.hold = (req) => {
    if (!req.final && fake.pods('shop').length === 0) fake.addPod('shop', { name: 'pg-0', pvcs: ['data'], owner: 'postgresql pg' });
    return false;
  };
  const { summary, failed } = await run(fake, testPlan({ unmanagedPods: 'delete' }));
  expect(failed).toBe(true);
  const shop = shopResult(summary);
  expect(shop.error).toMatch(/after quiesce, before the final sync, 1 pod other than Ferry's mounts source PVCs of shop and could write: pod pg-0 \(mounts data; controlled by postgresql pg\)/);
  expect(fromStage(fake)).toEqual(['runTransfer', 'runTransfer', 'discoverNamespace', 'quiesce', 'waitForQuiesced', 'checkSourceWriters', 'unquiesce', 'cleanup']);
  expect(fake.journal().some((e) => e.activity === 'runTransfer' && e.detail?.includes('final=true'))).toBe(false);
  expect(fake.replicas('shop', 'web')).toBe(2);
  expect(shop.unmanagedPods).toEqual([{ name: 'pg-0', pvcs: ['data'], owner: 'postgresql pg' }]);
  // `ferry status` lists them.
  const text = renderView({ id: summary.migrationId, workflowStatus: 'FAILED', state: summary, namespaces: { shop }, live: {}, searchAttributes: {}, warnings: [] });
  expect(text).toContain('pods Ferry cannot quiesce mount source PVCs (plan unmanagedPods decides: fail or delete):\n      pg-0: mounts data; controlled by postgresql pg');
});

test('a pod that mounts a source PVC during the final sync: its result is not trusted, rollback', async () => {
  const fake = new FakeCluster({ source: SHOP(), transferMs: 30 });
  fake.hold = (req) => {
    if (req.final && fake.pods('shop').length === 0) fake.addPod('shop', { name: 'intruder', pvcs: ['data'] });
    return false;
  };
  const { summary, failed } = await run(fake, testPlan({ deleteDestinationPVCsOnRollback: true }));
  expect(failed).toBe(true);
  const shop = shopResult(summary);
  expect(shop.error).toMatch(/the final sync is not trusted: right after it, 1 pod other than Ferry's mounts source PVCs of shop and could write: pod intruder/);
  expect(shop.finalSynced).toBe(false);
  expect(fromStage(fake).slice(-5)).toEqual(['runTransfer', 'checkSourceWriters', 'unquiesce', 'cleanup', 'deleteDestinationPVCs']);
  expect(fake.replicas('shop', 'web')).toBe(2);
});

test('item 14: a rollout accepted by acceptRevisionChange is announced in the warnings', async () => {
  const source = SHOP();
  source.shop!.pendingRollouts = [{ workload: 'web', detail: '1 of 2 pods run revision web-1 while the template is web-2 (partition 1)' }];
  const fake = new FakeCluster({ source, transferMs: 20 });
  const { summary, failed } = await run(fake, testPlan({ acceptRevisionChange: true }));
  expect(failed).toBe(false);
  expect(shopResult(summary).warnings).toEqual([
    'Deployment shop/web is in the middle of a rollout (1 of 2 pods run revision web-1 while the template is web-2 (partition 1)); accepted by acceptRevisionChange',
  ]);
});

const DB = (): SourceSpec => ({
  shop: {
    pvcs: [
      { name: 'data-db-0', bytes: 1000 },
      { name: 'data-db-1', bytes: 1000 },
    ],
    workloads: [{ name: 'db', replicas: 2 }],
  },
});

test('A4: a PVC created during the stage passes fails the namespace before quiesce, naming it; the source keeps running', async () => {
  const fake = new FakeCluster({ source: DB(), transferMs: 30 });
  let added = false;
  fake.hold = (req) => {
    if (!req.final && !added) {
      added = true;
      fake.addPVC('shop', { name: 'data-db-2', bytes: 500 });
    }
    return false;
  };
  const { summary, failed } = await run(fake, testPlan());
  expect(failed).toBe(true);
  const shop = shopResult(summary);
  expect(shop.status).toBe('rolled-back');
  expect(shop.error).toMatch(/before quiesce, 1 PVC of shop that the selection matches appeared since the migration discovered its PVCs: data-db-2\..*nothing was quiesced/);
  expect(shop.error).toMatch(/a new migration whose plan selects them.*narrow this namespace's selection/);
  // Nothing was quiesced, no final sync ran: only cleanup of the transfer objects after the re-discovery.
  expect(fromStage(fake)).toEqual(['runTransfer', 'runTransfer', 'discoverNamespace', 'cleanup']);
  expect(fake.replicas('shop', 'db')).toBe(2);
  expect(shop.downtime).toBeUndefined();
  expect(shop.finalSynced).toBe(false);
  expect(shop.pvcs.map((p) => p.name)).toEqual(['data-db-0', 'data-db-1']);
});

test('A3: a retention policy set back to Delete while quiesced stops the namespace before the final sync; the source is restored', async () => {
  const fake = new FakeCluster({ source: DB(), transferMs: 30 });
  let reverted = false;
  fake.hold = (req) => {
    if (!req.final && !reverted) {
      reverted = true;
      fake.revertRetention('shop');
    }
    return false;
  };
  const { summary, failed } = await run(fake, testPlan());
  expect(failed).toBe(true);
  const shop = shopResult(summary);
  expect(shop.status).toBe('rolled-back');
  expect(shop.error).toMatch(/StatefulSet shop\/db: its persistentVolumeClaimRetentionPolicy is \{"whenScaled":"Delete"\} again/);
  expect(fromStage(fake)).toEqual(['runTransfer', 'runTransfer', 'discoverNamespace', 'quiesce', 'waitForQuiesced', 'checkSourceWriters', 'unquiesce', 'cleanup']);
  expect(fake.journal().some((e) => e.activity === 'runTransfer' && e.detail?.includes('final=true'))).toBe(false);
  expect(fake.replicas('shop', 'db')).toBe(2);
});
