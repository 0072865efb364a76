/**
 * Lab drill (issue 11 §1): `sourceCopyMethod: snapshot` on the lab's CSI driver (hack/lab/csi.sh),
 * through the activities called directly (MockActivityEnvironment), namespace `sp-<run>`:
 * - a writer appends numbered records to two files in lockstep (record i to `a`, then to `b`) while
 *   two stage syncs run, each from a VolumeSnapshot of the PVC and a claim restored from it; every
 *   stage copy must be one point in time: both files clean, contiguous sequences, and `b` never ahead
 *   of `a` nor more than one record behind (a live copy reads `a` first and `b` later, so `b` would
 *   run ahead);
 * - no VolumeSnapshot, VolumeSnapshotContent or point-in-time claim is left after a sync;
 * - application hooks through the real exec API: a preQuiesce hook writes a file in the writer pod
 *   (which the final sync must carry), a failing one reports its exit code and stderr, one whose
 *   selector matches no pod says so;
 * - after quiesce, the final sync reads the source PVC itself (the warm agent), and `ferry verify`'s
 *   comparison finds the copy identical, contents included; cleanup leaves nothing.
 * Skipped unless the lab is up (FERRY_REQUIRE_LAB=1 makes that a failure).
 */
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../src/activities';
import type { FerryActivities, TransferRequest } from '../../src/activities/contract';
import type { EndpointAddress, HookResult, PVCInfo, TransferResult, WorkloadRef } from '../../src/core/types';
import { KubeClient } from '../../src/k8s/client';
import { verifyPVC } from '../../src/migration/verify';
import type { MigrationPlan } from '../../src/plan/schema';
import { pointInTimeClaimName, snapshotName } from '../../src/statetransfer/snapshot';
import { kubectl, LAB_KUBECONFIG, labPlan, labGate, runPod, waitUntil, writerDeployment } from '../../hack/e2e/lib';

const labDescribe = labGate('snapshot drill');

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `sp-${RUN}`;
const MID = `sp-${RUN}`;

/** Record i to `a`, then to `b`, as fast as the shell goes; some bulk so a sync takes a moment. */
const WRITER = [
  'head -c 20000000 /dev/urandom > /d/bulk.bin',
  'i=1; while :; do printf "%08d\\n" $i >> /d/a; printf "%08d\\n" $i >> /d/b; i=$((i+1)); done',
].join('\n');

/** Reads a and b on the destination PVC and prints "na nb ok|torn". */
const CHECKER = [
  'cd /d',
  'na=$(wc -l < a); nb=$(wc -l < b)',
  // every line a full 8-digit record, numbered 1..n
  'ok=ok; for f in a b; do awk -v f=$f \'{ if ($0 !~ /^[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]$/ || $0+0 != NR) { bad=1; exit } } END { exit bad }\' $f || ok=torn; [ -z "$(tail -c 1 $f | tr -d "\\n")" ] || ok=torn; done',
  'echo "$na $nb $ok"',
].join('; ');

labDescribe('lab drill: stage syncs from CSI snapshots', () => {
  let src: KubeClient;
  let dst: KubeClient;
  let activities: FerryActivities;
  let plan: MigrationPlan;
  let pvc: PVCInfo;
  let address: EndpointAddress;
  let workloads: WorkloadRef[];
  let pass = 0;
  const ctx = () => ({ migrationId: MID, plan, namespace: plan.namespaces[0]! });
  const request = (final: boolean): TransferRequest => ({ ...ctx(), pvc, address, final, pass: ++pass });
  const runTransfer = (req: TransferRequest) => new MockActivityEnvironment({ startToCloseTimeoutMs: 600_000 } as never).run(activities.runTransfer, req) as Promise<TransferResult>;

  /** Runs CHECKER in a pod on the destination PVC. */
  async function checkDestination(): Promise<{ na: number; nb: number; ok: string }> {
    const { log } = await runPod('ferry-dst', NS, `check-${pass}`, {
      securityContext: { runAsUser: 0 },
      containers: [{ name: 'c', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['bash', '-c', CHECKER], volumeMounts: [{ name: 'd', mountPath: '/d', readOnly: true }] }],
      volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data', readOnly: true } }],
    });
    const [na, nb, ok] = log.split(' ');
    return { na: Number(na), nb: Number(nb), ok: ok! };
  }

  /** Runs `command` in a pod on the destination PVC; its output, trimmed. */
  async function readDestination(command: string): Promise<string> {
    const { log } = await runPod('ferry-dst', NS, `read-${pass}`, {
      containers: [{ name: 'c', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', command], volumeMounts: [{ name: 'd', mountPath: '/d', readOnly: true }] }],
      volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data', readOnly: true } }],
    });
    return log;
  }

  const pointInTimeObjects = () =>
    [
      kubectl('ferry-src', ['-n', NS, 'get', 'volumesnapshots', '-o', 'name']),
      kubectl('ferry-src', ['-n', NS, 'get', 'pvc', pointInTimeClaimName(MID, 'data'), '--ignore-not-found', '-o', 'name']),
      kubectl('ferry-src', ['get', 'volumesnapshotcontents', '-o', 'jsonpath={range .items[*]}{.spec.volumeSnapshotRef.namespace}{"\\n"}{end}']).split('\n').filter((n) => n === NS).join(' '),
    ].join('').trim();

  beforeAll(async () => {
    src = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
    dst = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' });
    activities = createActivities({ pollIntervalSeconds: 1 });
    plan = labPlan({
      namespaces: [NS],
      endpoint: { type: 'LoadBalancer' },
      sourceCopyMethod: 'snapshot',
      hooks: [
        // writes the record count of `a` into the PVC while the writer runs: the final sync must carry it
        { name: 'mark', phase: 'preQuiesce', exec: { selector: 'app=writer', command: ['sh', '-c', 'n=$(wc -l < /d/a); echo "checkpoint $n" > /d/hook-marker; sync; echo "marked $n"'] } },
        { name: 'broken', phase: 'postQuiesce', onError: 'continue', exec: { selector: 'app=writer', command: ['sh', '-c', 'echo nope >&2; exit 7'] } },
        { name: 'nobody', phase: 'postCutover', exec: { selector: 'app=missing', command: ['true'] } },
      ],
      storageClassMapping: { 'csi-hostpath': 'lab-local' },
      timeouts: { endpointReadySeconds: 120, serverReadySeconds: 180, podStartSeconds: 120 },
    });
    await src.objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } as KubernetesObject);
    await src.objects.create({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'csi-hostpath', resources: { requests: { storage: '256Mi' } } } } as KubernetesObject);
    await src.objects.create(writerDeployment(NS, WRITER));
    await waitUntil(async () => {
      const pods = await src.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, NS, { labelSelector: 'app=writer' });
      return pods.some((p) => p.status?.phase === 'Running');
    }, 'the writer to run', 180_000, 1000);
    await new Promise((r) => setTimeout(r, 3000));
    const discovery = await activities.discoverNamespace(ctx());
    // preflight as the migration runs it: with the discovery; it must find nothing in the way
    expect(await activities.preflight({ migrationId: MID, plan, discoveries: [discovery] })).toEqual([]);
    pvc = discovery.pvcs.find((p) => p.name === 'data')!;
    workloads = discovery.workloads;
    await activities.prepareDestination({ ...ctx(), discovery });
    const env = new MockActivityEnvironment({ startToCloseTimeoutMs: 600_000 } as never);
    address = (await env.run(activities.createEndpoint, ctx())) as EndpointAddress;
    await env.run(activities.createServer, { ...ctx(), discovery, address });
  }, 480_000);

  afterAll(async () => {
    if (!src || process.env.FERRY_E2E_KEEP === '1') return;
    await src.delete({ apiVersion: 'v1', kind: 'Namespace', name: NS }).catch(() => undefined);
    await dst.delete({ apiVersion: 'v1', kind: 'Namespace', name: NS }).catch(() => undefined);
  }, 60_000);

  test('stage copies are points in time; the final copy is identical; nothing is left', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await runTransfer(request(false));
      expect(r).toMatchObject({ outcome: 'success' });
      const c = await checkDestination();
      seen.push(`stage ${i + 1}: a=${c.na} b=${c.nb} ${c.ok}`);
      expect(c.ok).toBe('ok');
      expect(c.na).toBeGreaterThan(0);
      expect(c.nb).toBeLessThanOrEqual(c.na);
      expect(c.na - c.nb).toBeLessThanOrEqual(1);
      expect(pointInTimeObjects()).toBe('');
    }
    process.stdout.write(`[snapshot drill] ${seen.join('; ')}\n`);
    expect(kubectl('ferry-src', ['-n', NS, 'get', 'volumesnapshot', snapshotName(MID, 'data'), '--ignore-not-found', '-o', 'name'])).toBe('');

    const env = new MockActivityEnvironment({ startToCloseTimeoutMs: 600_000 } as never);
    // Application hooks through the real exec: in the running writer, a failing command, no pod.
    const mark = (await env.run(activities.runHook, { ...ctx(), hook: 'mark' })) as HookResult;
    expect(mark).toMatchObject({ ok: true, cluster: 'source', namespace: NS });
    expect(mark.pods).toHaveLength(1);
    expect(mark.pods[0]!.exitCode).toBe(0);
    const marked = /marked (\d+)/.exec(mark.pods[0]!.outputTail)?.[1];
    expect(Number(marked)).toBeGreaterThan(0);
    const broken = (await env.run(activities.runHook, { ...ctx(), hook: 'broken' })) as HookResult;
    expect(broken).toMatchObject({ ok: false });
    expect(broken.message).toMatch(/^exited 7 in pod .*\(container w\): nope$/);
    const nobody = (await env.run(activities.runHook, { ...ctx(), hook: 'nobody' })) as HookResult;
    expect(nobody).toMatchObject({ ok: false, cluster: 'destination', message: `no running pod in ${NS} matches app=missing: nothing to run the hook in` });

    await env.run(activities.quiesce, { migrationId: MID, plan, workloads });
    await env.run(activities.waitForQuiesced, { migrationId: MID, plan, workloads });
    const final = await runTransfer(request(true));
    expect(final).toMatchObject({ outcome: 'success' });
    const v = await verifyPVC(src, dst, { sourceNamespace: NS, sourcePVC: 'data', destinationNamespace: NS, destinationPVC: 'data' }, { migrationId: MID, image: plan.transferImage, root: true, hashes: true, owners: false, metadata: false });
    expect(v.differences).toEqual([]);
    expect(v.identical).toBe(true);
    // the hook's file reached the destination with the count it wrote
    expect(await readDestination('cat /d/hook-marker')).toBe(`checkpoint ${marked}`);

    await env.run(activities.cleanup, { migrationId: MID, plan, namespace: plan.namespaces[0]! });
    expect(pointInTimeObjects()).toBe('');
    expect(kubectl('ferry-src', ['-n', NS, 'get', 'pods,pvc', '-l', 'app.kubernetes.io/managed-by=ferry', '-o', 'name'])).toBe('');
  }, 900_000);
});
