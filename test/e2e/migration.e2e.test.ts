/**
 * End to end on the lab (hack/lab: two real clusters src/dst, registries, LoadBalancer allocator,
 * size-limited volumes): a real Temporal dev server (the temporal CLI, state in a temp dir), a real
 * `ferry worker` child process (real activities over the two clusters), migrations started and driven
 * through the client API (src/cli/operations.ts), and the result checked INSIDE the clusters:
 *
 *   (b) LoadBalancer + preserve-ownership: the realistic sample namespace (hack/e2e/sample-app.sh,
 *       profile full: /usr/share of the transfer image, 256 MiB random file, sparse file, hard links,
 *       symlinks, mixed modes and owners; StatefulSet with 2 volumeClaimTemplates, Deployment, two
 *       CronJobs one suspended, a Job) + its internal image (registry mode)
 *   (a) NodePort + restricted: a smaller sample, owned by the app's uid, renamed destination namespace
 *   each: destination PVCs Bound, every tree identical (hack/e2e/manifest.sh; owners compared in
 *   preserve-ownership mode), images with identical digests, source workloads exactly as before
 *   (replicas, suspended CronJob still suspended, the other not), no Ferry object left in either
 *   cluster; the figures of the summary (phase times, volume, throughput, downtime) are printed.
 *
 * Failure drills (small data, rsync bandwidth-limited so that the transfer lasts long enough):
 *   (i)   destination volume full (filled by a pod as the stage sync runs) → FerryNoSpace, awaiting
 *         the operator's decision; abort through the decide update → rolled back, source intact
 *   (iii) the rsync client pod deleted mid-transfer → the activity retries and completes (resumed)
 *   (iv)  the worker SIGKILLed mid-transfer and restarted → completes
 *   (v)   the network between the clusters cut for 30 s (iptables in the src node's netns) → completes
 * (ii, a client certificate of another CA, is covered by test/integration/dataplane.test.ts.)
 *
 * Skipped with a message unless the lab with nodes is up; FERRY_REQUIRE_LAB=1 makes that a failure.
 * FERRY_E2E_ONLY=main|drills runs a part. Runtime on a 2-core machine: see the report printed at the end.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { decide, getMigration, openSession, startMigration, type TemporalSession } from '../../src/cli/operations';
import { parsePlan } from '../../src/plan/load';
import { resolveTemporal, type TemporalHandle } from '../../src/temporal/devserver';
import type { MigrationState, WorkflowTuning } from '../../src/core/state';
import {
  compareManifests,
  comparePVCs,
  DST_REGISTRY,
  ferryObjects,
  figures,
  figuresTable,
  freePort,
  imageDigest,
  kubectl,
  LAB_KUBECONFIG,
  labGate,
  manifest,
  pvcPhases,
  readyReplicas,
  seedSample,
  SRC_REGISTRY,
  startWorkerProcess,
  waitUntil,
  workloadState,
} from '../../hack/e2e/lib';

const ROOT = join(__dirname, '..', '..');

const labDescribe = labGate('end-to-end tests', ['skopeo', 'kubectl']);
const ONLY = process.env.FERRY_E2E_ONLY;
const mainTest = ONLY === 'drills' ? test.skip : test;
const drillTest = ONLY === 'main' ? test.skip : test;

/** Short timings: a dead worker's transfer is picked up after 20 s; retries wait 1/5 of the default. */
const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const RUN = Math.random().toString(36).slice(2, 7);
const TASK_QUEUE = `ferry-e2e-${RUN}`;
const report: string[] = [];
const t0 = Date.now();
const created: { src: string[]; dst: string[] } = { src: [], dst: [] };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stdout.write(`[e2e +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

labDescribe('Ferry end to end on the lab', () => {
  let temporal: TemporalHandle;
  let session: TemporalSession;
  let stateDir: string;
  let port: number;
  let worker: ChildProcess | undefined;
  let workerLog = '';
  let workerEnv: NodeJS.ProcessEnv;

  async function startWorker(): Promise<void> {
    worker = await startWorkerProcess(ROOT, workerEnv, (chunk) => {
      workerLog += chunk;
      if (workerLog.length > 4 << 20) workerLog = workerLog.slice(-(2 << 20));
    });
  }

  async function stopWorker(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const w = worker;
    worker = undefined;
    if (!w || w.exitCode !== null || w.signalCode !== null) return;
    const exited = new Promise((r) => w.once('exit', r));
    w.kill(signal);
    await Promise.race([exited, sleep(40_000)]);
    if (w.exitCode === null && w.signalCode === null) {
      w.kill('SIGKILL');
      await exited;
    }
  }

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'ferry-e2e-'));
    port = await freePort();
    const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
    workerEnv = { ...env, KUBECONFIG: LAB_KUBECONFIG, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TASK_QUEUE: TASK_QUEUE, FERRY_LOG_LEVEL: 'info' };
    temporal = await resolveTemporal({ env: workerEnv, stateDir, port, headless: true });
    await startWorker();
    session = await openSession(workerEnv);
  }, 300_000);

  afterAll(async () => {
    await stopWorker().catch(() => undefined);
    await session?.close().catch(() => undefined);
    await temporal?.stop().catch(() => undefined);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    if (process.env.FERRY_E2E_KEEP !== '1') {
      for (const ns of created.src) spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', 'ferry-src', 'delete', 'ns', ns, '--wait=false'], { timeout: 30000 });
      for (const ns of created.dst) spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', 'ferry-dst', 'delete', 'ns', ns, '--wait=false'], { timeout: 30000 });
    }
    process.stdout.write(`\n==================== Ferry e2e report (${((Date.now() - t0) / 1000).toFixed(0)} s) ====================\n${report.join('\n\n')}\n`);
  }, 120_000);

  /** Seeds a sample namespace and returns its pre-migration snapshot. */
  async function sample(ns: string, dstNs: string, o: Parameters<typeof seedSample>[1]) {
    created.src.push(ns);
    created.dst.push(dstNs);
    const started = Date.now();
    await seedSample(ns, { ...o, dstNamespace: dstNs });
    log(`seeded ${ns} (${o?.profile ?? 'full'}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return { workloads: workloadState(ns), ready: readyReplicas(ns) };
  }

  function plan(ns: string, dstNs: string, extra: Record<string, unknown>) {
    return parsePlan({
      source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
      destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
      namespaces: [ns === dstNs ? ns : `${ns}:${dstNs}`],
      stagePasses: 1,
      stageIntervalSeconds: 0,
      quiesce: true,
      timeouts: { endpointReadySeconds: 120, serverReadySeconds: 300 },
      ...extra,
    });
  }

  /** The final state of a migration (its result, or its failure's details). */
  async function outcome(id: string): Promise<MigrationState> {
    try {
      return (await session.client.workflow.getHandle(id).result()) as MigrationState;
    } catch (e) {
      if (e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure && e.cause.details?.[0]) return e.cause.details[0] as MigrationState;
      throw e;
    }
  }

  /** Waits for the first rsync client pod of a namespace to run for `seconds`. */
  async function clientPodRunning(ns: string, seconds: number): Promise<string> {
    const name = await waitUntil(() => {
      const pods = JSON.parse(kubectl('ferry-src', ['-n', ns, 'get', 'pods', '-l', 'app.kubernetes.io/managed-by=ferry,ferry.dev/role=client', '-o', 'json'])).items as any[];
      const p = pods.find((x) => x.status?.phase === 'Running');
      return p?.metadata.name as string | undefined;
    }, `a running client pod in ${ns}`, 300_000, 500);
    await sleep(seconds * 1000);
    return name;
  }

  /** The checks every successful case ends with. */
  async function verifySuccess(label: string, s: MigrationState, ns: string, dstNs: string, before: { workloads: Record<string, unknown>; ready: Record<string, number> }, o: { owners: boolean; image?: boolean }) {
    expect({ status: s.status, error: s.error }).toEqual({ status: 'succeeded', error: undefined });
    const srcPVCs = pvcPhases('ferry-src', ns);
    const dstPVCs = await waitUntil(() => {
      const p = pvcPhases('ferry-dst', dstNs);
      return Object.keys(p).length === Object.keys(srcPVCs).length && Object.values(p).every((x) => x === 'Bound') ? p : undefined;
    }, `the PVCs of ${dstNs} Bound`, 60_000);
    expect(Object.keys(dstPVCs).sort()).toEqual(Object.keys(srcPVCs).sort());
    const started = Date.now();
    const cmp = await comparePVCs(ns, dstNs, Object.keys(srcPVCs), { owners: o.owners });
    const lines: string[] = [];
    for (const [pvc, c] of Object.entries(cmp)) {
      const differences = c.differences;
      lines.push(`  ${pvc}: ${c.entries} entries, ${c.files} files, ${(c.bytes / 1048576).toFixed(1)} MiB identical${o.owners ? ' (owners too)' : ' (owners not compared)'}`);
      expect({ pvc, differences: differences.slice(0, 20) }).toEqual({ pvc, differences: [] });
      expect(c.entries).toBeGreaterThan(5);
    }
    log(`${label}: manifests compared in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    if (o.image) {
      const [a, b] = await Promise.all([imageDigest(SRC_REGISTRY, `${ns}/workload:1`), imageDigest(DST_REGISTRY, `${dstNs}/workload:1`)]);
      expect(a).toMatch(/^sha256:/);
      expect(b).toBe(a);
      lines.push(`  image ${ns}/workload:1 → ${dstNs}/workload:1, digest ${a}`);
    }
    expect(workloadState(ns)).toEqual(before.workloads);
    expect(JSON.stringify(before.workloads)).toMatch(/"CronJob\/report":\{"suspend":true\}/);
    expect(JSON.stringify(before.workloads)).toMatch(/"CronJob\/compact":\{"suspend":false\}/);
    await waitUntil(() => JSON.stringify(readyReplicas(ns)) === JSON.stringify(before.ready), `the workloads of ${ns} running again`, 180_000);
    expect(ferryObjects([ns, dstNs])).toEqual([]);
    report.push(`${figuresTable(label, s)}\n${lines.join('\n')}`);
  }

  mainTest('(b) LoadBalancer + preserve-ownership: realistic tree, StatefulSet, CronJobs, images', async () => {
    const ns = `e2e-${RUN}-lb`;
    const before = await sample(ns, ns, { profile: 'full', owners: 'mixed' });
    const p = plan(ns, ns, {
      endpoint: { type: 'LoadBalancer' },
      security: { mode: 'preserve-ownership' },
      concurrency: 3,
      images: { enabled: true, mode: 'registry', sourceRegistry: SRC_REGISTRY, destinationRegistry: DST_REGISTRY, repositories: [`${ns}/workload`] },
    });
    const id = `e2e-${RUN}-lb`;
    await startMigration(session, p, id, TUNING);
    const s = await outcome(id);
    log(`(b) ${s.status} in ${figures(s).totalSeconds} s`);
    expect(s.namespaces[0]!.images.status).toBe('succeeded');
    await verifySuccess('(b) LoadBalancer + preserve-ownership', s, ns, ns, before, { owners: true, image: true });
  }, 1_200_000);

  mainTest('(a) NodePort + restricted, renamed destination namespace', async () => {
    const ns = `e2e-${RUN}-np`;
    const dstNs = `e2e-${RUN}-np-moved`;
    const before = await sample(ns, dstNs, { profile: 'small', owners: 'app', bigMiB: 48, sparse: '64M' });
    const p = plan(ns, dstNs, { endpoint: { type: 'NodePort' }, security: { mode: 'restricted' } });
    const id = `e2e-${RUN}-np`;
    await startMigration(session, p, id, TUNING);
    const s = await outcome(id);
    log(`(a) ${s.status} in ${figures(s).totalSeconds} s`);
    await verifySuccess('(a) NodePort + restricted', s, ns, dstNs, before, { owners: false });
  }, 900_000);

  /** A drill's sample: small, one PVC migrated ("files"), rsync limited to `kibps`. */
  async function drillSetup(name: string, kibps: number, extra: Record<string, unknown> = {}) {
    const ns = `e2e-${RUN}-${name}`;
    const before = await sample(ns, ns, { profile: 'small', owners: 'mixed', bigMiB: 40, sparse: '16M', filesSize: '96Mi' });
    const p = plan(ns, ns, {
      endpoint: { type: 'LoadBalancer' },
      security: { mode: 'preserve-ownership' },
      pvcs: { names: ['files'] },
      rsync: { bandwidthLimitKiBps: kibps },
      ...extra,
    });
    return { ns, before, plan: p, id: `e2e-${RUN}-${name}` };
  }

  /** Source and destination manifests of the drill's PVC, compared. */
  async function drillDataIdentical(ns: string) {
    const c = compareManifests(await manifest('ferry-src', ns, 'files'), await manifest('ferry-dst', ns, 'files'));
    expect(c.differences.slice(0, 20)).toEqual([]);
    return c;
  }

  function syncFigures(s: MigrationState) {
    const pvc = s.namespaces[0]!.result!.pvcs.find((x) => x.name === 'files')!;
    return { pvc, last: pvc.lastSync! };
  }

  drillTest('(i) destination volume full: FerryNoSpace, awaiting decision, abort → rolled back, source intact', async () => {
    const d = await drillSetup('nospace', 2048);
    const srcBefore = await manifest('ferry-src', d.ns, 'files');
    await startMigration(session, d.plan, d.id, TUNING);
    // As the stage sync runs, a pod fills the destination volume.
    await clientPodRunning(d.ns, 1);
    kubectl('ferry-dst', ['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'filler', namespace: d.ns },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 0,
        securityContext: { runAsUser: 0 },
        containers: [{ name: 'f', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['bash', '-c', 'i=0; while fallocate -l 1M /d/.filler-$i 2>/dev/null; do i=$((i+1)); done; sync; echo filled $i MiB; df -h /d'], volumeMounts: [{ name: 'd', mountPath: '/d' }] }],
        volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'files' } }],
      },
    }));
    let view: Awaited<ReturnType<typeof getMigration>> | undefined;
    try {
      view = await waitUntil(async () => {
        const v = await getMigration(session, d.id, { live: false });
        return v.state?.phase === 'awaiting-decision' || v.workflowStatus !== 'RUNNING' ? v : undefined;
      }, 'the migration to await a decision', 600_000, 2000);
    } finally {
      // Whatever was observed, the operator aborts: the namespace rolls back.
      const res = await decide(session, d.id, { pvc: 'files', action: 'abort' }).catch((e: Error) => e);
      log(`(i) abort: ${JSON.stringify(res instanceof Error ? res.message : res)}`);
    }
    expect(view.state?.phase).toBe('awaiting-decision');
    const pvc = view.namespaces[d.ns]!.pvcs.find((p) => p.name === 'files')!;
    const err = pvc.errors.at(-1)!;
    log(`(i) awaiting decision; error ${err.type}: ${err.message}`);
    expect(pvc.status).toBe('failed');
    expect(pvc.errors).toHaveLength(1); // non-retryable: one failed sync, no retry by the activity
    expect(err.message).toMatch(/ran out of space/);
    expect(err.type).toBe('FerryNoSpace');
    expect(view.state!.namespaces[0]!.awaitingDecision).toEqual(['files']);
    const s = await outcome(d.id);
    // the namespace rolled back (abort of its PVC); the migration as a whole ends failed
    expect(s.status).toBe('failed');
    expect(s.namespaces[0]!.status).toBe('rolled-back');
    expect(s.namespaces[0]!.result?.rollback?.steps.every((x) => x.ok)).toBe(true);
    expect(workloadState(d.ns)).toEqual(d.before.workloads);
    await waitUntil(() => JSON.stringify(readyReplicas(d.ns)) === JSON.stringify(d.before.ready), 'the source workloads running', 180_000);
    expect(ferryObjects([d.ns])).toEqual([]);
    const c = compareManifests(srcBefore, await manifest('ferry-src', d.ns, 'files'));
    expect(c.differences).toEqual([]);
    report.push(`(i) destination full: ${err.type} "${err.message.slice(0, 300)}"; phase awaiting-decision; abort → namespace ${s.namespaces[0]!.status}, migration ${s.status}; rollback steps ${JSON.stringify(s.namespaces[0]!.result?.rollback?.steps)}; source workloads as before, source data unchanged (${c.entries} entries), 0 Ferry objects`);
  }, 900_000);

  drillTest('(iii) the client pod deleted mid-rsync: the retry resumes and completes', async () => {
    const d = await drillSetup('podkill', 2048, { stagePasses: 0 });
    await startMigration(session, d.plan, d.id, TUNING);
    const pod = await clientPodRunning(d.ns, 0);
    // once at least 4 MiB went over (the heartbeat's live figures), the pod is deleted: at 2 MiB/s
    // that is inside the 40 MiB random file
    const bytesBefore = await waitUntil(async () => {
      const b = Object.values((await getMigration(session, d.id)).live)[0]?.progress?.bytes ?? 0;
      return b >= 4 << 20 ? b : undefined;
    }, 'the transfer to send 4 MiB', 120_000, 500);
    kubectl('ferry-src', ['-n', d.ns, 'delete', 'pod', pod, '--grace-period=0', '--force']);
    log(`(iii) deleted client pod ${pod} at ${bytesBefore ?? '?'} bytes`);
    let maxAttempt = 1;
    const poll = setInterval(() => {
      getMigration(session, d.id).then((v) => Object.values(v.live).forEach((l) => (maxAttempt = Math.max(maxAttempt, l.attempt))), () => undefined);
    }, 2000);
    let s: MigrationState;
    try {
      s = await outcome(d.id);
    } finally {
      clearInterval(poll);
    }
    const { pvc, last } = syncFigures(s);
    log(`(iii) ${s.status}; attempt ${maxAttempt}; retry sent ${last.bytesSent} of ${last.totalFileSize}`);
    expect(s.status).toBe('succeeded');
    expect(maxAttempt).toBeGreaterThan(1);
    expect(last.bytesSent).toBeLessThan(last.totalFileSize!);
    const c = await drillDataIdentical(d.ns);
    expect(workloadState(d.ns)).toEqual(d.before.workloads);
    expect(ferryObjects([d.ns])).toEqual([]);
    report.push(`(iii) client pod deleted after ${bytesBefore ?? '?'} bytes: transfer attempt ${maxAttempt} completed; the retried sync sent ${(last.bytesSent / 1048576).toFixed(1)} MiB of ${(last.totalFileSize! / 1048576).toFixed(1)} MiB (${pvc.bytesSent} bytes in all); data identical (${c.entries} entries)`);
  }, 900_000);

  drillTest('(iv) the worker SIGKILLed mid-transfer and restarted: completes, data identical', async () => {
    const d = await drillSetup('workerkill', 4096, { stagePasses: 0 });
    await startMigration(session, d.plan, d.id, TUNING);
    await clientPodRunning(d.ns, 4);
    const killedAt = Date.now();
    await stopWorker('SIGKILL');
    log('(iv) worker SIGKILLed');
    await sleep(5000);
    await startWorker();
    log('(iv) worker restarted');
    const s = await outcome(d.id);
    const { last } = syncFigures(s);
    const took = (Date.now() - killedAt) / 1000;
    log(`(iv) ${s.status} ${took.toFixed(0)} s after the kill`);
    expect(s.status).toBe('succeeded');
    const c = await drillDataIdentical(d.ns);
    expect(workloadState(d.ns)).toEqual(d.before.workloads);
    expect(ferryObjects([d.ns])).toEqual([]);
    report.push(`(iv) worker SIGKILLed mid-transfer, restarted 5 s later: migration ${s.status} ${took.toFixed(0)} s after the kill (heartbeat timeout 20 s); final sync ${last.durationSeconds.toFixed(1)} s, ${(last.bytesSent / 1048576).toFixed(1)} MiB; data identical (${c.entries} entries)`);
  }, 900_000);

  drillTest('(v) the network between the clusters cut for 30 s: completes, data identical', async () => {
    const d = await drillSetup('netcut', 2048, { stagePasses: 0 });
    await startMigration(session, d.plan, d.id, TUNING);
    await clientPodRunning(d.ns, 3);
    // Everything the src node forwards to the dst node or the dst LoadBalancer range is dropped.
    const rules = [
      ['FORWARD', '-d', '10.250.0.12', '-j', 'DROP'],
      ['FORWARD', '-m', 'iprange', '--dst-range', '10.250.0.150-10.250.0.199', '-j', 'DROP'],
    ];
    const ipt = (op: string, r: string[]) => spawnSync('ip', ['netns', 'exec', 'ferry-lab-src', 'iptables', op, ...r], { encoding: 'utf8' });
    const cutAt = Date.now();
    try {
      for (const r of rules) {
        const res = ipt('-I', r);
        if (res.status !== 0) throw new Error(`iptables -I ${r.join(' ')}: ${res.stderr}`);
      }
      log('(v) network cut');
      await sleep(30_000);
    } finally {
      for (const r of rules) ipt('-D', r);
      log('(v) network restored');
    }
    const s = await outcome(d.id);
    const { pvc, last } = syncFigures(s);
    const took = (Date.now() - cutAt) / 1000;
    expect(s.status).toBe('succeeded');
    const c = await drillDataIdentical(d.ns);
    expect(workloadState(d.ns)).toEqual(d.before.workloads);
    expect(ferryObjects([d.ns])).toEqual([]);
    report.push(`(v) network cut 30 s mid-transfer: migration ${s.status} ${took.toFixed(0)} s after the cut; PVC errors ${pvc.errors.length}, final sync ${last.durationSeconds.toFixed(1)} s; data identical (${c.entries} entries)`);
  }, 900_000);

});
