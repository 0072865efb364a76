/**
 * Durability: a migration survives its worker process being SIGKILLed, once in the middle of a long
 * transfer and once at an activity boundary, and finishes on a new worker process without redoing
 * anything: no object created twice, no completed activity run again, the interrupted transfers
 * re-attached to their client pods.
 *
 * The workers are real processes (./support/durable-worker.ts: Ferry's runWorker with the real
 * workflows); the simulated clusters live in files shared by the processes, with a journal of every
 * activity start/completion and every object created.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { migrationWorkflow } from '../../src/workflows';
import { namespaceWorkflowId } from '../../src/workflows/definitions';
import { FakeCluster, type SourceSpec } from './support/fake-cluster';
import { startTemporal, testPlan, unique, waitFor, workflowBundle } from './support/env';

jest.setTimeout(180_000);

const ROOT = join(__dirname, '..', '..');
const SOURCE: SourceSpec = {
  shop: {
    pvcs: [
      { name: 'data', bytes: 4_000_000 },
      { name: 'logs', bytes: 2_000_000 },
    ],
    workloads: [{ name: 'web', replicas: 2 }],
  },
};

let env: TestWorkflowEnvironment;
let dir: string;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-durability-'));
  const [e, bundle] = await Promise.all([startTemporal(), workflowBundle()]);
  env = e;
  writeFileSync(join(dir, 'workflow-bundle.js'), bundle.code);
});

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await env?.teardown();
  if (process.env.FERRY_KEEP_TEST_DIRS !== '1') rmSync(dir, { recursive: true, force: true });
});

function spawnWorker(configFile: string, n: number): ChildProcess {
  const log = openSync(join(dir, `worker-${n}.log`), 'a');
  // tsx as a loader in this very process (the tsx CLI would put a wrapper process in between, and
  // SIGKILL would hit the wrapper, not the worker).
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'support', 'durable-worker.ts'), configFile], {
    cwd: ROOT,
    stdio: ['ignore', log, log],
  });
  workers.push(child);
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Starts a migration of SOURCE on `taskQueue` and waits until both stage transfers are under way. */
async function startUnderWay(fake: FakeCluster, taskQueue: string, idPrefix: string) {
  const id = unique(idPrefix);
  const handle = await env.client.workflow.start(migrationWorkflow, {
    taskQueue,
    workflowId: id,
    args: [{ migrationId: id, plan: testPlan({ concurrency: 2 }), tuning: { heartbeatTimeoutSeconds: 2, retryIntervalScale: 0.01 } }],
  });
  await waitFor(
    'both stage transfers to be under way',
    async () => {
      const progress = fake.journal().filter((e) => e.event === 'progress');
      return ['shop/data', 'shop/logs'].every((pvc) => progress.filter((e) => e.detail?.startsWith(`${pvc} `)).length >= 3);
    },
    60_000,
  );
  return { id, handle };
}

test('a migration survives SIGKILL of its worker mid-transfer and at an activity boundary', async () => {
  const taskQueue = unique('durable');
  const configFile = join(dir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({ address: env.address, taskQueue, dir, bundlePath: join(dir, 'workflow-bundle.js'), source: SOURCE, transferMs: 3000, quiesceWaitMs: 1500 }),
  );
  const fake = new FakeCluster({ source: SOURCE, dir }); // writes the initial cluster state

  const w1 = spawnWorker(configFile, 1);
  // 1. Kill in the middle of the long stage transfers of both PVCs.
  const { id, handle } = await startUnderWay(fake, taskQueue, 'durable-mig');
  await kill(w1);

  // 2. Kill at an activity boundary: right after Temporal recorded the completion of quiesce.
  const w2 = spawnWorker(configFile, 2);
  const nsId = namespaceWorkflowId(id, 'shop');
  await waitFor(
    'quiesce to complete in the history',
    async () => {
      const events = (await env.client.workflow.getHandle(nsId).fetchHistory()).events ?? [];
      const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'quiesce');
      return scheduled && events.some((e) => String(e.activityTaskCompletedEventAttributes?.scheduledEventId) === String(scheduled.eventId));
    },
    90_000,
  );
  await kill(w2);

  const w3 = spawnWorker(configFile, 3);
  const summary = await handle.result();
  w3.kill('SIGTERM');

  expect(summary.status).toBe('succeeded');
  const journal = fake.journal();

  // Three worker processes did the work.
  const pids = new Set(journal.filter((e) => e.event === 'start').map((e) => e.pid));
  expect([...pids].sort()).toEqual([w1.pid, w2.pid, w3.pid].sort());

  // No object was created twice; the interrupted syncs re-attached to their client pods.
  const creates = journal.filter((e) => e.event === 'create').map((e) => e.object!);
  expect(creates.length).toBe(new Set(creates).size);
  expect(creates.filter((o) => o.startsWith('source/client/')).sort()).toEqual([
    'source/client/shop/data-1',
    'source/client/shop/data-2',
    'source/client/shop/logs-1',
    'source/client/shop/logs-2',
  ]);
  const adopted = journal.filter((e) => e.event === 'adopt').map((e) => e.object);
  expect(adopted).toEqual(expect.arrayContaining(['source/client/shop/data-1', 'source/client/shop/logs-1']));
  const dataStage = journal.filter((e) => e.event === 'start' && e.detail === 'shop data pass=1 final=false');
  expect(dataStage.map((e) => [e.attempt, e.pid])).toEqual([
    [1, w1.pid],
    [2, w2.pid],
  ]);

  // No completed activity ran again, and no extra activity was scheduled.
  const completedAt = new Map<string, number>();
  for (const e of journal) if (e.event === 'complete') completedAt.set(e.activityKey!, e.seq);
  const rerun = journal.filter((e) => e.event === 'start' && completedAt.has(e.activityKey!) && e.seq > completedAt.get(e.activityKey!)!);
  expect(rerun).toEqual([]);
  const completes = journal.filter((e) => e.event === 'complete').map((e) => e.activityKey);
  expect(completes.length).toBe(new Set(completes).size);
  const scheduled = (activity: string) => new Set(journal.filter((e) => e.event === 'start' && e.activity === activity).map((e) => e.activityKey)).size;
  expect(['prepareDestination', 'createEndpoint', 'createServer', 'quiesce', 'waitForQuiesced', 'unquiesce', 'cleanup'].map(scheduled)).toEqual([1, 1, 1, 1, 1, 1, 1]);
  expect(scheduled('runTransfer')).toBe(4); // 2 PVCs × (1 stage + 1 final)
  // waitForQuiesced, the next activity after the second kill, completed once, on the third worker
  // (the second one may or may not have started it before it died).
  const waits = journal.filter((e) => e.activity === 'waitForQuiesced');
  expect(waits.filter((e) => e.event === 'complete').map((e) => e.pid)).toEqual([w3.pid]);

  // The clusters end as after an uninterrupted migration.
  expect(fake.data('shop', 'data').destination).toBe(fake.data('shop', 'data').source);
  expect(fake.replicas('shop', 'web')).toBe(2);
  expect(fake.objectsUnder('source/client/')).toEqual([]);
  expect(readFileSync(join(dir, 'worker-3.log'), 'utf8')).toContain('worker started');
});

test('a graceful worker stop (SIGTERM) mid-transfer leaves the client pods; the next worker re-attaches to them', async () => {
  const taskQueue = unique('graceful');
  const stateDir = join(dir, 'graceful');
  mkdirSync(stateDir);
  const configFile = join(stateDir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({ address: env.address, taskQueue, dir: stateDir, bundlePath: join(dir, 'workflow-bundle.js'), source: SOURCE, transferMs: 6000, quiesceWaitMs: 0 }),
  );
  const fake = new FakeCluster({ source: SOURCE, dir: stateDir });

  const w1 = spawnWorker(configFile, 11);
  const { handle } = await startUnderWay(fake, taskQueue, 'graceful-mig');
  // SIGTERM: runWorker shuts down gracefully; after shutdownGraceTime (1 s here) the SDK cancels the
  // running transfers with WORKER_SHUTDOWN.
  const exited = new Promise<number | null>((resolve) => w1.once('exit', (code) => resolve(code)));
  w1.kill('SIGTERM');
  expect(await exited).toBe(0);
  const stopped = fake.journal();
  // The attempts ended (cancelled by the shutdown), and their client pods were left in place.
  expect(stopped.filter((e) => e.event === 'fail' && e.activity === 'runTransfer' && e.pid === w1.pid)).toHaveLength(2);
  expect(stopped.filter((e) => e.event === 'delete' && e.object?.startsWith('source/client/'))).toEqual([]);
  expect(fake.objectsUnder('source/client/').sort()).toEqual(['source/client/shop/data-1', 'source/client/shop/logs-1']);

  const w2 = spawnWorker(configFile, 12);
  const summary = await handle.result();
  w2.kill('SIGTERM');
  expect(summary.status).toBe('succeeded');
  const journal = fake.journal();
  // The next worker's attempts re-attached: each stage pod created once (by w1), adopted by w2.
  const creates = journal.filter((e) => e.event === 'create' && e.object?.startsWith('source/client/'));
  expect(creates.map((e) => [e.object, e.pid]).sort()).toEqual(
    [
      ['source/client/shop/data-1', w1.pid],
      ['source/client/shop/data-2', w2.pid],
      ['source/client/shop/logs-1', w1.pid],
      ['source/client/shop/logs-2', w2.pid],
    ].sort(),
  );
  const adopted = journal.filter((e) => e.event === 'adopt' && e.object?.startsWith('source/client/'));
  expect(adopted.map((e) => [e.object, e.pid]).sort()).toEqual(
    [
      ['source/client/shop/data-1', w2.pid],
      ['source/client/shop/logs-1', w2.pid],
    ].sort(),
  );
  expect(fake.objectsUnder('source/client/')).toEqual([]);
});
