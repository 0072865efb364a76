/**
 * Bounded histories (issue 8 item 9): a warm migration (manual cutover, many stage passes) of two
 * namespaces on a Temporal dev server whose history limits are scaled down — Temporal suggests
 * continue-as-new after SUGGEST events and terminates a run at ERROR events, as it does at 4 Ki and
 * 50 Ki events in production. Every workflow of the migration must continue as new in time, the
 * namespace workflows must survive their parent's continue-as-new and report to its new run, and
 * child inputs must carry only their own namespace's slice of the plan.
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { listMigrations } from '../../src/cli/operations';
import { createWorker } from '../../src/worker';
import { migrationWorkflow } from '../../src/workflows';
import { cutoverUpdate, namespaceStateQuery, namespaceWorkflowId, rollbackUpdate } from '../../src/workflows/definitions';
import type { MigrationSummary } from '../../src/core/state';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import { FakeCluster } from './support/fake-cluster';
import { temporalBinary, TEST_TUNING, testPlan, unique, waitFor, workflowBundle } from './support/env';

jest.setTimeout(180_000);

const SUGGEST = 100;
const ERROR = 300;

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // Already installed.
  }
  [env] = await Promise.all([
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: temporalBinary() },
        searchAttributes: Object.values(SEARCH_ATTRIBUTES),
        log: { format: 'pretty', level: 'error' },
        extraArgs: [
          '--dynamic-config-value',
          `limit.historyCount.suggestContinueAsNew=${SUGGEST}`,
          '--dynamic-config-value',
          `limit.historyCount.warn=${SUGGEST}`,
          '--dynamic-config-value',
          `limit.historyCount.error=${ERROR}`,
        ],
      },
    }),
    workflowBundle(),
  ]);
});

afterAll(async () => {
  await env?.teardown();
});

/** Every run of a workflow id: run id and number of history events. */
async function runsOf(workflowId: string): Promise<{ runId: string; status: string; events: number }[]> {
  const out: { runId: string; status: string; events: number }[] = [];
  for await (const w of env.client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
    const history = await env.client.workflow.getHandle(workflowId, w.runId).fetchHistory();
    out.push({ runId: w.runId, status: w.status.name, events: history.events?.length ?? 0 });
  }
  return out;
}

test('a warm migration of 2 namespaces completes with every run of every workflow below the history limit', async () => {
  const fake = new FakeCluster({
    source: {
      shop: { pvcs: [{ name: 'data', bytes: 100 }, { name: 'logs', bytes: 100 }, { name: 'db', bytes: 100 }], workloads: [{ name: 'web', replicas: 2 }] },
      blog: { pvcs: [{ name: 'content', bytes: 100 }], workloads: [{ name: 'wordpress', replicas: 1 }] },
    },
    transferMs: 10,
    heartbeatMs: 5,
  });
  const taskQueue = unique('hist');
  const worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: fake.activities(), workflowBundle: await workflowBundle() });
  const id = unique('warm');
  const plan = testPlan({ namespaces: ['shop', 'blog:blog-new'], cutover: 'manual', stagePasses: 1, stageIntervalSeconds: 0, concurrency: 3 });
  const PASSES = 40;
  const summary = await worker.runUntil(async () => {
    const handle = await env.client.workflow.start(migrationWorkflow, { taskQueue, workflowId: id, args: [{ migrationId: id, plan, tuning: TEST_TUNING }] });
    for (const ns of ['shop', 'blog']) {
      await waitFor(`${PASSES} stage passes in ${ns}`, async () => (await env.client.workflow.getHandle(namespaceWorkflowId(id, ns)).query(namespaceStateQuery)).stagePassesDone >= PASSES, 150_000);
    }
    for (const ns of ['shop', 'blog']) await env.client.workflow.getHandle(namespaceWorkflowId(id, ns)).executeUpdate(cutoverUpdate, { args: [] });
    return handle.result();
  });

  expect(summary.status).toBe('succeeded');
  expect(summary.namespaces.map((n) => [n.source, n.status, n.result?.status])).toEqual([
    ['shop', 'succeeded', 'succeeded'],
    ['blog', 'succeeded', 'succeeded'],
  ]);
  expect(summary.namespaces.every((n) => n.stagePassesDone >= PASSES)).toBe(true);
  for (const pvc of ['data', 'logs', 'db']) expect(fake.data('shop', pvc).destination).toBe(fake.data('shop', pvc).source);
  expect(fake.replicas('shop', 'web')).toBe(2);

  // Every run of the migration and namespace workflows stayed below the limit; each continued as new.
  const migrationRuns = await waitFor('the migration runs in visibility', async () => {
    const r = await runsOf(id);
    return r.some((x) => x.status === 'COMPLETED') ? r : undefined;
  });
  expect(migrationRuns.length).toBeGreaterThan(1);
  expect(migrationRuns.filter((r) => r.status === 'TERMINATED')).toEqual([]);
  const figures = [`migration: ${migrationRuns.length} runs, events ${migrationRuns.map((r) => r.events).join('/')}`];
  for (const ns of ['shop', 'blog']) {
    const runs = await runsOf(namespaceWorkflowId(id, ns));
    figures.push(`${ns}: ${runs.length} runs, at most ${Math.max(...runs.map((r) => r.events))} events`);
    expect(runs.length).toBeGreaterThan(1);
    expect(runs.filter((r) => r.status === 'TERMINATED')).toEqual([]);
    for (const r of runs) expect(r.events).toBeLessThan(ERROR);
  }
  for (const r of migrationRuns) expect(r.events).toBeLessThan(ERROR);
  // `ferry list` shows the migration once, not once per run.
  const session = { client: env.client, address: env.address, namespace: 'default', taskQueue, close: async () => undefined };
  expect((await listMigrations(session, { limit: 1000 })).filter((r) => r.id === id)).toEqual([expect.objectContaining({ id, status: 'COMPLETED', phase: 'succeeded' })]);
  process.stderr.write(`history figures (limit ${ERROR}, suggest ${SUGGEST}): ${figures.join('; ')}\n`);

  // Child inputs carry one namespace's slice of the plan, not the whole plan.
  const first = await env.client.workflow.getHandle(namespaceWorkflowId(id, 'blog')).fetchHistory();
  const started = first.events![0]!.workflowExecutionStartedEventAttributes!;
  const payload = env.client.options.loadedDataConverter.payloadConverter.fromPayload<{ plan: { namespaces: { source: string }[] } }>(started.input!.payloads![0]!);
  expect(payload.plan.namespaces.map((n) => n.source)).toEqual(['blog']);
});

test('after the migration continued as new, a rollback still reaches every namespace workflow and the summary has their final states', async () => {
  const fake = new FakeCluster({
    source: { shop: { pvcs: [{ name: 'data', bytes: 100 }], workloads: [{ name: 'web', replicas: 2 }] }, blog: { pvcs: [{ name: 'content', bytes: 100 }] } },
    transferMs: 10,
    heartbeatMs: 5,
  });
  const taskQueue = unique('hist-rb');
  const worker = await createWorker({ connection: env.nativeConnection, taskQueue, activities: fake.activities(), workflowBundle: await workflowBundle() });
  const id = unique('warm-rb');
  const plan = testPlan({ namespaces: ['shop', 'blog'], cutover: 'manual', stagePasses: 1, stageIntervalSeconds: 0 });
  const { failure, runs } = await worker.runUntil(async () => {
    // The tuning knob, well below the server's suggestion: the migration continues as new early.
    const handle = await env.client.workflow.start(migrationWorkflow, { taskQueue, workflowId: id, args: [{ migrationId: id, plan, tuning: { ...TEST_TUNING, continueAsNewAfterEvents: 40 } }] });
    const r = await waitFor('the migration to continue as new twice', async () => {
      const x = await runsOf(id);
      return x.length >= 3 ? x : undefined;
    }, 120_000);
    await handle.executeUpdate(rollbackUpdate, { args: [{ reason: 'test after continue-as-new' }] });
    const f = await handle.result().then(
      () => undefined,
      (e: unknown) => e as WorkflowFailedError,
    );
    // A namespace workflow closes in the workflow task after its final report, which may come after
    // the migration (the report's receiver) ended: keep the worker until it has.
    for (const ns of ['shop', 'blog']) {
      await waitFor(`namespace workflow ${ns} to close`, async () => (await env.client.workflow.getHandle(namespaceWorkflowId(id, ns)).describe()).status.name !== 'RUNNING');
    }
    return { failure: f, runs: r };
  });
  expect(runs.length).toBeGreaterThanOrEqual(3);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const summary = (failure!.cause as ApplicationFailure).details?.[0] as MigrationSummary;
  expect(summary.status).toBe('rolled-back');
  for (const ns of summary.namespaces) {
    expect(ns.status).toBe('rolled-back');
    expect(ns.result?.rollback?.reason).toBe('the migration was cancelled');
  }
  expect(fake.objectsUnder('destination/server/')).toEqual([]);
  expect(fake.objectsUnder('source/client/')).toEqual([]);
  for (const ns of ['shop', 'blog']) expect((await env.client.workflow.getHandle(namespaceWorkflowId(id, ns)).describe()).status.name).toBe('CANCELLED');
});
