/**
 * Lab drill (issue 13 §2): a volumeMode Block PVC migrated on the lab's CSI driver (hack/lab/csi.sh,
 * StorageClass csi-hostpath in both clusters: loop devices), through the activities called directly
 * (MockActivityEnvironment), namespace `bk-<run>`, restricted security mode (the lab's containerd gives
 * device nodes the pod's runAsUser/runAsGroup: device_ownership_from_security_context):
 * - the source PVC `disk` (1 GiB) holds an ext4 file system image made by the non-root writer
 *   (mkfs.ext4 -d, with a file `hello.txt`), the writer keeps the device mapped;
 * - a stage sync through the warm agent copies the device; then the writer rewrites 1 MiB in the
 *   middle of the device, the application is quiesced, and the final sync sends about that MiB
 *   (rsync's delta over the device: the "Total bytes sent" of the final sync stays under 8 MiB);
 * - the destination device's sha256 over the source's 1 GiB equals the source's (read by pods on each
 *   side, independently of Ferry's verify), debugfs reads `hello.txt` from the copied file system, and
 *   `ferry verify`'s block comparison finds the devices identical, then finds the 4 KiB planted in
 *   the destination (one differing 64 MiB chunk, with its byte range);
 * - cleanup leaves no Ferry object.
 * Skipped unless the lab is up (FERRY_REQUIRE_LAB=1 makes that a failure).
 */
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../src/activities';
import type { FerryActivities, TransferRequest } from '../../src/activities/contract';
import type { EndpointAddress, PVCInfo, TransferResult, WorkloadRef } from '../../src/core/types';
import { KubeClient } from '../../src/k8s/client';
import { verifyPVC } from '../../src/migration/verify';
import type { MigrationPlan } from '../../src/plan/schema';
import { kubectl, LAB_KUBECONFIG, labPlan, labGate, runPod, waitUntil } from '../../hack/e2e/lib';

const labDescribe = labGate('block volume drill');

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `bk-${RUN}`;
const MID = `bk-${RUN}`;
const SIZE = 1024 * 1024 * 1024;
const DEVICE = '/dev/xvda';
const IDS = { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } };
const CONTAINER_SECURITY = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true };

/** The writer: an ext4 image with a file, made on the raw device, then idle (the device stays mapped). */
const WRITER = [
  'set -e',
  'mkdir -p /tmp/tree/sub',
  'echo "hello from a block volume" > /tmp/tree/hello.txt',
  'head -c 3000000 /dev/urandom > /tmp/tree/sub/random.bin',
  `mkfs.ext4 -q -F -d /tmp/tree ${DEVICE}`,
  'echo ready',
  'sleep 36000',
].join('\n');

function writer(): KubernetesObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'writer', namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'writer' } },
      template: {
        metadata: { labels: { app: 'writer' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          securityContext: IDS,
          containers: [{ name: 'w', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['bash', '-c', WRITER], securityContext: CONTAINER_SECURITY, volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }], volumeDevices: [{ name: 'd', devicePath: DEVICE }] }],
          volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'disk' } }, { name: 'tmp', emptyDir: {} }],
        },
      },
    },
  } as KubernetesObject;
}

labDescribe('lab drill: a block-mode PVC', () => {
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

  /** Runs `script` (bash) in a non-root pod of `cluster` with the PVC's device at DEVICE; its output. */
  async function onDevice(cluster: 'ferry-src' | 'ferry-dst', name: string, script: string, readOnly = true): Promise<string> {
    const r = await runPod(cluster, NS, name, {
      securityContext: IDS,
      containers: [{ name: 'c', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['bash', '-c', script], securityContext: CONTAINER_SECURITY, volumeDevices: [{ name: 'd', devicePath: DEVICE }] }],
      volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'disk', readOnly } }],
    });
    expect({ name, ...r }).toMatchObject({ phase: 'Succeeded' });
    return r.log;
  }
  const deviceDigest = (cluster: 'ferry-src' | 'ferry-dst', name: string) => onDevice(cluster, name, `head -c ${SIZE} ${DEVICE} | sha256sum | cut -c1-64`);

  beforeAll(async () => {
    src = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
    dst = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' });
    activities = createActivities({ pollIntervalSeconds: 1 });
    plan = labPlan({
      namespaces: [NS],
      endpoint: { type: 'LoadBalancer' },
      timeouts: { endpointReadySeconds: 120, serverReadySeconds: 180, podStartSeconds: 120 },
    });
    await src.objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } as KubernetesObject);
    await src.objects.create({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'disk', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], volumeMode: 'Block', storageClassName: 'csi-hostpath', resources: { requests: { storage: '1Gi' } } } } as KubernetesObject);
    await src.objects.create(writer());
    await waitUntil(async () => {
      const pods = await src.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, NS, { labelSelector: 'app=writer' });
      const running = pods.find((p) => p.status?.phase === 'Running');
      return running ? (await src.core.readNamespacedPodLog({ name: running.metadata!.name!, namespace: NS }).catch(() => '')).includes('ready') : false;
    }, 'the writer to make its file system', 240_000, 1000);
    const discovery = await activities.discoverNamespace(ctx());
    expect(await activities.preflight({ migrationId: MID, plan, discoveries: [discovery] })).toEqual([]);
    pvc = discovery.pvcs.find((p) => p.name === 'disk')!;
    expect(pvc).toMatchObject({ volumeMode: 'Block', usedBy: [{ kind: 'Deployment', name: 'writer' }] });
    workloads = discovery.workloads;
    await activities.prepareDestination({ ...ctx(), discovery });
    expect(kubectl('ferry-dst', ['-n', NS, 'get', 'pvc', 'disk', '-o', 'jsonpath={.spec.volumeMode}'])).toBe('Block');
    const env = new MockActivityEnvironment({ startToCloseTimeoutMs: 600_000 } as never);
    address = (await env.run(activities.createEndpoint, ctx())) as EndpointAddress;
    await env.run(activities.createServer, { ...ctx(), discovery, address });
    await env.run(activities.probeConnectivity, { ...ctx(), address });
  }, 600_000);

  afterAll(async () => {
    if (!src || process.env.FERRY_E2E_KEEP === '1') return;
    await src.delete({ apiVersion: 'v1', kind: 'Namespace', name: NS }).catch(() => undefined);
    await dst.delete({ apiVersion: 'v1', kind: 'Namespace', name: NS }).catch(() => undefined);
  }, 60_000);

  test('the device is copied, a re-sync sends the changed MiB, the copy is byte-identical and verify finds a planted change', async () => {
    const stage = await runTransfer(request(false));
    expect(stage).toMatchObject({ outcome: 'success', exitCode: 0 });

    // 1 MiB rewritten in the middle of the device while the application runs, then quiesce
    const pod = kubectl('ferry-src', ['-n', NS, 'get', 'pod', '-l', 'app=writer', '-o', 'jsonpath={.items[0].metadata.name}']);
    kubectl('ferry-src', ['-n', NS, 'exec', pod, '--', 'bash', '-c', `head -c 1048576 /dev/urandom | dd of=${DEVICE} bs=1M seek=600 conv=notrunc,fsync status=none`]);
    const env = new MockActivityEnvironment({ startToCloseTimeoutMs: 600_000 } as never);
    await env.run(activities.quiesce, { migrationId: MID, plan, workloads });
    await env.run(activities.waitForQuiesced, { migrationId: MID, plan, workloads });
    const final = await runTransfer(request(true));
    expect(final).toMatchObject({ outcome: 'success', exitCode: 0 });
    process.stdout.write(`[block drill] 1 GiB device: stage sync ${stage.durationSeconds.toFixed(1)} s, ${stage.bytesSent} bytes sent; final sync after a 1 MiB change ${final.durationSeconds.toFixed(1)} s, ${final.bytesSent} bytes sent\n`);
    expect(final.bytesSent).toBeGreaterThan(1024 * 1024);
    expect(final.bytesSent).toBeLessThan(8 * 1024 * 1024);

    const [a, b] = await Promise.all([deviceDigest('ferry-src', 'sum-src'), deviceDigest('ferry-dst', 'sum-dst')]);
    expect(b).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toBe(a);
    expect(await onDevice('ferry-dst', 'debugfs', `debugfs -R 'cat /hello.txt' ${DEVICE} 2>/dev/null`)).toBe('hello from a block volume');

    const target = { sourceNamespace: NS, sourcePVC: 'disk', destinationNamespace: NS, destinationPVC: 'disk' };
    const opts = { migrationId: MID, image: plan.transferImage, root: false, hashes: true, owners: false, metadata: false };
    const same = await verifyPVC(src, dst, target, opts);
    expect(same).toMatchObject({ identical: true, entries: 16, differences: [] });

    // a 4 KiB change planted in the destination, in the chunk of byte 300 MiB
    await onDevice('ferry-dst', 'plant', `head -c 4096 /dev/urandom | dd of=${DEVICE} bs=4096 seek=${(300 * 1024 * 1024) / 4096} conv=notrunc,fsync status=none`, false);
    const planted = await verifyPVC(src, dst, target, opts);
    expect(planted).toMatchObject({ identical: false, byKind: { content: 1 }, differences: [{ kind: 'content', path: `device@${256 * 1024 * 1024}+${64 * 1024 * 1024}` }] });

    await env.run(activities.cleanup, { migrationId: MID, plan, namespace: plan.namespaces[0]! });
    expect(kubectl('ferry-src', ['-n', NS, 'get', 'pods,pvc,secrets,configmaps', '-l', 'app.kubernetes.io/managed-by=ferry', '-o', 'name'])).toBe('');
    expect(kubectl('ferry-dst', ['-n', NS, 'get', 'pods,secrets,configmaps,services', '-l', 'app.kubernetes.io/managed-by=ferry', '-o', 'name'])).toBe('');
  }, 900_000);
});
