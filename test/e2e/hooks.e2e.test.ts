/**
 * Lab drill (issue 11 §2): job hooks on a real Job controller and real Pod Security admission, through
 * runHook (migration/hooks.ts) as the runHook activity calls it, in a namespace `hk-<run>` of the
 * source cluster that enforces the "restricted" Pod Security Standard:
 * (a) a Job that succeeds: ok, its pod's exit code 0 and output tail;
 * (b) a Job whose command exits 3: failed, naming the Job's failure and the exit code;
 * (c) a Job that outlives its timeout: failed by its deadline (DeadlineExceeded);
 * (d) a Job whose pod Pod Security refuses: failed with admission's message, long before its timeout;
 * (e) a second run of the same hook (the next stage pass) replaces the Job of the first;
 * and after each, no Job and no pod of the hook left.
 * Skipped unless the lab is up (FERRY_REQUIRE_LAB=1 makes that a failure).
 */
import { KubeClient } from '../../src/k8s/client';
import { hookJobName, runHook } from '../../src/migration/hooks';
import type { HookSpec } from '../../src/plan/schema';
import { kubectl, LAB_KUBECONFIG, labPlan, labGate } from '../../hack/e2e/lib';

const labDescribe = labGate('hooks drill');

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `hk-${RUN}`;
const MID = `hk-${RUN}`;

/** A container that passes the restricted Pod Security Standard (unless `root`). */
function container(script: string, root = false) {
  return {
    name: 'hook',
    image: 'ferry.local/lab/busybox:1',
    imagePullPolicy: 'IfNotPresent',
    command: ['sh', '-c', script],
    securityContext: root ? { runAsUser: 0 } : { runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
  };
}

function jobHook(name: string, script: string, timeoutSeconds: number, root = false): HookSpec {
  const plan = labPlan({ namespaces: [NS], hooks: [{ name, phase: 'preStage', job: { template: { spec: { containers: [container(script, root)] } } }, timeoutSeconds }] });
  return plan.hooks[0]!;
}

function leftovers(name: string): string {
  const jobs = kubectl('ferry-src', ['-n', NS, 'get', 'jobs', '-o', 'name']).trim();
  const pods = kubectl('ferry-src', ['-n', NS, 'get', 'pods', '-l', `batch.kubernetes.io/job-name=${hookJobName(MID, name)}`, '-o', 'name']).trim();
  return `${jobs}${pods}`;
}

async function noLeftovers(name: string): Promise<void> {
  // the Job is deleted with background propagation: its pods go a moment later
  for (let i = 0; i < 30 && leftovers(name) !== ''; i++) await new Promise((r) => setTimeout(r, 1000));
  expect(leftovers(name)).toBe('');
}

labDescribe('job hooks on the lab', () => {
  const client = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });

  beforeAll(() => {
    kubectl('ferry-src', ['create', 'namespace', NS]);
    kubectl('ferry-src', ['label', 'namespace', NS, 'pod-security.kubernetes.io/enforce=restricted']);
  });
  afterAll(() => {
    kubectl('ferry-src', ['delete', 'namespace', NS, '--wait=false']);
  });

  it('(a) a Job that succeeds, and (e) its next run replaces it', async () => {
    const hook = jobHook('ok', 'echo "backup of $(hostname) done"', 120);
    for (const pass of [1, 2]) {
      const r = await runHook(client, NS, hook, MID);
      expect(r).toMatchObject({ name: 'ok', ok: true, cluster: 'source', namespace: NS });
      expect(r.pods).toHaveLength(1);
      expect(r.pods[0]).toMatchObject({ exitCode: 0, outputTail: expect.stringContaining('done') });
      console.log(`[hooks drill] pass ${pass}: ok in ${r.seconds.toFixed(1)} s: ${r.pods[0]!.outputTail.trim()}`);
      await noLeftovers('ok');
    }
  }, 300_000);

  it('(b) a Job whose command exits 3 fails with the exit code', async () => {
    const r = await runHook(client, NS, jobHook('exit3', 'echo "cannot flush" >&2; exit 3', 120), MID);
    console.log(`[hooks drill] exit3: ${r.message}`);
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/the Job failed \(BackoffLimitExceeded.*exited 3/);
    expect(r.pods[0]).toMatchObject({ exitCode: 3, outputTail: expect.stringContaining('cannot flush') });
    await noLeftovers('exit3');
  }, 300_000);

  it('(c) a Job that outlives its timeout fails by its deadline', async () => {
    const started = Date.now();
    const r = await runHook(client, NS, jobHook('slow', 'sleep 600', 8), MID);
    console.log(`[hooks drill] slow: ${r.message} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/DeadlineExceeded/);
    expect(Date.now() - started).toBeLessThan(60_000);
    await noLeftovers('slow');
  }, 300_000);

  it('(d) a Job whose pod Pod Security refuses fails with admission\'s message, before its timeout', async () => {
    const started = Date.now();
    const r = await runHook(client, NS, jobHook('root', 'id', 600, true), MID);
    console.log(`[hooks drill] root: ${r.message} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/cannot create its pod: .*violates PodSecurity "restricted/);
    expect(Date.now() - started).toBeLessThan(120_000);
    await noLeftovers('root');
  }, 300_000);
});
