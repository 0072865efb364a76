/**
 * Lab drill (issue 8 item 8, issue 9 §1): the destination transfer server pod is deleted while a sync
 * is pushing data, and the migration recovers on its own — no operator decision — with identical data
 * and no Ferry object left. Before Ferry ensured the server before every sync, every retry (and every
 * `ferry retry`) failed with rsync exit 12 against a server that no longer existed, for ever.
 *
 * A real Temporal dev server, a real `ferry worker` child process, the sample namespace of
 * hack/e2e/sample-app.sh (small profile: only its "files" PVC migrated, rsync bandwidth-limited so that
 * the sync lasts long enough), `kubectl delete pod` on the server in the dst cluster once the client pod
 * runs and bytes flow. Namespace, migration id and task queue are this file's own (prefix s-).
 *
 * Skipped with a message unless the lab with nodes is up; FERRY_REQUIRE_LAB=1 makes that a failure.
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
import { compareManifests, ferryObjects, freePort, kubectl, LAB_KUBECONFIG, labGate, manifest, seedSample, waitUntil, workloadState } from '../../hack/e2e/lib';

const ROOT = join(__dirname, '..', '..');

const labDescribe = labGate('server drill');

/** Short timings: retries wait 1/5 of the default. */
const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const RUN = Math.random().toString(36).slice(2, 7);
const NS = `s-${RUN}-srv`;
const ID = `s-${RUN}-srv`;
const TASK_QUEUE = `ferry-s-${RUN}`;
const t0 = Date.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stdout.write(`[server drill +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

labDescribe('the destination transfer server pod lost mid-transfer (lab)', () => {
  let temporal: TemporalHandle;
  let session: TemporalSession;
  let stateDir: string;
  let worker: ChildProcess | undefined;

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'ferry-s-e2e-'));
    const port = await freePort();
    const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
    const workerEnv = { ...env, KUBECONFIG: LAB_KUBECONFIG, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TASK_QUEUE: TASK_QUEUE, FERRY_LOG_LEVEL: 'info' };
    temporal = await resolveTemporal({ env: workerEnv, stateDir, port, headless: true });
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'client.ts'), 'worker'], { cwd: ROOT, env: workerEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    worker = child;
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-(1 << 20))));
    child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-(1 << 20))));
    await waitUntil(() => {
      if (child.exitCode !== null) throw new Error(`the worker exited ${child.exitCode}: ${out.slice(-2000)}`);
      return out.includes('"msg":"worker started"');
    }, 'the worker to start', 120_000, 500);
    session = await openSession(workerEnv);
  }, 300_000);

  afterAll(async () => {
    const w = worker;
    if (w && w.exitCode === null && w.signalCode === null) {
      const exited = new Promise((r) => w.once('exit', r));
      w.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    }
    await session?.close().catch(() => undefined);
    await temporal?.stop().catch(() => undefined);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    if (process.env.FERRY_E2E_KEEP !== '1') {
      for (const ctx of ['ferry-src', 'ferry-dst']) spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', ctx, 'delete', 'ns', NS, '--wait=false'], { timeout: 30000 });
    }
  }, 120_000);

  test('server pod deleted mid-sync: recreated by Ferry, the retry resumes, data identical, nothing left', async () => {
    await seedSample(NS, { profile: 'small', owners: 'mixed', bigMiB: 32, sparse: '16M', filesSize: '96Mi', dstNamespace: NS });
    log(`seeded ${NS}`);
    const before = workloadState(NS);
    const plan = parsePlan({
      source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
      destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
      namespaces: [NS],
      stagePasses: 1,
      stageIntervalSeconds: 0,
      quiesce: true,
      endpoint: { type: 'LoadBalancer' },
      security: { mode: 'preserve-ownership' },
      pvcs: { names: ['files'] },
      rsync: { bandwidthLimitKiBps: 3072 },
      timeouts: { endpointReadySeconds: 120, serverReadySeconds: 300 },
    });
    await startMigration(session, plan, ID, TUNING);

    // The client pod runs and bytes flow (the heartbeat's live figures) ...
    await waitUntil(() => {
      const pods = JSON.parse(kubectl('ferry-src', ['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/managed-by=ferry,ferry.dev/role=client', '-o', 'json'])).items as any[];
      return pods.some((x) => x.status?.phase === 'Running');
    }, `a running client pod in ${NS}`, 300_000, 500);
    const bytes = await waitUntil(async () => {
      const b = Object.values((await getMigration(session, ID)).live)[0]?.progress?.bytes ?? 0;
      return b >= 4 << 20 ? b : undefined;
    }, 'the stage sync to send 4 MiB', 120_000, 500);
    // ... then the server pod goes, as an operator's `kubectl delete` or a drain would take it.
    const servers = JSON.parse(kubectl('ferry-dst', ['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/managed-by=ferry,ferry.dev/role=server', '-o', 'json'])).items as any[];
    expect(servers).toHaveLength(1);
    const server = servers[0].metadata as { name: string; uid: string };
    const pdbs = JSON.parse(kubectl('ferry-dst', ['-n', NS, 'get', 'poddisruptionbudgets', '-l', 'app.kubernetes.io/managed-by=ferry', '-o', 'json'])).items as any[];
    const requests = servers[0].spec.containers.map((c: any) => c.resources?.requests);
    // A drain (the Eviction API) is refused by the PodDisruptionBudget while the server is needed.
    const eviction = spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', 'ferry-dst', 'create', '--raw', `/api/v1/namespaces/${NS}/pods/${server.name}/eviction`, '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: server.name, namespace: NS } }),
      encoding: 'utf8',
      timeout: 30000,
    });
    log(`eviction of ${server.name}: exit ${eviction.status}, ${(eviction.stderr || eviction.stdout).trim().slice(0, 300)}`);
    const evictionRefused = eviction.status !== 0 && /disruption budget|TooManyRequests|429/i.test(eviction.stderr);
    const deletedAt = Date.now();
    kubectl('ferry-dst', ['-n', NS, 'delete', 'pod', server.name, '--wait=false']);
    log(`deleted server pod ${server.name} after ${bytes} bytes`);

    // The migration must end on its own: succeeded, or stuck awaiting a decision (the old behaviour).
    const failures = new Set<string>();
    let maxAttempt = 1;
    const view = await waitUntil(async () => {
      const v = await getMigration(session, ID);
      for (const l of Object.values(v.live)) {
        maxAttempt = Math.max(maxAttempt, l.attempt);
        if (l.lastFailure) failures.add(l.lastFailure);
      }
      return v.workflowStatus !== 'RUNNING' || v.state?.phase === 'awaiting-decision' ? v : undefined;
    }, 'the migration to finish or wait for a decision', 480_000, 1000);
    const took = (Date.now() - deletedAt) / 1000;
    const pvcErrors = Object.values(view.namespaces).flatMap((n) => n.pvcs.flatMap((p) => p.errors.map((e) => `${e.type}: ${e.message}`)));
    log(`phase ${view.state?.phase}, workflow ${view.workflowStatus} ${took.toFixed(0)} s after the deletion; attempts ${maxAttempt}; failures seen: ${JSON.stringify([...failures, ...pvcErrors]).slice(0, 1500)}`);
    if (view.state?.phase === 'awaiting-decision') throw new Error(`the migration is stuck awaiting an operator's decision ${took.toFixed(0)} s after the server pod was deleted: ${pvcErrors.join(' | ')}`);
    let s: MigrationState;
    try {
      s = (await session.client.workflow.getHandle(ID).result()) as MigrationState;
    } catch (e) {
      if (e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure && e.cause.details?.[0]) s = e.cause.details[0] as MigrationState;
      else throw e;
    }
    expect({ status: s.status, error: s.error }).toEqual({ status: 'succeeded', error: undefined });
    // the failed attempt said what happened to the server (when the worker saw it between attempts)
    const explained = [...failures, ...pvcErrors].find((f) => /Server: the transfer server pod/.test(f));
    if (failures.size) expect(explained).toMatch(/Server: the transfer server pod \S+ (was deleted during the sync|is being deleted|was replaced)/);

    // the server had resource requests and a PodDisruptionBudget
    expect(pdbs.map((p) => p.spec.minAvailable)).toEqual([1]);
    expect(evictionRefused).toBe(true);
    expect(requests).toEqual([{ cpu: '50m', memory: '64Mi' }, { cpu: '50m', memory: '64Mi' }]);
    const c = compareManifests(await manifest('ferry-src', NS, 'files'), await manifest('ferry-dst', NS, 'files'));
    expect(c.differences.slice(0, 20)).toEqual([]);
    expect(c.entries).toBeGreaterThan(5);
    expect(workloadState(NS)).toEqual(before);
    expect(ferryObjects([NS])).toEqual([]);
    log(`succeeded ${took.toFixed(0)} s after the server pod was deleted; ${maxAttempt} attempts; data identical (${c.entries} entries, ${(c.bytes / 1048576).toFixed(1)} MiB); explained: ${explained ?? '(no failed attempt observed)'}`);
  }, 900_000);
});
