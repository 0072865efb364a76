/**
 * Lab drill (issue 8 item 12): live progress at a throttled rate. One PVC of 48 MiB of random data is
 * migrated with rsync limited to 1.5 MiB/s (about 30 s of transfer); while it runs, the migration is
 * read as `ferry status` reads it (getMigration: the transfer activity's heartbeat details via
 * describe()) once a second. Several distinct byte counts must be seen during the sync — before the
 * fix the client's output filter held rsync's '\r' progress lines back for 40-55 s, so heartbeats
 * carried null. The destination data must be identical.
 *
 * Own namespace (d-progress-<run>), own Temporal dev server, task queue and migration id, so it runs
 * beside other drills. Skipped unless the lab is up (FERRY_REQUIRE_LAB=1 makes that a failure).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getMigration, openSession, startMigration, type TemporalSession } from '../../src/cli/operations';
import { parsePlan } from '../../src/plan/load';
import { resolveTemporal, type TemporalHandle } from '../../src/temporal/devserver';
import type { WorkflowTuning } from '../../src/core/state';
import { compareManifests, freePort, kubectl, LAB_KUBECONFIG, labGate, manifest, startWorkerProcess, waitUntil } from '../../hack/e2e/lib';

const ROOT = join(__dirname, '..', '..');
const MiB = 1024 * 1024;

const labDescribe = labGate('progress drill');

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `d-progress-${RUN}`;
const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

labDescribe('lab drill: live progress at a throttled rate', () => {
  let temporal: TemporalHandle;
  let session: TemporalSession;
  let stateDir: string;
  let worker: ChildProcess | undefined;
  let workerLog = '';

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'ferry-d-progress-'));
    const port = await freePort();
    const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
    const workerEnv = { ...env, KUBECONFIG: LAB_KUBECONFIG, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TASK_QUEUE: `d-progress-${RUN}`, FERRY_LOG_LEVEL: 'info' };
    temporal = await resolveTemporal({ env: workerEnv, stateDir, port, headless: true });
    worker = await startWorkerProcess(ROOT, workerEnv, (chunk) => (workerLog = (workerLog + chunk).slice(-(2 << 20))));
    session = await openSession(workerEnv);

    // The source: one PVC with 48 MiB of random data, written by a pod that then goes away.
    kubectl('ferry-src', ['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
        { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '128Mi' } } } },
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'seed', namespace: NS },
          spec: {
            restartPolicy: 'Never',
            terminationGracePeriodSeconds: 0,
            containers: [{ name: 'seed', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['bash', '-c', 'head -c 48M /dev/urandom > /d/big.bin && echo small > /d/small.txt && sync'], volumeMounts: [{ name: 'd', mountPath: '/d' }] }],
            volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data' } }],
          },
        },
      ],
    }));
    await waitUntil(() => kubectl('ferry-src', ['-n', NS, 'get', 'pod', 'seed', '-o', 'jsonpath={.status.phase}']) === 'Succeeded', 'the seed pod', 300_000);
    kubectl('ferry-src', ['-n', NS, 'delete', 'pod', 'seed', '--wait=true']);
  }, 600_000);

  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      const exited = new Promise((r) => worker!.once('exit', r));
      worker.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
    }
    await session?.close().catch(() => undefined);
    await temporal?.stop().catch(() => undefined);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    for (const ctx of ['ferry-src', 'ferry-dst']) spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', ctx, 'delete', 'ns', NS, '--wait=false'], { timeout: 30000 });
  }, 120_000);

  test('heartbeats carry several distinct byte counts during a 1.5 MiB/s sync', async () => {
    const plan = parsePlan({
      source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
      destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
      namespaces: [NS],
      stagePasses: 1,
      stageIntervalSeconds: 0,
      quiesce: false,
      endpoint: { type: 'LoadBalancer' },
      security: { mode: 'preserve-ownership' },
      rsync: { bandwidthLimitKiBps: 1536 },
      timeouts: { endpointReadySeconds: 120, serverReadySeconds: 300 },
    });
    const id = `d-progress-${RUN}`;
    await startMigration(session, plan, id, TUNING);
    const seen: { at: number; bytes: number }[] = [];
    const t0 = Date.now();
    let status = 'RUNNING';
    while (status === 'RUNNING' && Date.now() - t0 < 600_000) {
      const v = await getMigration(session, id).catch(() => undefined);
      status = v?.workflowStatus ?? status;
      for (const lp of Object.values(v?.live ?? {})) {
        const b = lp.progress?.bytes;
        if (b !== undefined && b > 0 && b < 48 * MiB && !seen.some((x) => x.bytes === b)) seen.push({ at: Date.now() - t0, bytes: b });
      }
      await sleep(1000);
    }
    process.stdout.write(`[d-progress] progress seen (ms since start → bytes): ${seen.map((x) => `${x.at}→${x.bytes}`).join(', ')}\n`);
    const final = await getMigration(session, id, { live: false });
    expect({ status: final.workflowStatus, failure: final.failure }).toEqual({ status: 'COMPLETED', failure: undefined });
    // About 30 s of transfer, the activity reads the log every 5 s and heartbeats at most every 2 s.
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.bytes).toBeGreaterThan(seen[i - 1]!.bytes);
    const c = compareManifests(await manifest('ferry-src', NS, 'data'), await manifest('ferry-dst', NS, 'data'));
    expect(c.differences.slice(0, 20)).toEqual([]);
  }, 900_000);
});
