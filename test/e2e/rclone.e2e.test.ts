/**
 * Lab drill (issue 8, item 6): `transfer: rclone` must carry files rewritten in place between the
 * stage pass and the final sync. A database rewrites blocks of its files in place: same size, and a
 * modification time that may fall in the same second as the stage pass or be put back. rclone's
 * earlier WebDAV destination kept no times and no hashes, so the final sync compared sizes only and
 * reported success with the old content at the destination.
 *
 * The drill: a small sample namespace (hack/e2e/sample-app.sh, owners = the app's uid, restricted
 * mode: rclone cannot keep owners), its PVC "files" migrated with transfer: rclone over the null
 * transport (rclone's own SSH) through a LoadBalancer, one stage pass, manual cutover. Between the
 * stage pass and the cutover a pod rewrites two files in place without changing their sizes, one of
 * them with its modification time put back. After the cutover every regular file's SHA-256 and every
 * symlink target at the destination equal the source's, and the summary counts the bytes sent.
 *
 * Namespaces and the migration id start with `r-` (this drill's own); small data only (~1 minute).
 * Skipped with a message unless the lab is up; FERRY_REQUIRE_LAB=1 makes that a failure.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { cutover, getMigration, openSession, startMigration, type TemporalSession } from '../../src/cli/operations';
import { parsePlan } from '../../src/plan/load';
import { resolveTemporal, type TemporalHandle } from '../../src/temporal/devserver';
import type { MigrationState, WorkflowTuning } from '../../src/core/state';
import { ferryObjects, freePort, kubectl, LAB_KUBECONFIG, labGate, manifest, seedSample, startWorkerProcess, waitUntil } from '../../hack/e2e/lib';

const ROOT = join(__dirname, '..', '..');

const labDescribe = labGate('rclone e2e drill');

const TUNING: WorkflowTuning = { heartbeatTimeoutSeconds: 20, retryIntervalScale: 0.2 };
const RUN = Math.random().toString(36).slice(2, 7);
const NS = `r-${RUN}-rclone`;
const MIGRATION_ID = `r-${RUN}-rclone`;
const TASK_QUEUE = `r-ferry-e2e-${RUN}`;
const t0 = Date.now();
const log = (s: string) => process.stdout.write(`[r-e2e +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** path → "sha256 size" of every regular file, and path → target of every symlink (hack/e2e/manifest.sh lines). */
function contents(text: string): { files: Map<string, string>; links: Map<string, string> } {
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.split('|');
    const [type, , , , size, target, , , sha] = f.slice(-10) as string[];
    const path = f.slice(0, f.length - 10).join('|').replace(/^\.\//, '');
    if (type === 'f') files.set(path, `${sha} ${size}`);
    else if (type === 'l') links.set(path, target!);
  }
  return { files, links };
}

/** Runs a root pod with the source PVC "files" mounted at /d, waits for it to succeed, deletes it. */
async function onSourcePVC(name: string, script: string): Promise<string> {
  kubectl('ferry-src', ['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 0,
      securityContext: { runAsUser: 0 },
      containers: [{ name: 'edit', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['bash', '-c', script], volumeMounts: [{ name: 'd', mountPath: '/d' }] }],
      volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'files' } }],
    },
  }));
  await waitUntil(() => {
    const phase = kubectl('ferry-src', ['-n', NS, 'get', 'pod', name, '-o', 'jsonpath={.status.phase}']);
    if (phase === 'Failed') throw new Error(`pod ${name} failed: ${kubectl('ferry-src', ['-n', NS, 'logs', name])}`);
    return phase === 'Succeeded';
  }, `pod ${name} to finish`, 180_000, 1000);
  const out = kubectl('ferry-src', ['-n', NS, 'logs', name]);
  // Gone before the cutover: no pod other than the workloads and Ferry's mounts the PVC then.
  kubectl('ferry-src', ['-n', NS, 'delete', 'pod', name, '--wait=true']);
  return out;
}

labDescribe('rclone on the lab: files rewritten in place between the stage pass and the final sync', () => {
  let temporal: TemporalHandle;
  let session: TemporalSession;
  let stateDir: string;
  let worker: ChildProcess | undefined;

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'ferry-r-e2e-'));
    const port = await freePort();
    const { TEMPORAL_ADDRESS: _ignored, ...env } = process.env;
    const workerEnv = { ...env, KUBECONFIG: LAB_KUBECONFIG, FERRY_STATE_DIR: stateDir, FERRY_TEMPORAL_PORT: String(port), FERRY_TASK_QUEUE: TASK_QUEUE, FERRY_LOG_LEVEL: 'info' };
    temporal = await resolveTemporal({ env: workerEnv, stateDir, port, headless: true });
    worker = await startWorkerProcess(ROOT, workerEnv);
    session = await openSession(workerEnv);
  }, 300_000);

  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      const exited = new Promise((r) => worker!.once('exit', r));
      worker.kill('SIGTERM');
      await Promise.race([exited, sleep(40_000)]);
      if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    }
    await session?.close().catch(() => undefined);
    await temporal?.stop().catch(() => undefined);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    if (process.env.FERRY_E2E_KEEP !== '1') {
      for (const ctx of ['ferry-src', 'ferry-dst']) spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', ctx, 'delete', 'ns', NS, '--wait=false'], { timeout: 30000 });
    }
  }, 120_000);

  test('stage pass, in-place rewrites (one with its time put back), cutover: every file identical', async () => {
    await seedSample(NS, { profile: 'small', owners: 'app', bigMiB: 8, sparse: '8M', filesSize: '64Mi' });
    log(`seeded ${NS}`);
    const plan = parsePlan({
      source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
      destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
      namespaces: [NS],
      pvcs: { names: ['files'] },
      transfer: 'rclone',
      transport: 'null',
      endpoint: { type: 'LoadBalancer' },
      security: { mode: 'restricted' },
      stagePasses: 1,
      // Manual cutover keeps passing every interval: one pass, then a long pause the cutover ends.
      stageIntervalSeconds: 3600,
      cutover: 'manual',
      quiesce: true,
      timeouts: { endpointReadySeconds: 120, serverReadySeconds: 300 },
    });
    await startMigration(session, plan, MIGRATION_ID, TUNING);
    await waitUntil(async () => {
      const v = await getMigration(session, MIGRATION_ID, { live: false });
      if (v.workflowStatus !== 'RUNNING') throw new Error(`the migration ended before the cutover: ${v.failure ?? v.workflowStatus}`);
      return v.namespaces[NS]?.phase === 'ready-for-cutover';
    }, 'the stage pass to finish', 600_000, 2000);
    log('stage pass done; rewriting files in place');

    // data/big.bin: 4 KiB rewritten at 1 MiB, size and modification time as before (worst case).
    // data/b.txt: "beta" → "BETA", same size, new time (possibly the stage pass's second).
    const edit = await onSourcePVC('r-edit-in-place', [
      'set -euo pipefail',
      'cd /d/data',
      'before=$(stat -c "%s %Y" big.bin); touch -r big.bin /tmp/ref',
      'head -c 4096 /dev/urandom | dd of=big.bin bs=4096 seek=256 conv=notrunc status=none',
      'touch -r /tmp/ref big.bin',
      'printf "BETA\\n" | dd of=b.txt conv=notrunc status=none',
      'after=$(stat -c "%s %Y" big.bin)',
      '[ "$before" = "$after" ] || { echo "size or time changed: $before / $after"; exit 1; }',
      'echo "big.bin $after $(sha256sum big.bin | cut -c1-64)"',
    ].join('\n'));
    log(`edited: ${edit.trim()}`);
    const editedSha = /big\.bin \d+ \d+ ([0-9a-f]{64})/.exec(edit)?.[1];
    expect(editedSha).toMatch(/^[0-9a-f]{64}$/);

    await cutover(session, MIGRATION_ID);
    let s: MigrationState;
    try {
      s = (await session.client.workflow.getHandle(MIGRATION_ID).result()) as MigrationState;
    } catch (e) {
      if (e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure && e.cause.details?.[0]) s = e.cause.details[0] as MigrationState;
      else throw e;
    }
    log(`migration ${s.status}`);
    expect({ status: s.status, error: s.error }).toEqual({ status: 'succeeded', error: undefined });

    const [src, dst] = await Promise.all([manifest('ferry-src', NS, 'files', { owners: false }), manifest('ferry-dst', NS, 'files', { owners: false })]);
    const a = contents(src);
    const b = contents(dst);
    expect(a.files.get('data/big.bin')).toBe(`${editedSha} ${8 * 1048576}`);
    expect(b.files.get('data/big.bin')).toBe(a.files.get('data/big.bin'));
    expect(b.files.get('data/b.txt')).toBe(a.files.get('data/b.txt'));
    expect(a.files.size).toBeGreaterThan(5);
    expect([...b.files].filter(([p, v]) => a.files.get(p) !== v)).toEqual([]);
    expect([...a.files.keys()].filter((p) => !b.files.has(p))).toEqual([]);
    expect(b.links).toEqual(a.links);

    // The summary counts what rclone sent (it used to say 0 B).
    const pvc = s.namespaces[0]!.result!.pvcs.find((x) => x.name === 'files')!;
    expect(pvc.bytesSent).toBeGreaterThanOrEqual(8 * 1048576);
    log(`files: ${a.files.size} files identical by SHA-256; ${pvc.bytesSent} bytes sent in ${pvc.syncs} syncs`);
    expect(ferryObjects([NS])).toEqual([]);
  }, 900_000);
});
