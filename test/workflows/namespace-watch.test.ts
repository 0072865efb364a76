/**
 * Issue 8 item 9 (and 10, "waits without an end"): a namespace workflow that is terminated (or times
 * out) sends no final report. A migration run that continued as new learns a namespace's end only
 * from that report, so it used to wait for ever; now it checks on the namespace workflows every
 * `namespaceWatchSeconds` (describeNamespaceWorkflows) and ends failed, naming the namespace workflow
 * and `ferry cleanup`. The first run (before any continue-as-new) learns it from the child's result.
 * Real Temporal dev server, simulated clusters (./support/fake-cluster.ts).
 */
import { WorkflowFailedError, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { cleanupMigrationById } from '../../src/cli/cleanup';
import type { TemporalSession } from '../../src/cli/operations';
import { describeNamespaceWorkflow } from '../../src/temporal/namespace-workflows';
import { createWorker } from '../../src/worker';
import { migrationWorkflow } from '../../src/workflows';
import { cutoverUpdate, migrationStateQuery, namespaceWorkflowId } from '../../src/workflows/definitions';
import type { MigrationSummary, WorkflowTuning } from '../../src/core/state';
import { FakeCluster } from './support/fake-cluster';
import { startTemporal, TEST_TUNING, testPlan, unique, waitFor, workflowBundle } from './support/env';

jest.setTimeout(120_000);

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  [env] = await Promise.all([startTemporal(), workflowBundle()]);
});

afterAll(async () => {
  await env?.teardown();
});

const SOURCE = { shop: { pvcs: [{ name: 'data', bytes: 100 }], workloads: [{ name: 'web', replicas: 2 }] }, blog: { pvcs: [{ name: 'content', bytes: 100 }] } };

/** The explanation the migration must record for the terminated namespace workflow of `ns`. */
function explanation(id: string, ns: string): RegExp {
  const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(
    `^namespace workflow ${escaped(namespaceWorkflowId(id, ns))} was terminated at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z without reporting; ` +
      `its transfer objects and quiesced workloads may remain: run \`ferry cleanup ${escaped(id)}\``,
  );
}

/**
 * Runs a warm migration of shop and blog (manual cutover), waits for `ready` (e.g. the migration
 * continued as new), terminates shop's namespace workflow, waits until the migration's state shows
 * shop failed (within `withinMs`), then cuts blog over and returns the migration's summary.
 */
async function terminateShop(tuning: WorkflowTuning, ready: (handle: WorkflowHandleWithFirstExecutionRunId<typeof migrationWorkflow>) => Promise<boolean>, withinMs: number) {
  const fake = new FakeCluster({ source: SOURCE, transferMs: 10, heartbeatMs: 5 });
  const taskQueue = unique('watch');
  const worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: fake.activities(), workflowBundle: await workflowBundle() });
  const id = unique('watch-mig');
  const plan = testPlan({ namespaces: ['shop', 'blog'], cutover: 'manual', stagePasses: 1, stageIntervalSeconds: 0 });
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(migrationWorkflow, { taskQueue, workflowId: id, args: [{ migrationId: id, plan, tuning }] });
    await waitFor('the migration to be ready for the test', async () => ready(handle), 60_000);
    await waitFor('both namespaces to run', async () => (await handle.query(migrationStateQuery)).namespaces.every((n) => n.status === 'running'));
    await env.client.workflow.getHandle(namespaceWorkflowId(id, 'shop')).terminate('test: an operator terminated it');
    const terminatedAt = Date.now();
    const shop = await waitFor(
      'the migration to mark shop failed',
      async () => (await handle.query(migrationStateQuery)).namespaces.find((n) => n.source === 'shop' && n.status === 'failed'),
      withinMs,
    );
    const noticedSeconds = (Date.now() - terminatedAt) / 1000;
    await env.client.workflow.getHandle(namespaceWorkflowId(id, 'blog')).executeUpdate(cutoverUpdate, { args: [] });
    const failure = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    // blog closes in the workflow task after its final report, which may come after the migration ended.
    await waitFor('blog to close', async () => (await env.client.workflow.getHandle(namespaceWorkflowId(id, 'blog')).describe()).status.name !== 'RUNNING');
    // What the activity's adapter reads for a terminated, a completed and an unknown namespace workflow.
    const described = await Promise.all(['shop', 'blog', 'nowhere'].map((ns) => describeNamespaceWorkflow(env.client, namespaceWorkflowId(id, ns))));
    return { id, handle, fake, shop, noticedSeconds, failure, described };
  });
}

function summaryOf(failure: unknown): MigrationSummary {
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  return ((failure as WorkflowFailedError).cause as ApplicationFailure).details?.[0] as MigrationSummary;
}

test('after the migration continued as new, a terminated namespace workflow ends the migration failed within seconds, with the way out', async () => {
  const { id, handle, fake, shop, noticedSeconds, failure } = await terminateShop(
    { ...TEST_TUNING, continueAsNewAfterEvents: 40, namespaceWatchSeconds: 1 },
    async (h) => (await env.client.workflow.getHandle(h.workflowId).describe()).runId !== h.firstExecutionRunId,
    20_000,
  );
  process.stderr.write(`namespace watch: the terminated namespace workflow was noticed after ${noticedSeconds.toFixed(1)} s\n`);
  expect(shop.error).toMatch(explanation(id, 'shop'));
  // The run that noticed it is a continued one (it does not own the namespace workflows).
  const current = await env.client.workflow.getHandle(handle.workflowId).describe();
  expect(current.runId).not.toBe(handle.firstExecutionRunId);

  const summary = summaryOf(failure);
  expect(summary.status).toBe('failed');
  expect(summary.namespaces.map((n) => [n.source, n.status])).toEqual([
    ['shop', 'failed'],
    ['blog', 'succeeded'],
  ]);
  const s = summary.namespaces.find((n) => n.source === 'shop')!;
  expect(s.error).toMatch(explanation(id, 'shop'));
  // Its last known state (the terminated workflow's `state` query, or the state its last run started
  // from when that run closed before it ran): it was still staging; no "last state unknown".
  expect(s.result).toMatchObject({ source: 'shop', status: 'running' });
  expect(s.error).not.toContain('its last state is unknown');
  expect(summary.error).toContain(`namespace shop failed (namespace workflow ${namespaceWorkflowId(id, 'shop')} was terminated at`);

  // The way out the explanation names works: `ferry cleanup ID` (no longer refused: nothing of the
  // migration runs) removes shop's transfer objects, which nothing else removed.
  expect(fake.objectsUnder('destination/server/shop/')).toHaveLength(1);
  const session: TemporalSession = { client: env.client, address: env.address, namespace: 'default', taskQueue: 'test', close: async () => undefined };
  const outcome = await cleanupMigrationById(session, id, { clustersFor: () => fake.clusters() });
  expect(outcome).toMatchObject({ id, workflowStatus: 'FAILED', planFrom: 'workflow' });
  expect([...fake.objectsUnder('destination/server/shop/'), ...fake.objectsUnder('destination/endpoint/shop/')]).toEqual([]);
});

test('in the first run, a terminated namespace workflow (the child result) ends the migration failed with the same explanation', async () => {
  const { id, handle, shop, failure, described } = await terminateShop({ ...TEST_TUNING }, async () => true, 20_000);
  expect(shop.error).toMatch(explanation(id, 'shop'));
  // No continue-as-new happened: the first run handled it.
  expect((await env.client.workflow.getHandle(handle.workflowId).describe()).runId).toBe(handle.firstExecutionRunId);
  const summary = summaryOf(failure);
  expect(summary.namespaces.map((n) => [n.source, n.status])).toEqual([
    ['shop', 'failed'],
    ['blog', 'succeeded'],
  ]);
  // describeNamespaceWorkflows' adapter: status, close time and last state of each.
  const [terminated, completed, missing] = described;
  expect(terminated).toMatchObject({ workflowId: namespaceWorkflowId(id, 'shop'), status: 'TERMINATED' });
  // Its last state comes from the `state` query when a worker can replay the closed run; a run
  // terminated before its first workflow task cannot be queried (and, being a first run, started
  // from no state): then the adapter says why instead. Which one happens depends on timing.
  if (terminated!.lastState) expect(terminated).toMatchObject({ lastState: { source: 'shop', status: 'running' }, lastStateFrom: 'query' });
  else expect(terminated!.stateError).toMatch(/its state query: .*; its run input: the first run carries no state/);
  expect(Date.parse(terminated!.closedAt!)).toBeGreaterThan(Date.parse(summary.startedAt));
  expect(completed).toMatchObject({ status: 'COMPLETED', lastState: { source: 'blog', status: 'succeeded', phase: 'succeeded' }, lastStateFrom: 'result' });
  expect(missing).toEqual({ workflowId: namespaceWorkflowId(id, 'nowhere'), status: 'NOT_FOUND' });
});
