/**
 * Issue 8 item 4: a stage pass that ends partial (rsync exit 23, e.g. files the non-root client cannot
 * read) is not a done pass. Cutover — the manual update and the automatic one — is held back while
 * the last stage pass of a PVC was partial, until a clean pass or `ferry cutover --force`; `ferry
 * status` shows it. Real Temporal dev server, simulated clusters (./support/fake-cluster.ts).
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { getMigration, type TemporalSession } from '../../src/cli/operations';
import { renderView } from '../../src/cli/render';
import type { MigrationPlan } from '../../src/plan/schema';
import { createWorker } from '../../src/worker';
import { migrationWorkflow } from '../../src/workflows';
import { cutoverUpdate, cutoverWithRequestUpdate, namespaceStateQuery, namespaceWorkflowId } from '../../src/workflows/definitions';
import type { MigrationSummary, NamespaceState } from '../../src/core/state';
import { FakeCluster, type SourceSpec } from './support/fake-cluster';
import { startTemporal, TEST_TUNING, testPlan, unique, waitFor, workflowBundle } from './support/env';

jest.setTimeout(90_000);

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  [env] = await Promise.all([startTemporal(), workflowBundle()]);
});

afterAll(async () => {
  await env?.teardown();
});

const SHOP: SourceSpec = {
  shop: {
    pvcs: [
      { name: 'data', bytes: 1000 },
      { name: 'pgdata', bytes: 500 },
    ],
    workloads: [{ name: 'db', replicas: 1 }],
  },
};

async function withWorker<T>(fake: FakeCluster, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = unique('tq');
  const worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: fake.activities(), workflowBundle: await workflowBundle() });
  return worker.runUntil(fn(taskQueue));
}

async function start(taskQueue: string, plan: MigrationPlan): Promise<WorkflowHandle<typeof migrationWorkflow>> {
  const id = unique('mig');
  return env.client.workflow.start(migrationWorkflow, { taskQueue, workflowId: id, args: [{ migrationId: id, plan, tuning: TEST_TUNING }] });
}

const nsHandle = (migration: WorkflowHandle, ns: string) => env.client.workflow.getHandle(namespaceWorkflowId(migration.workflowId, ns));
const nsState = (migration: WorkflowHandle, ns: string) => nsHandle(migration, ns).query(namespaceStateQuery);

async function expectRejected(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(pattern);
}

/** `ferry status ID` as the CLI prints it (getMigration + renderView over the test's client). */
async function statusText(id: string): Promise<string> {
  const session: TemporalSession = { client: env.client, address: 'test', namespace: 'default', taskQueue: 'test', close: async () => undefined };
  return renderView(await getMigration(session, id));
}

const nsResult = (s: MigrationSummary, ns: string): NamespaceState => s.namespaces.find((n) => n.source === ns)!.result!;

test('automatic cutover is held back by a partial stage pass, refused without --force, then forced', async () => {
  const fake = new FakeCluster({ source: SHOP, transferMs: 30 });
  // Every stage pass of pgdata ends partial (a 0700 PGDATA the client's uid cannot read).
  fake.partialTransfer({ namespace: 'shop', pvc: 'pgdata', final: false, times: 100, failedFiles: ['PG_VERSION', 'base/1/1259'] });
  const summary = await withWorker(fake, async (tq) => {
    const handle = await start(tq, testPlan({ stagePasses: 1, stageIntervalSeconds: 0 }));
    const st = await waitFor('cutover to be held back', async () => {
      const s = await nsState(handle, 'shop');
      return s.cutoverBlocked ? s : undefined;
    });
    expect(st.phase).toBe('stage');
    expect(st.cutoverBlocked!.pvcs).toEqual(['pgdata']);
    expect(st.cutoverBlocked!.reason).toMatch(/partial for pgdata .*rsync exit 23.*PG_VERSION.*uid 65532.*preserve-ownership.*ferry cutover .* --force/);
    // Status says so instead of "ready for cutover".
    const text = await statusText(handle.workflowId);
    expect(text).toMatch(/pgdata\s+PARTIAL .*last stage pass partial: .*PG_VERSION/);
    expect(text).toMatch(/CUTOVER HELD BACK: .*--force/);
    expect(text).not.toMatch(/ready for cutover/);
    // Nothing was quiesced: the applications keep running.
    expect(fake.activityOrder({ namespace: 'shop' })).not.toContain('quiesce');
    expect(fake.replicas('shop', 'db')).toBe(1);

    // An automatic migration has nothing to trigger, except releasing the hold with force.
    await expectRejected(nsHandle(handle, 'shop').executeUpdate(cutoverUpdate, { args: [] }), /cuts over automatically.*released with --force/);
    const r = await nsHandle(handle, 'shop').executeUpdate(cutoverWithRequestUpdate, { args: [{ force: true }] });
    expect(r.namespace).toBe('shop');
    return handle.result();
  });
  expect(summary.status).toBe('succeeded');
  const shop = nsResult(summary, 'shop');
  expect(shop.cutoverForcedAt).toEqual(expect.any(String));
  expect(shop.cutoverBlocked).toBeUndefined();
  expect(shop.pvcs.find((p) => p.name === 'pgdata')!.status).toBe('done');
  const order = fake.activityOrder({ namespace: 'shop' });
  expect(order.slice(order.indexOf('quiesce'))).toEqual(['quiesce', 'waitForQuiesced', 'checkSourceWriters', 'runTransfer', 'runTransfer', 'checkSourceWriters', 'releaseAgents', 'unquiesce', 'cleanup']);
});

test('manual cutover is refused while the last stage pass was partial; a clean pass clears it', async () => {
  const fake = new FakeCluster({ source: SHOP, transferMs: 30 });
  fake.partialTransfer({ namespace: 'shop', pvc: 'pgdata', final: false, times: 1, failedFiles: ['PG_VERSION'] });
  const summary = await withWorker(fake, async (tq) => {
    const handle = await start(tq, testPlan({ cutover: 'manual', stagePasses: 1, stageIntervalSeconds: 2 }));
    const first = await waitFor('the first (partial) stage pass', async () => {
      const s = await nsState(handle, 'shop');
      return s.stagePassesDone === 1 ? s : undefined;
    });
    // Not "ready for cutover": the pass left files behind.
    expect(first.phase).toBe('stage');
    expect(first.pvcs.find((p) => p.name === 'pgdata')!.lastSync).toMatchObject({ outcome: 'partial', exitCode: 23, failedFiles: ['PG_VERSION'] });
    await expectRejected(
      nsHandle(handle, 'shop').executeUpdate(cutoverWithRequestUpdate, { args: [{}] }),
      /cutover of namespace shop refused: the last stage pass was partial for pgdata .*PG_VERSION.*--force/,
    );
    // The next pass is clean: ready for cutover, and cutover is accepted.
    await waitFor('a clean pass and ready-for-cutover', async () => {
      const s = await nsState(handle, 'shop');
      return s.phase === 'ready-for-cutover' ? s : undefined;
    });
    await nsHandle(handle, 'shop').executeUpdate(cutoverUpdate, { args: [] });
    return handle.result();
  });
  expect(summary.status).toBe('succeeded');
  const shop = nsResult(summary, 'shop');
  expect(shop.stagePassesDone).toBeGreaterThanOrEqual(2);
  expect(shop.cutoverForcedAt).toBeUndefined();
  expect(shop.phases.map((p) => p.name)).toEqual(['prepare', 'stage', 'ready-for-cutover', 'quiesce', 'final-sync', 'unquiesce', 'cleanup']);
});
