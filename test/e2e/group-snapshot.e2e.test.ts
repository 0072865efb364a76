/**
 * Lab drill (issue 11 §1, `groupSnapshot: true`): two PVCs of one application — `data` and `wal` —
 * on the lab's CSI driver, a writer appending record i to data/a and then to wal/b in lockstep. Each
 * stage pass snaps both with one VolumeGroupSnapshot (CSI GroupController: both filesystems frozen
 * together) and syncs each PVC from its member snapshot, one after the other and seconds apart. Every
 * stage copy must be one point in time ACROSS the two volumes: `b` never ahead of `a` nor more than one
 * record behind (snapshots taken PVC by PVC, at each one's sync, would be seconds apart: thousands of
 * records). After each pass no group or snapshot is left; while the migration runs the source PVCs
 * carry the group label, and cleanup removes it. Through the activities (MockActivityEnvironment), as
 * the namespace workflow calls them; namespace `gs-<run>`. First, a background hook (plan
 * hooks[].background) holds the writer between two whole records over the group snapshot's cut:
 * that copy must hold exactly as many records in `b` as in `a`, and the writer goes on after. Skipped unless the lab is up
 * (FERRY_REQUIRE_LAB=1 makes that a failure).
 */
import type { KubernetesObject, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../src/activities';
import type { FerryActivities, TransferRequest } from '../../src/activities/contract';
import type { EndpointAddress, HookResult, PVCInfo, TransferResult, WorkloadRef } from '../../src/core/types';
import { KubeClient } from '../../src/k8s/client';
import type { MigrationPlan } from '../../src/plan/schema';
import { GROUP_SNAPSHOT_LABEL } from '../../src/statetransfer/snapshot';
import { kubectl, LAB_KUBECONFIG, labPlan, labGate, waitUntil, writerDeployment } from '../../hack/e2e/lib';

const labDescribe = labGate('group snapshot drill');

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `gs-${RUN}`;
const MID = `gs-${RUN}`;
const PVCS = ['data', 'wal'];

/**
 * Record i to data/a, then (0.2 s later) to wal/b; some bulk so a sync takes a moment. While
 * /dev/shm/lock exists (a background hook's "lock") it writes nothing and says so with
 * /dev/shm/paused, between two whole records.
 */
const WRITER = [
  'head -c 20000000 /dev/urandom > /d/bulk.bin',
  'i=1; while :; do if [ -e /dev/shm/lock ]; then : > /dev/shm/paused; sleep 0.05; continue; fi; rm -f /dev/shm/paused; printf "%08d\\n" $i >> /d/a; sleep 0.2; printf "%08d\\n" $i >> /w/b; i=$((i+1)); done',
].join('\n');
/** The background hook: takes the lock, waits until the writer paused, holds at ${FERRY_WAIT} over the cut, unlocks. */
const HOLD = { name: 'hold', phase: 'preStage', background: true, timeoutSeconds: 120, exec: { selector: 'app=writer', command: ['sh', '-c', 'touch /dev/shm/lock; while [ ! -e /dev/shm/paused ]; do sleep 0.05; done; echo paused; ${FERRY_WAIT}; rm -f /dev/shm/lock; echo unlocked'] } };

/** Reads a and b on the destination PVCs and prints "na nb ok|torn". */
const CHECKER = [
  'na=$(wc -l < /d/a); nb=$(wc -l < /w/b)',
  'ok=ok; for f in /d/a /w/b; do awk \'{ if ($0 !~ /^[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]$/ || $0+0 != NR) { bad=1; exit } } END { exit bad }\' $f || ok=torn; [ -z "$(tail -c 1 $f | tr -d "\\n")" ] || ok=torn; done',
  'echo "$na $nb $ok"',
].join('; ');

/** The destination checker's mounts: both PVCs, read-only. */
const CHECK_MOUNTS = {
  volumeMounts: [
    { name: 'd', mountPath: '/d', readOnly: true },
    { name: 'w', mountPath: '/w', readOnly: true },
  ],
  volumes: [
    { name: 'd', persistentVolumeClaim: { claimName: 'data', readOnly: true } },
    { name: 'w', persistentVolumeClaim: { claimName: 'wal', readOnly: true } },
  ],
};

/** The drill's plan fields. */
const PLAN_FIELDS = {
  namespaces: [NS],
  endpoint: { type: 'LoadBalancer' },
  sourceCopyMethod: 'snapshot',
  groupSnapshot: true,
  storageClassMapping: { 'csi-hostpath': 'lab-local' },
  timeouts: { endpointReadySeconds: 120, serverReadySeconds: 180, podStartSeconds: 120 },
};

labDescribe('lab drill: stage passes from one VolumeGroupSnapshot of two PVCs', () => {
  let src: KubeClient;
  let activities: FerryActivities;
  let plan: MigrationPlan;
  let pvcs: PVCInfo[];
  let address: EndpointAddress;
  let workloads: WorkloadRef[];
  const syncs: Record<string, number> = {};
  const ctx = () => ({ migrationId: MID, plan, namespace: plan.namespaces[0]! });
  const env = () => new MockActivityEnvironment({ startToCloseTimeoutMs: 600_000 } as never);
  const runTransfer = (pvc: PVCInfo, final: boolean, fromSnapshot?: string) =>
    env().run(activities.runTransfer, { ...ctx(), pvc, address, final, pass: (syncs[pvc.name] = (syncs[pvc.name] ?? 0) + 1), ...(fromSnapshot ? { fromSnapshot } : {}) } satisfies TransferRequest) as Promise<TransferResult>;

  async function checkDestination(n: number): Promise<{ na: number; nb: number; ok: string }> {
    const name = `check-${n}`;
    const m = CHECK_MOUNTS;
    kubectl('ferry-dst', ['-n', NS, 'apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name },
      spec: { restartPolicy: 'Never', securityContext: { runAsUser: 0 }, containers: [{ name: 'c', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['bash', '-c', CHECKER], volumeMounts: m.volumeMounts }], volumes: m.volumes },
    }));
    await waitUntil(() => ['Succeeded', 'Failed'].includes(kubectl('ferry-dst', ['-n', NS, 'get', 'pod', name, '-o', 'jsonpath={.status.phase}'])), `checker ${name}`);
    const [na, nb, ok] = kubectl('ferry-dst', ['-n', NS, 'logs', name]).trim().split(' ');
    kubectl('ferry-dst', ['-n', NS, 'delete', 'pod', name, '--wait=false']);
    return { na: Number(na), nb: Number(nb), ok: ok! };
  }

  const snapshotsLeft = () => [kubectl('ferry-src', ['-n', NS, 'get', 'volumegroupsnapshots,volumesnapshots', '-o', 'name'])].join('').trim();
  const labelled = async () =>
    (await src.list<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim' }, NS)).filter((p) => p.metadata?.labels?.[GROUP_SNAPSHOT_LABEL] !== undefined).map((p) => p.metadata!.name!).sort();

  beforeAll(async () => {
    src = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
    activities = createActivities({ pollIntervalSeconds: 1 });
    plan = labPlan(PLAN_FIELDS);
    await src.objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } as KubernetesObject);
    for (const name of PVCS) {
      await src.objects.create({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'csi-hostpath', resources: { requests: { storage: '512Mi' } } } } as KubernetesObject);
    }
    await src.objects.create(writerDeployment(NS, WRITER, { mounts: [{ claim: 'data', path: '/d' }, { claim: 'wal', path: '/w' }] }));
    await waitUntil(async () => (await src.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, NS, { labelSelector: 'app=writer' })).some((p) => p.status?.phase === 'Running'), 'the writer to run', 180_000, 1000);
    await new Promise((r) => setTimeout(r, 3000));
    const discovery = await activities.discoverNamespace(ctx());
    // preflight as the migration runs it: with the discovery; it must find nothing in the way
    expect(await activities.preflight({ migrationId: MID, plan, discoveries: [discovery] })).toEqual([]);
    pvcs = PVCS.map((n) => discovery.pvcs.find((p) => p.name === n)!);
    workloads = discovery.workloads;
    await activities.prepareDestination({ ...ctx(), discovery });
    address = (await env().run(activities.createEndpoint, ctx())) as EndpointAddress;
    await env().run(activities.createServer, { ...ctx(), discovery, address });
  }, 480_000);

  afterAll(async () => {
    if (!src || process.env.FERRY_E2E_KEEP === '1') return;
    await src.delete({ apiVersion: 'v1', kind: 'Namespace', name: NS }).catch(() => undefined);
    await KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' }).delete({ apiVersion: 'v1', kind: 'Namespace', name: NS }).catch(() => undefined);
  }, 60_000);

  test('a background hook holds the writer over the cut: the copy holds whole records only, and the writer goes on after', async () => {
    const held = labPlan({ ...PLAN_FIELDS, hooks: [HOLD] });
    const r = (await env().run(activities.prepareHeldGroupSnapshot, { migrationId: MID, plan: held, namespace: held.namespaces[0]!, pass: 1, pvcs: PVCS, hooks: ['hold'] })) as { members: Record<string, string>; hooks: HookResult[] };
    expect(r.hooks).toHaveLength(1);
    expect(r.hooks[0]).toMatchObject({ name: 'hold', ok: true, pods: [expect.objectContaining({ exitCode: 0, outputTail: expect.stringMatching(/paused\s+unlocked/) })] });
    expect(Object.keys(r.members).sort()).toEqual(PVCS);
    for (const pvc of pvcs) expect(await runTransfer(pvc, false, r.members[pvc.name])).toMatchObject({ outcome: 'success' });
    await env().run(activities.releaseGroupSnapshot, ctx());
    const c = await checkDestination(0);
    process.stdout.write(`[group snapshot drill] held pass: a=${c.na} b=${c.nb} ${c.ok}; hook ${r.hooks[0]!.seconds.toFixed(1)} s\n`);
    expect(c.ok).toBe('ok');
    expect(c.na).toBeGreaterThan(0);
    expect(c.nb).toBe(c.na); // held between whole records: never a record in a without b
    // released: the lock is gone and the writer goes on
    const writer = kubectl('ferry-src', ['-n', NS, 'get', 'pods', '-l', 'app=writer', '-o', 'jsonpath={.items[0].metadata.name}']);
    expect(() => kubectl('ferry-src', ['-n', NS, 'exec', writer, '--', 'test', '-e', '/dev/shm/lock'])).toThrow();
    await waitUntil(() => Number(kubectl('ferry-src', ['-n', NS, 'exec', writer, '--', 'sh', '-c', 'wc -l < /d/a']).trim()) > c.na + 3, 'the writer to go on after the hold', 30_000, 1000);
  }, 600_000);

  test('each stage pass is one point in time across both PVCs; nothing is left; the label goes at cleanup', async () => {
    const seen: string[] = [];
    for (let pass = 1; pass <= 2; pass++) {
      const members = (await env().run(activities.prepareGroupSnapshot, { ...ctx(), pass, pvcs: PVCS })) as Record<string, string>;
      expect(Object.keys(members).sort()).toEqual(PVCS);
      expect(await labelled()).toEqual(PVCS);
      for (const pvc of pvcs) {
        expect(await runTransfer(pvc, false, members[pvc.name])).toMatchObject({ outcome: 'success' });
        await new Promise((r) => setTimeout(r, 1000)); // the writer goes on between the two syncs
      }
      await env().run(activities.releaseGroupSnapshot, ctx());
      expect(snapshotsLeft()).toBe('');
      const c = await checkDestination(pass);
      seen.push(`pass ${pass}: a=${c.na} b=${c.nb} ${c.ok}`);
      expect(c.ok).toBe('ok');
      expect(c.na).toBeGreaterThan(0);
      expect(c.nb).toBeLessThanOrEqual(c.na);
      expect(c.na - c.nb).toBeLessThanOrEqual(1);
    }
    process.stdout.write(`[group snapshot drill] ${seen.join('; ')}\n`);

    await env().run(activities.quiesce, { migrationId: MID, plan, workloads });
    await env().run(activities.waitForQuiesced, { migrationId: MID, plan, workloads });
    for (const pvc of pvcs) expect(await runTransfer(pvc, true)).toMatchObject({ outcome: 'success' });
    const last = await checkDestination(3);
    expect(last.ok).toBe('ok');
    expect(last.na - last.nb).toBeLessThanOrEqual(1);
    await env().run(activities.cleanup, { migrationId: MID, plan, namespace: plan.namespaces[0]! });
    expect(await labelled()).toEqual([]);
    expect(snapshotsLeft()).toBe('');
    expect(kubectl('ferry-src', ['-n', NS, 'get', 'pods,pvc', '-l', 'app.kubernetes.io/managed-by=ferry', '-o', 'name'])).toBe('');
  }, 900_000);
});
