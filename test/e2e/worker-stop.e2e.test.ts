/**
 * Drill on the lab (issue 8 item 17): a graceful stop (SIGTERM) of `ferry worker` in the middle of a
 * transfer. The real worker gives running activities shutdownGraceTime (20 s), then the SDK cancels
 * them with WORKER_SHUTDOWN: the transfer must leave its sync copying in the PVC's warm transfer agent
 * (same pod, same uid; issue 9), and the next worker's attempt attaches to that sync — no second
 * agent, no second rsync — so the sync's summary holds that one rsync run's figures (all its bytes,
 * its whole duration), and the data ends identical.
 *
 * Namespace `c-<run>-stop` (its own), its own dev server, task queue and migration id. A small sample
 * with rsync limited to 1 MiB/s so that the transfer outlasts the stop and its 20 s of grace. Skipped unless the lab is up;
 * FERRY_REQUIRE_LAB=1 makes that a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { getMigration, openSession, startMigration, type TemporalSession } from '../../src/cli/operations';
import { parsePlan } from '../../src/plan/load';
import { resolveTemporal, type TemporalHandle } from '../../src/temporal/devserver';
import type { MigrationState, WorkflowTuning } from '../../src/core/state';
import { compareManifests, ferryObjects, freePort, kubectl, LAB_KUBECONFIG, labUnavailable, manifest, seedSample, waitUntil, workloadState } from '../../hack/e2e/lib';

const ROOT = join(__dirname, '..', '..');

const unavailable = labUnavailable(['kubectl']);
if (unavailable && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but the lab is not available: ${unavailable}`);
if (unavailable) console.warn(`SKIPPED worker-stop drill: ${unavailable} (FERRY_REQUIRE_LAB=1 makes this a failure)`);
const labTest = unavailable ? test.skip : test;

const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const RUN = Math.random().toString(36).slice(2, 7);
const NS = `c-${RUN}-stop`;
const ID = `c-${RUN}-stop`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let temporal: TemporalHandle | undefined;
let session: TemporalSession | undefined;
let stateDir: string;
let workerEnv: NodeJS.ProcessEnv;
let workerLog = '';

/** Starts `ferry worker` as a child process; resolves once it polls. */
async function startWorker(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'client.ts'), 'worker'], { cwd: ROOT, env: workerEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString();
    workerLog += d.toString();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  await waitUntil(() => {
    if (child.exitCode !== null) throw new Error(`the worker exited ${child.exitCode}: ${out.slice(-2000)}`);
    return out.includes('"msg":"worker started"');
  }, 'the worker to start', 120_000, 500);
  return child;
}

/** The client pods of the drill's namespace: name → uid. */
function clientPods(): Record<string, string> {
  const pods = JSON.parse(kubectl('ferry-src', ['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/managed-by=ferry,ferry.dev/role=client', '-o', 'json'])).items as { metadata: { name: string; uid: string; deletionTimestamp?: string } }[];
  return Object.fromEntries(pods.filter((p) => !p.metadata.deletionTimestamp).map((p) => [p.metadata.name, p.metadata.uid]));
}

beforeAll(async () => {
  if (unavailable) return;
  stateDir = mkdtempSync(join(tmpdir(), 'c-stop-'));
  const port = await freePort();
  const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
  workerEnv = { ...env, KUBECONFIG: LAB_KUBECONFIG, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TASK_QUEUE: `c-stop-${RUN}`, FERRY_LOG_LEVEL: 'info' };
  temporal = await resolveTemporal({ env: workerEnv, stateDir, port, headless: true });
  session = await openSession(workerEnv);
}, 300_000);

afterAll(async () => {
  await session?.close().catch(() => undefined);
  await temporal?.stop().catch(() => undefined);
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  if (!unavailable && process.env.FERRY_E2E_KEEP !== '1') {
    for (const ctx of ['ferry-src', 'ferry-dst']) spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', ctx, 'delete', 'ns', NS, '--wait=false'], { timeout: 30000 });
  }
}, 120_000);

labTest('SIGTERM of the worker mid-transfer: the sync keeps copying in its agent, the next worker attaches to it, data identical', async () => {
  await seedSample(NS, { profile: 'small', owners: 'mixed', bigMiB: 72, sparse: '16M', filesSize: '128Mi', dstNamespace: NS });
  const before = workloadState(NS);
  const plan = parsePlan({
    source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
    destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
    namespaces: [NS],
    pvcs: { names: ['files'] },
    stagePasses: 0,
    quiesce: true,
    endpoint: { type: 'LoadBalancer' },
    security: { mode: 'preserve-ownership' },
    rsync: { bandwidthLimitKiBps: 1024 },
    timeouts: { endpointReadySeconds: 120, serverReadySeconds: 300 },
  });
  let worker = await startWorker();
  await startMigration(session!, plan, ID, TUNING);
  const pod = await waitUntil(() => Object.entries(clientPods())[0], 'a transfer agent', 300_000, 500);
  // The agent is made at set-up; the sync starts in it after quiesce.
  await waitUntil(() => workerLog.includes('sync started in the transfer agent'), 'the final sync to start in the agent', 300_000, 500);
  // 10 s into the sync (about 10 MiB of ~100): the stop and its 20 s of grace end well before it does.
  await sleep(10_000);
  const sentBefore = Object.values((await getMigration(session!, ID)).live)[0]?.progress?.bytes;

  // Graceful stop: 20 s of grace, then WORKER_SHUTDOWN; the worker exits 0.
  const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
  const stoppedAt = Date.now();
  worker.kill('SIGTERM');
  expect(await Promise.race([exited, sleep(60_000).then(() => 'timeout')])).toBe(0);
  expect(workerLog).toContain('leaving the sync running in the agent for the next attempt to attach to');
  expect(clientPods()).toEqual(Object.fromEntries([pod])); // the same pod (uid), still there

  const secondWorkerFrom = workerLog.length;
  worker = await startWorker();
  let s: MigrationState;
  try {
    s = (await session!.client.workflow.getHandle(ID).result()) as MigrationState;
  } catch (e) {
    if (e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure && e.cause.details?.[0]) s = e.cause.details[0] as MigrationState;
    else throw e;
  } finally {
    const gone = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGTERM');
    await Promise.race([gone, sleep(40_000)]);
  }
  expect(s.status).toBe('succeeded');
  const pvc = s.namespaces[0]!.result!.pvcs.find((p) => p.name === 'files')!;
  const last = pvc.lastSync!;
  // The second worker made no agent and started no sync: the one rsync run did the whole sync, and
  // the summary's figures are that run's stats, measured from the sync's own start.
  const second = workerLog.slice(secondWorkerFrom);
  expect(second).toContain('re-attached to the sync running in the agent');
  expect(second).not.toContain('"msg":"transfer agent created"');
  expect(second).not.toContain('"msg":"sync started in the transfer agent"');
  const at = (msg: string) => (JSON.parse(second.split('\n').find((l) => l.includes(`"msg":"${msg}"`))!) as { time: number }).time;
  const afterAttachSeconds = (at('sync in the transfer agent ended') - at('re-attached to the sync running in the agent')) / 1000;
  expect(last.durationSeconds).toBeGreaterThan(afterAttachSeconds + 20); // the grace time and before count too
  const c = compareManifests(await manifest('ferry-src', NS, 'files'), await manifest('ferry-dst', NS, 'files'));
  expect(c.differences.slice(0, 20)).toEqual([]);
  expect(workloadState(NS)).toEqual(before);
  expect(ferryObjects([NS], ID)).toEqual([]);
  process.stdout.write(
    `worker-stop drill: SIGTERM 10 s into the sync (live figure then: ${sentBefore !== undefined ? `${sentBefore} bytes` : 'none yet'}); pod ${pod[0]} (uid ${pod[1]}) kept and re-attached; ` +
      `migration ${s.status} ${((Date.now() - stoppedAt) / 1000).toFixed(0)} s after the stop; final sync ${last.durationSeconds} s (${afterAttachSeconds.toFixed(0)} s of it after the re-attach), ${(last.bytesSent / 1048576).toFixed(1)} MiB sent of ${((last.totalFileSize ?? 0) / 1048576).toFixed(1)} MiB; data identical (${c.entries} entries)\n`,
  );
}, 900_000);
