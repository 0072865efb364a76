/**
 * Lab drill (issue 12 item 1): Ferry's Prometheus metrics during a real migration. One PVC of 16 MiB
 * of random data is migrated (one stage sync and the final sync, rsync limited to 2 MiB/s so that the
 * stage sync runs for several seconds) by a `ferry worker` process with FERRY_METRICS_PORT and
 * FERRY_SDK_METRICS_PORT set. The endpoint is scraped twice a second while it runs: the rate gauge
 * and the active client pod must be seen during the sync; at the end the byte counter of the
 * migration must equal the bytes rsync reported (the sum of the syncs' bytesSent in the migration's
 * state: rsync's "Total bytes sent"), the sync counter the syncs run, and the SDK's endpoint must
 * serve temporal_* metrics.
 *
 * Own namespace (metrics-<run>), own Temporal dev server, task queue and migration id. Skipped unless
 * the lab is up (FERRY_REQUIRE_LAB=1 makes that a failure). About a minute.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getMigration, openSession, startMigration, type TemporalSession } from '../../src/cli/operations';
import { parsePlan } from '../../src/plan/load';
import { resolveTemporal, type TemporalHandle } from '../../src/temporal/devserver';
import { migrationTotals, type WorkflowTuning } from '../../src/core/state';
import { freePort, kubectl, LAB_KUBECONFIG, labGate, startWorkerProcess, waitUntil } from '../../hack/e2e/lib';
import { scrape, sumOf } from '../support/prometheus';

const ROOT = join(__dirname, '..', '..');
const MiB = 1024 * 1024;

const labDescribe = labGate('metrics drill');

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `metrics-${RUN}`;
const ID = `metrics-${RUN}`;
const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

labDescribe('lab drill: Prometheus metrics during a real migration', () => {
  let temporal: TemporalHandle;
  let session: TemporalSession;
  let stateDir: string;
  let worker: ChildProcess | undefined;
  let workerLog = '';
  let metricsUrl = '';
  let sdkMetricsUrl = '';

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'ferry-metrics-'));
    const port = await freePort();
    const [ferryPort, sdkPort] = [await freePort(), await freePort()];
    metricsUrl = `http://127.0.0.1:${ferryPort}/metrics`;
    sdkMetricsUrl = `http://127.0.0.1:${sdkPort}/metrics`;
    const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
    const workerEnv = {
      ...env,
      KUBECONFIG: LAB_KUBECONFIG,
      FERRY_STATE_DIR: stateDir,
      FERRY_TEMPORAL_PORT: String(port),
      FERRY_TASK_QUEUE: ID,
      FERRY_LOG_LEVEL: 'info',
      FERRY_METRICS_PORT: `127.0.0.1:${ferryPort}`,
      FERRY_SDK_METRICS_PORT: `127.0.0.1:${sdkPort}`,
    };
    temporal = await resolveTemporal({ env: workerEnv, stateDir, port, headless: true });
    worker = await startWorkerProcess(ROOT, workerEnv, (chunk) => (workerLog = (workerLog + chunk).slice(-(2 << 20))));
    session = await openSession(workerEnv);

    // The source: one PVC with 16 MiB of random data, written by a pod that then goes away.
    kubectl('ferry-src', ['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
        { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '64Mi' } } } },
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'seed', namespace: NS },
          spec: {
            restartPolicy: 'Never',
            terminationGracePeriodSeconds: 0,
            containers: [{ name: 'seed', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['bash', '-c', 'head -c 16M /dev/urandom > /d/big.bin && for i in $(seq 1 20); do echo $i > /d/f$i.txt; done && sync'], volumeMounts: [{ name: 'd', mountPath: '/d' }] }],
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

  test('the byte counter reaches the bytes rsync reported; rate and active client pod are seen while it syncs', async () => {
    const plan = parsePlan({
      source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
      destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
      namespaces: [NS],
      stagePasses: 1,
      stageIntervalSeconds: 0,
      quiesce: false,
      endpoint: { type: 'LoadBalancer' },
      rsync: { bandwidthLimitKiBps: 2048 },
      timeouts: { endpointReadySeconds: 120, serverReadySeconds: 300 },
    });
    const series = { migration: ID, namespace: NS };
    await startMigration(session, plan, ID, TUNING);
    let maxRate = 0;
    let maxActive = 0;
    const bytesSeen: number[] = [];
    let scrapes = 0;
    const t0 = Date.now();
    let status = 'RUNNING';
    while (status === 'RUNNING' && Date.now() - t0 < 600_000) {
      const r = await scrape(metricsUrl).catch(() => undefined);
      if (r?.status === 200) {
        scrapes++;
        maxRate = Math.max(maxRate, sumOf(r.samples, 'ferry_transfer_rate_bytes_per_second', { ...series, pvc: 'data' }));
        maxActive = Math.max(maxActive, sumOf(r.samples, 'ferry_active_client_pods', series));
        const b = sumOf(r.samples, 'ferry_transfer_bytes_total', series);
        if (bytesSeen.at(-1) !== b) bytesSeen.push(b);
      }
      status = (await getMigration(session, ID, { live: false }).catch(() => undefined))?.workflowStatus ?? status;
      await sleep(500);
    }
    const final = await getMigration(session, ID, { live: false });
    expect({ status: final.workflowStatus, failure: final.failure }).toEqual({ status: 'COMPLETED', failure: undefined });
    const pvcs = final.state!.namespaces.flatMap((n) => n.result?.pvcs ?? []);
    const reported = migrationTotals(final.state!.namespaces).bytesSent;
    const after = (await scrape(metricsUrl)).samples;
    const counted = sumOf(after, 'ferry_transfer_bytes_total', series);
    process.stdout.write(`[metrics] ${scrapes} scrapes; byte counter seen ${bytesSeen.join(' → ')}; rsync reported ${reported} bytes; max rate ${maxRate} B/s; max active client pods ${maxActive}\n`);
    expect(reported).toBeGreaterThan(16 * MiB);
    expect(counted).toBe(reported);
    expect(maxRate).toBeGreaterThan(0);
    expect(maxActive).toBeGreaterThanOrEqual(1);
    // One stage sync and the final sync of the one PVC, both counted as they happened.
    const syncs = pvcs.reduce((a, p) => a + p.stageSyncsDone + (p.status === 'done' ? 1 : 0), 0);
    expect(sumOf(after, 'ferry_syncs_total', { ...series, result: 'success' })).toBe(syncs);
    expect(sumOf(after, 'ferry_syncs_total', { ...series, sync: 'final', result: 'success' })).toBe(1);
    expect(sumOf(after, 'ferry_stage_passes_total', series)).toBe(pvcs[0]!.stageSyncsDone);
    expect(sumOf(after, 'ferry_active_client_pods', series)).toBe(0);
    // The Temporal SDK's own metrics, from the same worker.
    const sdk = await scrape(sdkMetricsUrl);
    expect(sdk.samples.some((s) => s.name.startsWith('temporal_'))).toBe(true);
  }, 900_000);
});
