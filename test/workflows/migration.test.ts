/**
 * The migration workflows against a real Temporal dev server, with the simulated clusters of
 * ./support/fake-cluster.ts behind the activities: ordering of activities, stage passes and cutover,
 * operator decisions on failed PVCs, rollback on abort / cancellation / rollback update, preflight,
 * downtime, search attributes.
 */
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { FailureType } from '../../src/core/types';
import type { MigrationPlan } from '../../src/plan/schema';
import { nextScheduledStage } from '../../src/plan/schedule';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import { createWorker } from '../../src/worker';
import { migrationWorkflow } from '../../src/workflows';
import {
  cutoverUpdate,
  decideUpdate,
  migrationStateQuery,
  namespaceStateQuery,
  namespaceWorkflowId,
  rollbackUpdate,
  WorkflowFailureType,
} from '../../src/workflows/definitions';
import type { MigrationSummary, NamespaceState, WorkflowTuning } from '../../src/core/state';
import { FakeCluster, type SourceSpec } from './support/fake-cluster';
import { startTemporal, TEST_TUNING, testPlan, unique, waitFor, workflowBundle } from './support/env';
import { recordHistories, recordingHistories } from './support/histories';

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
      { name: 'logs', bytes: 300 },
      { name: 'db', bytes: 500 },
    ],
    workloads: [{ name: 'web', replicas: 2 }],
  },
  blog: { pvcs: [{ name: 'content', bytes: 700 }], workloads: [{ name: 'wordpress', replicas: 1 }] },
};

/** Runs `fn` while a worker with the fake's activities polls a fresh task queue. */
async function withWorker<T>(fake: FakeCluster, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = unique('tq');
  const worker = await createWorker({
    connection: env.nativeConnection,
    taskQueue,
    activities: fake.activities(),
    workflowBundle: await workflowBundle(),
  });
  return worker.runUntil(fn(taskQueue));
}

async function start(taskQueue: string, plan: MigrationPlan, tuning: WorkflowTuning = TEST_TUNING): Promise<WorkflowHandle<typeof migrationWorkflow>> {
  const id = unique('mig');
  return env.client.workflow.start(migrationWorkflow, { taskQueue, workflowId: id, args: [{ migrationId: id, plan, tuning }] });
}

const nsHandle = (migration: WorkflowHandle, ns: string) => env.client.workflow.getHandle(namespaceWorkflowId(migration.workflowId, ns));
const nsState = (migration: WorkflowHandle, ns: string) => nsHandle(migration, ns).query(namespaceStateQuery);

/** The failure of a workflow that must fail, and the summary in its details. */
async function failureOf(handle: WorkflowHandle): Promise<{ error: WorkflowFailedError; cause: unknown; summary?: MigrationSummary }> {
  try {
    await handle.result();
  } catch (error) {
    if (!(error instanceof WorkflowFailedError)) throw error;
    const cause = error.cause;
    const summary = cause instanceof ApplicationFailure ? (cause.details?.[0] as MigrationSummary | undefined) : undefined;
    return { error, cause, ...(summary ? { summary } : {}) };
  }
  throw new Error('the workflow succeeded; expected a failure');
}

/** The update must be rejected with a message matching `pattern`. */
async function expectRejected(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(pattern);
}

async function searchAttributes(handle: WorkflowHandle) {
  const d = await handle.describe();
  return {
    phase: d.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryPhase),
    namespaces: d.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryNamespaces),
    failed: d.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryFailedPVCs),
  };
}

/** Most runTransfer activities of one namespace that ran at the same time (from the journal). */
function maxOverlap(fake: FakeCluster, namespace: string, final?: boolean): number {
  let cur = 0;
  let max = 0;
  for (const e of fake.journal()) {
    if (e.activity !== 'runTransfer' || e.detail?.split(' ')[0] !== namespace) continue;
    if (final !== undefined && !e.detail?.endsWith(`final=${final}`)) continue;
    if (e.event === 'start') max = Math.max(max, ++cur);
    if (e.event === 'complete' || e.event === 'fail') cur--;
  }
  return max;
}

const nsResult = (s: MigrationSummary, ns: string): NamespaceState => s.namespaces.find((n) => n.source === ns)!.result!;

test('happy path: activities in order, summary, downtime, search attributes', async () => {
  const fake = new FakeCluster({ source: SHOP, transferMs: 300 });
  const plan = testPlan({
    namespaces: ['shop', 'blog:blog-new'],
    concurrency: 2,
    images: { enabled: true, sourceRegistry: { url: 'registry.src.example:5000' }, destinationRegistry: { url: 'registry.dst.example:5000' } },
  });
  const summary = await withWorker(fake, async (tq) => {
    const handle = await start(tq, plan);
    const s = await handle.result();
    expect(await searchAttributes(handle)).toEqual({ phase: 'succeeded', namespaces: ['shop', 'blog'], failed: 0 });
    const listed = await waitFor('the visibility store to list the migration', async () => {
      const found: string[] = [];
      for await (const w of env.client.workflow.list({ query: `FerryPhase = "succeeded" AND WorkflowId = "${handle.workflowId}"` })) found.push(w.workflowId);
      return found.length > 0 ? found : undefined;
    });
    expect(listed).toEqual([handle.workflowId]);
    if (recordingHistories) await recordHistories(env.client, 'happy-path', s);
    return s;
  });

  // The endpoint chosen and why are kept beside the address (the address has only its own fields).
  expect(nsResult(summary, 'shop').endpoint).toEqual({ type: 'LoadBalancer', reason: 'simulated: auto' });
  expect(nsResult(summary, 'shop').address).toEqual({ host: 'endpoint.shop.example', port: 443 });

  // Discovery of every namespace and preflight come before anything is created.
  const all = fake.activityOrder();
  expect(all.slice(0, 3).sort()).toEqual(['discoverNamespace', 'discoverNamespace', 'preflight']);
  expect(all[2]).toBe('preflight');
  // Per namespace, in order (image copies run alongside; prepareDestination and createEndpoint run
  // at the same time, patch setup-concurrent: either may start first).
  const stage = ['runTransfer', 'runTransfer', 'runTransfer'];
  const setupSorted = (order: string[]) => [order[0]!, ...order.slice(1, 3).sort().reverse(), ...order.slice(3)];
  expect(setupSorted(fake.activityOrder({ namespace: 'shop' }).filter((a) => a !== 'copyImages'))).toEqual([
    'discoverNamespace',
    'prepareDestination',
    'createEndpoint',
    'createServer',
    'probeConnectivity',
    ...stage,
    'discoverNamespace',
    'quiesce',
    'waitForQuiesced',
    'checkSourceWriters',
    ...stage,
    'checkSourceWriters',
    'releaseAgents',
    'unquiesce',
    'cleanup',
  ]);
  expect(setupSorted(fake.activityOrder({ namespace: 'blog' }).filter((a) => a !== 'copyImages'))).toEqual([
    'discoverNamespace',
    'prepareDestination',
    'createEndpoint',
    'createServer',
    'probeConnectivity',
    'runTransfer',
    'discoverNamespace',
    'quiesce',
    'waitForQuiesced',
    'checkSourceWriters',
    'runTransfer',
    'checkSourceWriters',
    'releaseAgents',
    'unquiesce',
    'cleanup',
  ]);
  expect(maxOverlap(fake, 'shop', false)).toBe(2); // stage: plan.concurrency
  expect(maxOverlap(fake, 'shop', true)).toBe(3); // final: all at once (finalConcurrency with warm agents)
  // The final syncs keep their agents; releaseAgents deletes them together, before unquiesce.
  expect(fake.transferSources.map((t) => `${t.final ? 'final' : 'stage'}:${t.keepAgent ?? '-'}`).sort()).toEqual([...Array(4).fill('final:true'), ...Array(4).fill('stage:-')]);

  // The simulated clusters: data consistent (final sync ran quiesced), apps back, no leftovers.
  for (const pvc of ['data', 'logs', 'db']) expect(fake.data('shop', pvc).destination).toBe(fake.data('shop', pvc).source);
  expect(fake.replicas('shop', 'web')).toBe(2);
  expect(fake.replicas('blog', 'wordpress')).toBe(1);
  expect(fake.objectsUnder('destination/pvc/').sort()).toEqual(['destination/pvc/blog-new/content', 'destination/pvc/shop/data', 'destination/pvc/shop/db', 'destination/pvc/shop/logs']);
  expect([...fake.objectsUnder('source/client/'), ...fake.objectsUnder('destination/server/'), ...fake.objectsUnder('destination/endpoint/')]).toEqual([]);

  // The summary.
  expect(summary.status).toBe('succeeded');
  expect(summary.phases.map((p) => p.name)).toEqual(['discover', 'preflight', 'migrate']);
  expect(summary.phases.every((p) => p.endedAt !== undefined)).toBe(true);
  expect(summary.totals).toMatchObject({ namespaces: 2, pvcs: 4, pvcsDone: 4, pvcsSkipped: 0, pvcsFailed: 0, bytesSent: 2 * (1000 + 300 + 500 + 700) });
  expect(summary.namespaces.map((n) => [n.source, n.destination, n.status, n.images.status])).toEqual([
    ['shop', 'shop', 'succeeded', 'succeeded'],
    ['blog', 'blog-new', 'succeeded', 'succeeded'],
  ]);
  const shop = nsResult(summary, 'shop');
  expect(shop.phases.map((p) => p.name)).toEqual(['prepare', 'stage', 'quiesce', 'final-sync', 'unquiesce', 'cleanup']);
  expect(shop.pvcs.map((p) => [p.name, p.status, p.syncs, p.stageSyncsDone, p.bytesSent, p.errors.length])).toEqual([
    ['data', 'done', 2, 1, 2000, 0],
    ['logs', 'done', 2, 1, 600, 0],
    ['db', 'done', 2, 1, 1000, 0],
  ]);
  expect(shop.createdPVCs.sort()).toEqual(['data', 'db', 'logs']);
  expect(shop.quiesced).toEqual([{ workload: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web' }, replicas: 2, changed: true }]);

  // Downtime: from quiesce to the end of the final sync, not the stage syncs.
  const phase = (name: string) => shop.phases.find((p) => p.name === name)!;
  expect(shop.downtime?.startedAt).toBe(phase('quiesce').startedAt);
  expect(shop.downtime?.endedAt).toBe(phase('final-sync').endedAt);
  expect(shop.downtime!.seconds!).toBeGreaterThanOrEqual(0.3); // at least one (simulated) final sync
  expect(Date.parse(shop.downtime!.startedAt)).toBeGreaterThanOrEqual(Date.parse(phase('stage').endedAt!));
  expect(summary.totals.downtimeSeconds).toBe(Math.max(shop.downtime!.seconds!, nsResult(summary, 'blog').downtime!.seconds!));
  // Each namespace's cleanup carries its downtime (recorded in ferry_downtime_seconds by the activity).
  expect(fake.downtimeAtCleanup.sort((a, b) => String(a.namespace).localeCompare(String(b.namespace)))).toEqual([
    { namespace: 'blog', seconds: nsResult(summary, 'blog').downtime!.seconds },
    { namespace: 'shop', seconds: shop.downtime!.seconds },
  ]);
});

test('manual cutover: stage passes go on (across continue-as-new) until the cutover update', async () => {
  const fake = new FakeCluster({ source: SHOP, transferMs: 30 });
  const plan = testPlan({ cutover: 'manual', stagePasses: 1, stageIntervalSeconds: 1 });
  const summary = await withWorker(fake, async (tq) => {
    const handle = await start(tq, plan, { ...TEST_TUNING, stagePassesPerRun: 2 });
    const st = await waitFor('three stage passes', async () => {
      const s = await nsState(handle, 'shop');
      return s.stagePassesDone >= 3 ? s : undefined;
    });
    expect(st.phase).toBe('ready-for-cutover');
    expect(st.runs).toBeGreaterThanOrEqual(2); // continued as new after 2 passes
    expect(fake.activityOrder({ namespace: 'shop' })).not.toContain('quiesce');
    await waitFor('the ready-for-cutover phase in the search attributes', async () => (await searchAttributes(handle)).phase === 'ready-for-cutover');

    const r = await nsHandle(handle, 'shop').executeUpdate(cutoverUpdate, { args: [] });
    expect(r).toMatchObject({ namespace: 'shop', minimumStagePasses: 1 });
    expect(r.stagePassesDone).toBeGreaterThanOrEqual(3);
    await expectRejected(nsHandle(handle, 'shop').executeUpdate(cutoverUpdate, { args: [] }), /already requested/);
    return handle.result();
  });
  const shop = nsResult(summary, 'shop');
  expect(summary.status).toBe('succeeded');
  expect(shop.stagePassesDone).toBeGreaterThanOrEqual(3);
  expect(shop.phases.map((p) => p.name)).toEqual(['prepare', 'stage', 'ready-for-cutover', 'quiesce', 'final-sync', 'unquiesce', 'cleanup']);
  const order = fake.activityOrder({ namespace: 'shop' });
  expect(order.slice(order.indexOf('quiesce') - 1)).toEqual(['discoverNamespace', 'quiesce', 'waitForQuiesced', 'checkSourceWriters', 'runTransfer', 'runTransfer', 'runTransfer', 'checkSourceWriters', 'releaseAgents', 'unquiesce', 'cleanup']);
  expect(order.filter((a) => a === 'prepareDestination')).toHaveLength(1); // not repeated by continue-as-new
  for (const pvc of ['data', 'logs', 'db']) expect(fake.data('shop', pvc).destination).toBe(fake.data('shop', pvc).source);
});

test('stageSchedule: the next stage pass waits on a timer until the time the cron expression names; the cutover ends the wait', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  const plan = testPlan({ cutover: 'manual', stagePasses: 1, stageSchedule: '0 0 1 1 *' });
  const summary = await withWorker(fake, async (tq) => {
    const handle = await start(tq, plan);
    const st = await waitFor('the wait for the scheduled pass', async () => {
      const s = await nsState(handle, 'shop');
      return s.nextStageAt ? s : undefined;
    });
    const expected = nextScheduledStage('0 0 1 1 *', new Date())!;
    expect(st.nextStageAt).toBe(expected.toISOString());
    expect(st.stagePassesDone).toBe(1);
    // the timer in the namespace workflow's history lasts until then
    const history = await nsHandle(handle, 'shop').fetchHistory();
    const timers = history.events!.filter((e) => e.timerStartedEventAttributes).map((e) => Number(e.timerStartedEventAttributes!.startToFireTimeout!.seconds));
    const untilThen = (expected.getTime() - Date.now()) / 1000;
    expect(timers.some((t) => Math.abs(t - untilThen) < 120)).toBe(true);
    await nsHandle(handle, 'shop').executeUpdate(cutoverUpdate, { args: [] });
    return handle.result();
  });
  const shop = nsResult(summary, 'shop');
  expect(summary.status).toBe('succeeded');
  expect(shop.stagePassesDone).toBe(1);
  expect(shop.nextStageAt).toBeUndefined();
});

test('stageSchedule: the next pass starts at the scheduled minute', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  const plan = testPlan({ cutover: 'manual', stagePasses: 1, stageSchedule: '* * * * *' });
  const summary = await withWorker(fake, async (tq) => {
    const handle = await start(tq, plan);
    await waitFor('the scheduled second pass', async () => ((await nsState(handle, 'shop')).stagePassesDone >= 2 ? true : undefined), 90_000);
    await nsHandle(handle, 'shop').executeUpdate(cutoverUpdate, { args: [] });
    return handle.result();
  });
  const second = nsResult(summary, 'shop').stageHistory!.find((h) => h.pass === 2)!;
  // it started on a minute boundary (workflow time; the worker picks the timer up within a moment)
  expect(new Date(second.startedAt).getUTCSeconds()).toBeLessThan(5);
}, 120_000);

test('cutover on evidence: stage passes go on until one projects a final sync under the threshold, then it cuts over on its own', async () => {
  // Passes 1 and 2 take 1.2 s per PVC (a big delta), pass 3 and later 50 ms: the third projects under 1 s.
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMsFor: (req) => (!req.final && req.pass <= 2 ? 1200 : 50) });
  const plan = testPlan({ cutover: { when: 'projected-downtime-below', seconds: 1, maxStagePasses: 6 }, stagePasses: 1 });
  expect(plan.cutover).toBe('manual');
  expect(plan.cutoverWhen).toEqual({ projectedDowntimeBelowSeconds: 1, maxStagePasses: 6 });
  const summary = await withWorker(fake, async (tq) => (await start(tq, plan)).result());
  const shop = nsResult(summary, 'shop');
  expect(summary.status).toBe('succeeded');
  expect(shop.stagePassesDone).toBe(3);
  expect(shop.stageHistory!.map((h) => h.pass)).toEqual([1, 2, 3]);
  expect(shop.stageHistory!.slice(0, 2).every((h) => h.projectedFinalSyncSeconds! >= 1.2)).toBe(true);
  expect(shop.stageHistory![2]!.projectedFinalSyncSeconds!).toBeLessThan(1);
  expect(shop.stageHistory![0]!.bytesSent).toBe(1000 + 300 + 500); // every PVC's (simulated) delta of the pass
  expect(shop.stageHistory![0]!.seconds).toBeGreaterThanOrEqual(1.2);
  expect(shop.cutoverEvidence).toMatchObject({ decision: 'cut-over', pass: 3, thresholdSeconds: 1 });
  expect(shop.cutoverEvidence!.reason).toMatch(/stage pass 3 projects a final sync of [\d.]+ s, under 1 s/);
  expect(shop.phases.map((p) => p.name)).toEqual(['prepare', 'stage', 'ready-for-cutover', 'quiesce', 'final-sync', 'unquiesce', 'cleanup']);
  for (const pvc of ['data', 'logs', 'db']) expect(fake.data('shop', pvc).destination).toBe(fake.data('shop', pvc).source);
});

test('cutover on evidence: a projection never under the threshold leaves the decision to the operator after maxStagePasses', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 1200 });
  const plan = testPlan({ cutover: 'manual', cutoverWhen: { projectedDowntimeBelowSeconds: 1, maxStagePasses: 2 }, stageIntervalSeconds: 1 });
  const summary = await withWorker(fake, async (tq) => {
    const handle = await start(tq, plan);
    const st = await waitFor('the operator decision after 2 passes', async () => {
      const s = await nsState(handle, 'shop');
      return s.cutoverEvidence ? s : undefined;
    });
    expect(st.cutoverEvidence).toMatchObject({ decision: 'operator', pass: 2, thresholdSeconds: 1 });
    expect(st.cutoverEvidence!.reason).toMatch(/after 2 stage passes the projected final sync is still [\d.]+ s \(not under 1 s\).*ferry cutover/);
    expect(st.cutoverRequested).toBe(false);
    expect(fake.activityOrder({ namespace: 'shop' })).not.toContain('quiesce');
    await nsHandle(handle, 'shop').executeUpdate(cutoverUpdate, { args: [] });
    return handle.result();
  });
  const shop = nsResult(summary, 'shop');
  expect(summary.status).toBe('succeeded');
  expect(shop.stagePassesDone).toBeGreaterThanOrEqual(2);
  expect(shop.cutoverEvidence!.decision).toBe('operator');
});

test('a failed PVC waits for the operator while the others go on; retry then succeeds', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 50 });
  fake.failTransfer({ namespace: 'shop', pvc: 'db', final: false, times: 1, type: FailureType.NoSpace, message: 'rsync: write failed: No space left on device (28)' });
  // A transient failure is retried by the activity's retry policy and never reaches the workflow.
  fake.failTransfer({ namespace: 'shop', pvc: 'logs', final: false, times: 2, type: FailureType.Transient, message: 'connection reset' });
  const plan = testPlan({ concurrency: 3 });
  const summary = await withWorker(fake, async (tq) => {
    const handle = await start(tq, plan);
    const st = await waitFor('db to fail and the others to finish their stage sync', async () => {
      const s = await nsState(handle, 'shop');
      return s.pvcs.map((p) => p.status).join() === 'synced,synced,failed' ? s : undefined;
    });
    expect(st.pvcs[2]!.errors).toEqual([expect.objectContaining({ pass: 1, final: false, type: FailureType.NoSpace, message: 'rsync: write failed: No space left on device (28)' })]);
    await waitFor('the migration to show awaiting-decision', async () => {
      const sa = await searchAttributes(handle);
      return sa.phase === 'awaiting-decision' && sa.failed === 1;
    });
    expect((await handle.query(migrationStateQuery)).namespaces[0]).toMatchObject({ awaitingDecision: ['db'], failedPVCs: 1 });

    // The validator rejects nonsense without touching the workflow.
    const ns = nsHandle(handle, 'shop');
    await expectRejected(ns.executeUpdate(decideUpdate, { args: [{ pvc: 'nope', action: 'retry' }] }), /has no PVC "nope"/);
    await expectRejected(ns.executeUpdate(decideUpdate, { args: [{ pvc: 'data', action: 'retry' }] }), /data is synced, not failed/);
    await expectRejected(ns.executeUpdate(decideUpdate, { args: [{ pvc: 'db', action: 'explode' as 'retry' }] }), /unknown action "explode"/);
    await expectRejected(ns.executeUpdate(cutoverUpdate, { args: [] }), /cuts over automatically/);

    expect(await ns.executeUpdate(decideUpdate, { args: [{ pvc: 'db', action: 'retry' }] })).toEqual({ namespace: 'shop', pvc: 'db', action: 'retry' });
    const s = await handle.result();
    if (recordingHistories) await recordHistories(env.client, 'retry-path', s);
    return s;
  });
  expect(summary.status).toBe('succeeded');
  const db = nsResult(summary, 'shop').pvcs.find((p) => p.name === 'db')!;
  expect(db).toMatchObject({ status: 'done', syncs: 3, stageSyncsDone: 1, decisions: [{ action: 'retry', at: expect.any(String) }] });
  expect(db.errors).toHaveLength(1);
  // Non-retryable: one attempt, then the operator; transient: retried by the activity.
  const attempts = (pvc: string, pass: number) =>
    fake.journal().filter((e) => e.event === 'start' && e.activity === 'runTransfer' && e.detail === `shop ${pvc} pass=${pass} final=false`).map((e) => e.attempt);
  expect(attempts('db', 1)).toEqual([1]);
  expect(attempts('db', 2)).toEqual([1]);
  expect(attempts('logs', 1)).toEqual([1, 2, 3]);
  expect(nsResult(summary, 'shop').pvcs.find((p) => p.name === 'logs')!.errors).toEqual([]);
  expect(await searchAttributes(env.client.workflow.getHandle(summary.workflowId))).toMatchObject({ phase: 'succeeded', failed: 1 });
});

test('skip: the failed PVC is left out of the rest of the migration', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  fake.failTransfer({ namespace: 'shop', pvc: 'logs', times: 1, type: FailureType.Auth, message: 'auth failed on module logs' });
  const summary = await withWorker(fake, async (tq) => {
    const handle = await start(tq, testPlan({ stagePasses: 2 }));
    await waitFor('logs to fail', async () => (await nsState(handle, 'shop')).pvcs[1]!.status === 'failed');
    await nsHandle(handle, 'shop').executeUpdate(decideUpdate, { args: [{ pvc: 'logs', action: 'skip' }] });
    return handle.result();
  });
  expect(summary.status).toBe('succeeded');
  expect(summary.totals).toMatchObject({ pvcs: 3, pvcsDone: 2, pvcsSkipped: 1 });
  expect(nsResult(summary, 'shop').pvcs.find((p) => p.name === 'logs')).toMatchObject({ status: 'skipped', syncs: 1, stageSyncsDone: 0 });
  expect(fake.journal().filter((e) => e.event === 'start' && e.activity === 'runTransfer' && e.detail?.startsWith('shop logs'))).toHaveLength(1);
  expect(nsResult(summary, 'shop').pvcs.find((p) => p.name === 'data')).toMatchObject({ status: 'done', syncs: 3 });
});

test('abort: rollback unquiesces, cleans up and deletes the destination PVCs when asked', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  fake.failTransfer({ namespace: 'shop', pvc: 'db', final: true, times: 1, type: FailureType.Partial, message: 'rsync exit 23: some files could not be transferred' });
  const { summary, cause } = await withWorker(fake, async (tq) => {
    const handle = await start(tq, testPlan({ deleteDestinationPVCsOnRollback: true }));
    await waitFor('db to fail in the final sync', async () => (await nsState(handle, 'shop')).pvcs[2]!.status === 'failed');
    expect(fake.replicas('shop', 'web')).toBe(0); // quiesced
    await nsHandle(handle, 'shop').executeUpdate(decideUpdate, { args: [{ pvc: 'db', action: 'abort' }] });
    return failureOf(handle);
  });
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect((cause as ApplicationFailure).type).toBe(WorkflowFailureType.MigrationFailed);
  expect((cause as ApplicationFailure).message).toMatch(/namespace shop rolled-back .*aborted by the operator after PVC db failed/);
  expect(summary?.status).toBe('failed');
  const shop = nsResult(summary!, 'shop');
  expect(shop).toMatchObject({ status: 'rolled-back', phase: 'rolled-back', error: 'aborted by the operator after PVC db failed' });
  expect(shop.rollback?.steps).toEqual([
    { step: 'unquiesce', ok: true },
    { step: 'cleanup', ok: true },
    { step: 'deleteDestinationPVCs', ok: true },
  ]);
  const order = fake.activityOrder({ namespace: 'shop' });
  expect(order.slice(-3)).toEqual(['unquiesce', 'cleanup', 'deleteDestinationPVCs']);
  expect(fake.replicas('shop', 'web')).toBe(2);
  expect(fake.objectsUnder('destination/pvc/')).toEqual([]);
  expect(fake.objectsUnder('source/client/')).toEqual([]);
  expect(fake.has('destination/namespace/shop/shop')).toBe(true); // namespaces are never deleted
});

test('groupSnapshot: one VolumeGroupSnapshot per stage pass before its syncs, each stage sync restored from its member, released after the pass; the final sync reads the PVCs', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  const plan = testPlan({ sourceCopyMethod: 'snapshot', groupSnapshot: true, stagePasses: 2 });
  const summary = await withWorker(fake, async (tq) => (await start(tq, plan)).result());
  expect(summary.status).toBe('succeeded');
  const order = fake.activityOrder({ namespace: 'shop' }).filter((a) => ['prepareGroupSnapshot', 'releaseGroupSnapshot', 'runTransfer', 'quiesce'].includes(a));
  const pass = ['prepareGroupSnapshot', 'runTransfer', 'runTransfer', 'runTransfer', 'releaseGroupSnapshot'];
  expect(order).toEqual([...pass, ...pass, 'quiesce', 'runTransfer', 'runTransfer', 'runTransfer']);
  const stage = fake.transferSources.filter((t) => !t.final).map((t) => `${t.pvc}:${t.fromSnapshot}`).sort();
  expect(stage).toEqual(['data:group-1-data', 'data:group-2-data', 'db:group-1-db', 'db:group-2-db', 'logs:group-1-logs', 'logs:group-2-logs']);
  expect(fake.transferSources.filter((t) => t.final).every((t) => t.fromSnapshot === undefined)).toBe(true);
});

const HOOKS = [
  { name: 'flush', phase: 'preQuiesce', exec: { selector: 'app=db', command: ['sh', '-c', 'sync'] } },
  { name: 'check', phase: 'postQuiesce', exec: { selector: 'app=db', command: ['true'] } },
  { name: 'warm', phase: 'postCutover', exec: { selector: 'app=db', command: ['true'] } },
  { name: 'note', phase: 'preStage', exec: { selector: 'app=db', command: ['true'] } },
];

test('hooks run at their phases, in order; preQuiesce sees the applications running, postQuiesce sees them stopped', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  const summary = await withWorker(fake, async (tq) => (await start(tq, testPlan({ hooks: HOOKS, stagePasses: 2 }))).result());
  expect(summary.status).toBe('succeeded');
  const order = fake.activityOrder({ namespace: 'shop' });
  const at = (a: string, from = 0) => order.indexOf(a, from);
  // preStage before each of the 2 stage passes' syncs; preQuiesce before quiesce; postQuiesce after the
  // writers check and before the final syncs; postCutover after the final sync, before unquiesce.
  expect(fake.hookRuns.map((h) => h.hook)).toEqual(['note', 'note', 'flush', 'check', 'warm']);
  expect(fake.hookRuns.find((h) => h.hook === 'flush')!.sourceReplicas).toEqual([2]);
  expect(fake.hookRuns.find((h) => h.hook === 'check')!.sourceReplicas).toEqual([0]);
  expect(at('runHook')).toBeLessThan(at('runTransfer'));
  const quiesce = at('quiesce');
  expect(order.slice(quiesce - 2, quiesce + 1)).toEqual(['discoverNamespace', 'runHook', 'quiesce']);
  expect(order.slice(at('checkSourceWriters', quiesce), at('checkSourceWriters', quiesce) + 3)).toEqual(['checkSourceWriters', 'runHook', 'runTransfer']);
  expect(order.slice(-5)).toEqual(['checkSourceWriters', 'runHook', 'releaseAgents', 'unquiesce', 'cleanup']);
  const shop = nsResult(summary, 'shop');
  expect(shop.hooks!.map((h) => [h.name, h.phase, h.cluster, h.namespace, h.ok])).toEqual([
    ['note', 'preStage', 'source', 'shop', true],
    ['note', 'preStage', 'source', 'shop', true],
    ['flush', 'preQuiesce', 'source', 'shop', true],
    ['check', 'postQuiesce', 'source', 'shop', true],
    ['warm', 'postCutover', 'destination', 'shop', true],
  ]);
  expect(shop.hooks![2]!.pods[0]!.outputTail).toBe('flushed\n');
});

test('verifyDestination: after cleanup, the migrated PVCs\' destination pods are checked; not Ready is a warning, not a rollback', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  fake.destinationNotReady.add('logs');
  const summary = await withWorker(fake, async (tq) => (await start(tq, testPlan({ verifyDestination: true }))).result());
  expect(summary.status).toBe('succeeded');
  const order = fake.activityOrder({ namespace: 'shop' });
  expect(order.slice(-3)).toEqual(['unquiesce', 'cleanup', 'checkDestination']);
  expect(fake.destinationChecks).toEqual([{ namespace: 'shop', claims: ['data', 'logs', 'db'].map((name) => ({ name, expected: true })) }]);
  const shop = nsResult(summary, 'shop');
  expect(shop.status).toBe('succeeded');
  expect(shop.phase).toBe('succeeded');
  expect(shop.destinationCheck).toMatchObject({ ok: false, namespace: 'shop' });
  expect(shop.warnings.join('\n')).toMatch(/verifyDestination: the destination pods of the migrated PVCs in shop are not Ready: .*logs: logs-app-0 Waiting: CrashLoopBackOff/);
});

test('without verifyDestination nothing is checked', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  const summary = await withWorker(fake, async (tq) => (await start(tq, testPlan({}))).result());
  expect(summary.status).toBe('succeeded');
  expect(fake.activityOrder({ namespace: 'shop' })).not.toContain('checkDestination');
  expect(nsResult(summary, 'shop').destinationCheck).toBeUndefined();
});

test('background hooks are held inside each pass\'s group snapshot, not run on their own; one that cannot hold (onError fail) fails the namespace', async () => {
  const bg = { name: 'lock', phase: 'preStage', background: true, exec: { selector: 'app=db', command: ['sh', '-c', 'lock; ${FERRY_WAIT}'] } };
  const snapshotPlan = (hooks: unknown[]) => testPlan({ sourceCopyMethod: 'snapshot', groupSnapshot: true, stagePasses: 2, hooks });
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  const summary = await withWorker(fake, async (tq) => (await start(tq, snapshotPlan([bg, { name: 'note', phase: 'preStage', exec: { selector: 'app=db', command: ['true'] } }]))).result());
  expect(summary.status).toBe('succeeded');
  const order = fake.activityOrder({ namespace: 'shop' });
  expect(order.filter((a) => a === 'prepareHeldGroupSnapshot')).toHaveLength(2);
  expect(order).not.toContain('prepareGroupSnapshot');
  // the ordinary preStage hook runs on its own, before the held snapshot
  expect(order.slice(order.indexOf('runHook'), order.indexOf('runHook') + 2)).toEqual(['runHook', 'prepareHeldGroupSnapshot']);
  expect(fake.transferSources.filter((t) => !t.final).every((t) => t.fromSnapshot?.startsWith('group-'))).toBe(true);
  expect(nsResult(summary, 'shop').hooks!.filter((h) => h.name === 'lock').map((h) => h.ok)).toEqual([true, true]);

  const failing = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  failing.failingHooks.set('lock', 1);
  const { summary: failed } = await withWorker(failing, async (tq) => failureOf(await start(tq, snapshotPlan([bg]))));
  const shop = nsResult(failed!, 'shop');
  expect(shop.status).toBe('rolled-back');
  expect(shop.error).toMatch(/hook lock \(preStage, source namespace shop\) failed: the command did not reach \$\{FERRY_WAIT\}/);
  expect(failing.transferSources).toEqual([]);
});

test('endpoint auto: a type that fails the connectivity probe is replaced by the next one (with a new server address); a named type is not', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  fake.unreachableEndpointTypes.add('LoadBalancer');
  const summary = await withWorker(fake, async (tq) => (await start(tq, testPlan({}))).result());
  expect(summary.status).toBe('succeeded');
  const shop = nsResult(summary, 'shop');
  expect(shop.endpoint).toEqual({ type: 'NodePort', reason: 'simulated: LoadBalancer failed' });
  expect(shop.address).toEqual({ host: 'endpoint.shop.example', port: 31000 });
  expect(shop.warnings.join('\n')).toMatch(/endpoint auto: LoadBalancer failed the connectivity probe \(.*no route from the source cluster.*\); trying the next endpoint type/);
  const order = fake.activityOrder({ namespace: 'shop' });
  expect(order.slice(0, 8).filter((a) => a !== 'prepareDestination')).toEqual(['discoverNamespace', 'createEndpoint', 'createServer', 'probeConnectivity', 'createEndpoint', 'createServer', 'probeConnectivity']);

  const named = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  named.unreachableEndpointTypes.add('LoadBalancer');
  const { summary: failed } = await withWorker(named, async (tq) => failureOf(await start(tq, testPlan({ endpoint: { type: 'LoadBalancer' } }))));
  expect(nsResult(failed!, 'shop').status).toBe('rolled-back');
  expect(named.activityOrder({ namespace: 'shop' }).filter((a) => a === 'createEndpoint')).toHaveLength(1);

  const none = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  none.unreachableEndpointTypes.add('LoadBalancer');
  none.unreachableEndpointTypes.add('NodePort');
  const { summary: nothingLeft } = await withWorker(none, async (tq) => failureOf(await start(tq, testPlan({}))));
  expect(nsResult(nothingLeft!, 'shop').error).toMatch(/every type was tried and failed the connectivity probe \(LoadBalancer, NodePort\)/);
});

test('keepPVCNames: after the final sync and before the applications come back, each PVC is bound to its new volume under its own name', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  const plan = testPlan({ destination: { context: 'src' }, keepPVCNames: true, storageClassMapping: { standard: 'fast' }, verifyDestination: true });
  const summary = await withWorker(fake, async (tq) => (await start(tq, plan)).result());
  expect(summary.status).toBe('succeeded');
  const order = fake.activityOrder({ namespace: 'shop' });
  expect(order.slice(-6)).toEqual(['checkSourceWriters', 'rebindPVCs', 'releaseAgents', 'unquiesce', 'cleanup', 'checkDestination']);
  // after the rebind the applications mount the original names, not the temporary claims
  expect(fake.destinationChecks.map((c) => c.claims.map((x) => x.name))).toEqual([['data', 'logs', 'db']]);
  const shop = nsResult(summary, 'shop');
  expect(shop.phases.map((p) => p.name)).toEqual(['prepare', 'stage', 'quiesce', 'final-sync', 'rebind', 'unquiesce', 'cleanup', 'verify-destination']);
  expect(shop.rebound!.map((r) => r.pvc)).toEqual(['data', 'logs', 'db']);
  expect(shop.warnings.filter((w) => /old volume pv-\w+ is kept \(Released, reclaim policy Retain\)/.test(w))).toHaveLength(3);
});

test('a failed preQuiesce hook (onError fail) rolls the namespace back before anything is quiesced', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  fake.failingHooks.set('flush', 1);
  const { summary } = await withWorker(fake, async (tq) => failureOf(await start(tq, testPlan({ hooks: HOOKS }))));
  const shop = nsResult(summary!, 'shop');
  expect(shop.status).toBe('rolled-back');
  expect(shop.error).toMatch(/hook flush \(preQuiesce, source namespace shop\) failed: exited 3 in pod shop\/db-0.*set onError: continue/);
  expect(fake.activityOrder({ namespace: 'shop' })).not.toContain('quiesce');
  expect(fake.replicas('shop', 'web')).toBe(2);
  expect(shop.downtime).toBeUndefined();
});

test('a failed hook with onError continue, and a failed postCutover hook, are warnings', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  fake.failingHooks.set('check', 1);
  fake.failingHooks.set('warm', 1);
  const hooks = HOOKS.map((h) => (h.name === 'check' ? { ...h, onError: 'continue' } : h));
  const summary = await withWorker(fake, async (tq) => (await start(tq, testPlan({ hooks }))).result());
  const shop = nsResult(summary, 'shop');
  expect(shop.status).toBe('succeeded');
  expect(shop.warnings).toEqual([
    expect.stringMatching(/^hook check \(postQuiesce, source namespace shop\) failed: exited 3/),
    expect.stringMatching(/^hook warm \(postCutover, destination namespace shop\) failed: .*\(after the final sync: the copy is kept\)$/),
  ]);
  for (const pvc of ['data', 'logs', 'db']) expect(fake.data('shop', pvc).destination).toBe(fake.data('shop', pvc).source);
});

test('cancellation during the final sync: running syncs stop, then rollback restores the source', async () => {
  const fake = new FakeCluster({ source: { shop: SHOP.shop! }, transferMs: 20 });
  fake.hold = (req) => req.final;
  const { error, summary } = await withWorker(fake, async (tq) => {
    const handle = await start(tq, testPlan({ concurrency: 2, finalConcurrency: 2 }));
    await waitFor('two final syncs to run', async () => {
      const finals = fake.journal().filter((e) => e.event === 'start' && e.activity === 'runTransfer' && e.detail?.endsWith('final=true'));
      return finals.length === 2 && fake.runningTransfers === 2;
    });
    await handle.cancel();
    const f = await failureOf(handle);
    return { ...f, summary: await handle.query(migrationStateQuery) };
  });
  expect(error.cause).toBeInstanceOf(CancelledFailure);
  expect(summary.status).toBe('cancelled');
  const shop = summary.namespaces[0]!.result!;
  expect(shop.status).toBe('rolled-back');
  expect(shop.rollback?.reason).toBe('the migration was cancelled');
  expect(shop.rollback?.steps).toEqual([
    { step: 'unquiesce', ok: true },
    { step: 'cleanup', ok: true },
  ]);
  // Rollback started only after the running syncs had stopped (their client pods deleted).
  const journal = fake.journal();
  const rollbackStart = journal.find((e) => e.event === 'start' && e.activity === 'unquiesce')!.seq;
  const transfersEnded = journal.filter((e) => e.activity === 'runTransfer' && e.event === 'fail').map((e) => e.seq);
  expect(transfersEnded).toHaveLength(2);
  expect(Math.max(...transfersEnded)).toBeLessThan(rollbackStart);
  expect(journal.filter((e) => e.event === 'start' && e.seq > rollbackStart && e.activity === 'runTransfer')).toEqual([]);
  expect(fake.replicas('shop', 'web')).toBe(2);
  expect(fake.objectsUnder('source/client/')).toEqual([]);
  expect(fake.objectsUnder('destination/pvc/')).toHaveLength(3); // kept: deleteDestinationPVCsOnRollback is false
});

test('rollback update: every running namespace rolls back', async () => {
  const fake = new FakeCluster({ source: SHOP, transferMs: 20 });
  fake.hold = () => true;
  const { cause, summary } = await withWorker(fake, async (tq) => {
    const handle = await start(tq, testPlan({ namespaces: ['shop', 'blog'] }));
    await waitFor('stage syncs in both namespaces', async () => {
      const running = fake.journal().filter((e) => e.event === 'start' && e.activity === 'runTransfer');
      return running.some((e) => e.detail?.startsWith('shop')) && running.some((e) => e.detail?.startsWith('blog'));
    });
    const r = await handle.executeUpdate(rollbackUpdate, { args: [{ reason: 'wrong storage class' }] });
    expect(r.namespaces.sort()).toEqual(['blog', 'shop']);
    await expectRejected(handle.executeUpdate(rollbackUpdate, { args: [{}] }), /already requested/);
    return failureOf(handle);
  });
  expect((cause as ApplicationFailure).type).toBe(WorkflowFailureType.RolledBack);
  expect((cause as ApplicationFailure).message).toMatch(/rolled back by the operator \(wrong storage class\)/);
  expect(summary?.status).toBe('rolled-back');
  for (const ns of summary!.namespaces) {
    expect(ns.status).toBe('rolled-back');
    expect(ns.result?.rollback?.steps).toEqual([{ step: 'cleanup', ok: true }]); // never quiesced
  }
  expect(fake.objectsUnder('source/client/')).toEqual([]);
  expect(fake.objectsUnder('destination/server/')).toEqual([]);
});

test('preflight reports every problem at once and touches nothing', async () => {
  const fake = new FakeCluster({ source: SHOP });
  fake.seed('destination/pvc/shop/db', 'someone-else');
  const { cause, summary } = await withWorker(fake, async (tq) => failureOf(await start(tq, testPlan({ namespaces: ['shop', 'ghost'] }))));
  expect((cause as ApplicationFailure).type).toBe(FailureType.Preflight);
  expect((cause as ApplicationFailure).message).toMatch(/preflight found 2 problems; nothing was changed/);
  expect(summary?.problems).toEqual([
    { subject: 'namespace ghost', message: expect.stringMatching(/namespace ghost not found in the source cluster/) },
    { subject: 'pvc shop/db', message: expect.stringMatching(/not created by this migration/) },
  ]);
  expect(summary?.status).toBe('failed');
  expect(fake.activityOrder()).toEqual(['discoverNamespace', 'discoverNamespace', 'preflight']);
  expect(fake.journal().filter((e) => e.event === 'create')).toEqual([]);
});
