/**
 * Safety drills on the lab (issue 8): real Temporal dev server, a real `ferry worker` child process,
 * migrations of small namespaces (prefix q-) between the lab's two Kubernetes 1.32 clusters, checked
 * inside the clusters.
 *
 *   (r) StatefulSet with persistentVolumeClaimRetentionPolicy whenScaled: Delete (GA in 1.32: scaling
 *       to 0 deletes the claims): migrated with quiesce, the source PVC survives (same uid, identical
 *       data), the policy is back to Delete, the destination data is identical.
 *   (u) a bare pod writing to a PVC: with the default plan preflight refuses, naming the pod, and
 *       nothing is touched; with unmanagedPods: delete the migration completes and the pod is gone.
 *   (p) a namespace enforcing the "restricted" Pod Security Standard: preflight refuses
 *       preserve-ownership with the label fix; the API server's own rejection of a root pod there
 *       is classified FerryConfig (not FerryAuth).
 *
 * Skipped with a message unless the lab with nodes is up; FERRY_REQUIRE_LAB=1 makes that a failure.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { toApplicationFailure } from '../../src/activities';
import { FailureType } from '../../src/core/types';
import { openSession, startMigration, type TemporalSession } from '../../src/cli/operations';
import { KubeClient } from '../../src/k8s/client';
import { parsePlan } from '../../src/plan/load';
import { resolveTemporal, type TemporalHandle } from '../../src/temporal/devserver';
import type { MigrationState, WorkflowTuning } from '../../src/core/state';
import { compareManifests, ferryObjects, kubectl, LAB_KUBECONFIG, manifest, waitUntil, freePort, labGate, startWorkerProcess } from '../../hack/e2e/lib';

const ROOT = join(__dirname, '..', '..');

const labDescribe = labGate('safety drills');

const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const RUN = Math.random().toString(36).slice(2, 7);
const BUSYBOX = 'ferry.local/lab/busybox:1';
const t0 = Date.now();
const created: string[] = [];
const report: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stdout.write(`[safety +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

const json = (ctx: 'ferry-src' | 'ferry-dst', args: string[]) => JSON.parse(kubectl(ctx, [...args, '-o', 'json']));
const exists = (ctx: 'ferry-src' | 'ferry-dst', args: string[]) => spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', ctx, 'get', ...args], { encoding: 'utf8' }).status === 0;

labDescribe('safety drills on the lab', () => {
  let temporal: TemporalHandle;
  let session: TemporalSession;
  let stateDir: string;
  let worker: ChildProcess | undefined;
  let workerLog = '';

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'ferry-q-safety-'));
    const port = await freePort();
    const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
    const workerEnv = { ...env, KUBECONFIG: LAB_KUBECONFIG, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TASK_QUEUE: `q-safety-${RUN}`, FERRY_LOG_LEVEL: 'info' };
    temporal = await resolveTemporal({ env: workerEnv, stateDir, port, headless: true });
    worker = await startWorkerProcess(ROOT, workerEnv, (chunk) => {
      workerLog += chunk;
      if (workerLog.length > 4 << 20) workerLog = workerLog.slice(-(2 << 20));
    });
    session = await openSession(workerEnv);
  }, 300_000);

  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      const exited = new Promise((r) => worker!.once('exit', r));
      worker.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    }
    await session?.close().catch(() => undefined);
    await temporal?.stop().catch(() => undefined);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    if (process.env.FERRY_E2E_KEEP !== '1') {
      for (const ns of created) {
        for (const ctx of ['ferry-src', 'ferry-dst']) spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', ctx, 'delete', 'ns', ns, '--wait=false'], { timeout: 30000 });
      }
    }
    process.stdout.write(`\n==================== Ferry safety drills (${((Date.now() - t0) / 1000).toFixed(0)} s) ====================\n${report.join('\n')}\n`);
  }, 120_000);

  function plan(ns: string, extra: Record<string, unknown> = {}) {
    return parsePlan({
      source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
      destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
      namespaces: [ns],
      stagePasses: 1,
      stageIntervalSeconds: 0,
      quiesce: true,
      endpoint: { type: 'LoadBalancer' },
      security: { mode: 'preserve-ownership' },
      timeouts: { endpointReadySeconds: 120, serverReadySeconds: 300 },
      ...extra,
    });
  }

  async function outcome(id: string): Promise<MigrationState> {
    try {
      return (await session.client.workflow.getHandle(id).result()) as MigrationState;
    } catch (e) {
      if (e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure && e.cause.details?.[0]) return e.cause.details[0] as MigrationState;
      throw e;
    }
  }

  function createNamespace(ns: string): void {
    created.push(ns);
    kubectl('ferry-src', ['create', 'namespace', ns]);
  }

  test('(r) StatefulSet whenScaled: Delete: the source PVC survives quiesce, the policy is restored, the copy is identical', async () => {
    const ns = `q-${RUN}-ret`;
    createNamespace(ns);
    const policy = { whenScaled: 'Delete', whenDeleted: 'Retain' };
    kubectl('ferry-src', ['-n', ns, 'apply', '-f', '-'], JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', namespace: ns },
      spec: {
        replicas: 1,
        serviceName: 'db',
        persistentVolumeClaimRetentionPolicy: policy,
        selector: { matchLabels: { app: 'db' } },
        template: {
          metadata: { labels: { app: 'db' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{
              name: 'db',
              image: BUSYBOX,
              imagePullPolicy: 'IfNotPresent',
              command: ['sh', '-c', 'if [ ! -f /d/init.done ]; then mkdir -p /d/tables; i=1; while [ $i -le 8 ]; do dd if=/dev/urandom of=/d/tables/t$i bs=4096 count=$((i*16)) 2>/dev/null; i=$((i+1)); done; echo "$HOSTNAME" > /d/identity; ln -s tables/t1 /d/current; touch /d/init.done; fi; exec sleep 2147483647'],
              volumeMounts: [{ name: 'data', mountPath: '/d' }],
            }],
          },
        },
        volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '32Mi' } } } }],
      },
    }));
    kubectl('ferry-src', ['-n', ns, 'rollout', 'status', 'statefulset/db', '--timeout=180s']);
    await waitUntil(() => kubectl('ferry-src', ['-n', ns, 'exec', 'db-0', '--', 'ls', '/d/init.done']).includes('init.done'), 'db-0 to write its data', 60_000);
    const uidBefore = json('ferry-src', ['-n', ns, 'get', 'pvc', 'data-db-0']).metadata.uid as string;
    const srcBefore = await manifest('ferry-src', ns, 'data-db-0');

    const id = `q-${RUN}-ret`;
    await startMigration(session, plan(ns), id, TUNING);
    const s = await outcome(id);
    log(`(r) ${s.status}${s.error ? `: ${s.error}` : ''}`);
    expect({ status: s.status, error: s.error }).toEqual({ status: 'succeeded', error: undefined });

    // The source PVC is the same object (not deleted and re-created empty by the scale-up) with the same data.
    const pvcAfter = json('ferry-src', ['-n', ns, 'get', 'pvc', 'data-db-0']);
    expect(pvcAfter.metadata.uid).toBe(uidBefore);
    const sts = json('ferry-src', ['-n', ns, 'get', 'statefulset', 'db']);
    expect(sts.spec.persistentVolumeClaimRetentionPolicy).toEqual(policy);
    expect(sts.spec.replicas).toBe(1);
    expect(Object.keys(sts.metadata.annotations ?? {}).filter((k) => k.startsWith('ferry.dev/'))).toEqual([]);
    const record = s.namespaces[0]!.result!.quiesced[0]!;
    expect(record).toMatchObject({ replicas: 1, pvcRetentionPolicy: policy, migrationId: id });
    const srcAfter = await manifest('ferry-src', ns, 'data-db-0');
    expect(compareManifests(srcBefore, srcAfter).differences).toEqual([]);
    const c = compareManifests(srcAfter, await manifest('ferry-dst', ns, 'data-db-0'));
    expect(c.differences.slice(0, 20)).toEqual([]);
    expect(c.files).toBeGreaterThanOrEqual(9);
    kubectl('ferry-src', ['-n', ns, 'rollout', 'status', 'statefulset/db', '--timeout=180s']);
    expect(ferryObjects([ns])).toEqual([]);
    report.push(
      `(r) whenScaled: Delete: migration ${s.status}; source PVC data-db-0 same uid ${uidBefore}, data unchanged; policy restored ${JSON.stringify(sts.spec.persistentVolumeClaimRetentionPolicy)}; ` +
        `destination identical (${c.entries} entries, ${c.files} files, ${c.bytes} bytes, owners compared)`,
    );
  }, 900_000);

  test('(u) a bare pod writing to a PVC: refused by preflight by default; with unmanagedPods: delete migrated and the pod gone', async () => {
    const ns = `q-${RUN}-bare`;
    createNamespace(ns);
    kubectl('ferry-src', ['-n', ns, 'apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'files', namespace: ns }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '32Mi' } } } },
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'writer', namespace: ns },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{
              name: 'w',
              image: BUSYBOX,
              imagePullPolicy: 'IfNotPresent',
              command: ['sh', '-c', 'mkdir -p /d/log; i=1; while [ $i -le 6 ]; do dd if=/dev/urandom of=/d/log/seg$i bs=4096 count=64 2>/dev/null; i=$((i+1)); done; touch /d/ready; exec sleep 2147483647'],
              volumeMounts: [{ name: 'd', mountPath: '/d' }],
            }],
            volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'files' } }],
          },
        },
      ],
    }));
    kubectl('ferry-src', ['-n', ns, 'wait', '--for=condition=Ready', 'pod/writer', '--timeout=180s']);
    await waitUntil(() => kubectl('ferry-src', ['-n', ns, 'exec', 'writer', '--', 'ls', '/d/ready']).includes('ready'), 'the writer to write', 60_000);

    // Default plan: preflight names the pod; nothing is touched.
    const refused = `q-${RUN}-bare-refused`;
    await startMigration(session, plan(ns), refused, TUNING);
    const r = await outcome(refused);
    const problems = r.problems.map((p) => `${p.subject}: ${p.message}`);
    log(`(u) default plan: ${r.status}; ${problems.join(' | ')}`);
    expect(r.status).toBe('failed');
    expect(problems.join('\n')).toMatch(/pod writer \(no controller; mounts files\).*unmanagedPods: delete/);
    expect(exists('ferry-dst', ['namespace', ns])).toBe(false);
    expect(json('ferry-src', ['-n', ns, 'get', 'pod', 'writer']).status.phase).toBe('Running');
    expect(ferryObjects([ns])).toEqual([]);

    // unmanagedPods: delete: the pod is deleted after quiesce, before the final sync.
    const id = `q-${RUN}-bare`;
    await startMigration(session, plan(ns, { unmanagedPods: 'delete' }), id, TUNING);
    const s = await outcome(id);
    log(`(u) unmanagedPods: delete: ${s.status}${s.error ? `: ${s.error}` : ''}`);
    expect({ status: s.status, error: s.error }).toEqual({ status: 'succeeded', error: undefined });
    expect(exists('ferry-src', ['-n', ns, 'pod', 'writer'])).toBe(false);
    const shop = s.namespaces[0]!.result!;
    expect(shop.warnings).toEqual([expect.stringMatching(/deleted pods Ferry cannot quiesce before the final sync \(unmanagedPods: delete\): writer/)]);
    const c = compareManifests(await manifest('ferry-src', ns, 'files'), await manifest('ferry-dst', ns, 'files'));
    expect(c.differences.slice(0, 20)).toEqual([]);
    expect(c.files).toBe(7);
    expect(ferryObjects([ns])).toEqual([]);
    report.push(
      `(u) bare pod writer: default plan → ${r.status} at preflight ("${r.problems[0]?.message.slice(0, 200)}…"), destination namespace not created, pod still running; ` +
        `unmanagedPods: delete → ${s.status}, pod deleted before the final sync, destination identical (${c.entries} entries, ${c.files} files)`,
    );
  }, 900_000);

  test('(p) a namespace enforcing "restricted": preflight refuses preserve-ownership; the real 403 is FerryConfig', async () => {
    const ns = `q-${RUN}-psa`;
    createNamespace(ns);
    kubectl('ferry-src', ['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted']);
    kubectl('ferry-src', ['-n', ns, 'apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'files', namespace: ns }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '16Mi' } } } }));
    const id = `q-${RUN}-psa`;
    await startMigration(session, plan(ns), id, TUNING);
    const r = await outcome(id);
    const psa = r.problems.find((p) => /Pod Security/.test(p.message));
    log(`(p) ${r.status}: ${psa?.message}`);
    expect(r.status).toBe('failed');
    expect(psa?.message).toMatch(new RegExp(`source namespace ${ns} enforces the "restricted" Pod Security Standard.*kubectl label --overwrite namespace ${ns} pod-security.kubernetes.io/enforce=baseline`));
    expect(exists('ferry-dst', ['namespace', ns])).toBe(false);

    // What the API server answers a root pod with preserve-ownership's capabilities there.
    const client = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
    const err = await client
      .createOrAdopt({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'root-probe', namespace: ns },
        spec: {
          securityContext: { runAsUser: 0, runAsNonRoot: false, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [{ name: 'c', image: BUSYBOX, securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['CHOWN', 'DAC_OVERRIDE'] } } }],
        },
      })
      .then(() => undefined, (e: unknown) => e);
    const f = toApplicationFailure(err, 'createServer');
    log(`(p) real rejection → ${f.type}: ${f.message.slice(0, 300)}`);
    expect(f.type).toBe(FailureType.Config);
    expect(f.message).toMatch(/violates PodSecurity "restricted:latest"/);
    report.push(`(p) restricted namespace: preflight → ${r.status} ("${psa?.message.slice(0, 160)}…"); a root pod there → ${f.type} ("${f.message.slice(0, 160)}…")`);
  }, 300_000);
});
