/**
 * Waits with an end, on the lab's real kubelet (issue 8 item 10): client pods built by
 * buildClientPod (both lifecycles) that can never finish are followed by followTransferPod, which must
 * end within its bound with an explained FerryError instead of following them until the runTransfer
 * start-to-close timeout (30 days by default). The bounds are shortened (PendingLimits) to keep the
 * drill under a minute and a half; the rules are the ones of the defaults.
 *
 *   native sidecar whose transport exits 1 at once  → config, "keeps crashing", its last log line
 *   a broken image reference                        → config, "cannot pull image"
 *   a Secret volume that does not exist              → transient, "has not started", FailedMount event
 *   done-file transport that exits 1                 → transient, "before the transfer finished"
 *
 * And the log of a pod not yet scheduled (the API server's 204 without Content-Type) reads as ''.
 *
 * Namespace t-waits-<random> in ferry-src, deleted at the end. Skipped unless the lab with nodes is
 * up; FERRY_REQUIRE_LAB=1 makes that a failure.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { KubeClient } from '../../src/k8s/client';
import { FerryError } from '../../src/core/errors';
import { DEFAULT_PENDING_LIMITS, followTransferPod, readLogTail, type PendingLimits } from '../../src/migration/follow';
import { buildClientPod, type ClientLifecycle } from '../../src/statetransfer/pods/pods';
import { LAB_KUBECONFIG, labGate } from '../../hack/e2e/lib';

const labDescribe = labGate('waits drill');

const NS = `t-waits-${Math.random().toString(36).slice(2, 7)}`;
const IMAGE = 'ferry/transfer:latest';
const LIMITS: PendingLimits = { ...DEFAULT_PENDING_LIMITS, imagePullSeconds: 15, containerConfigSeconds: 15, pendingSeconds: 25, crashRestarts: 2 };

/** A client pod as Ferry builds it, with an emptyDir instead of the source PVC (the drill is about the pod, not the data). */
function clientPod(name: string, lifecycle: ClientLifecycle, o: { transport: string; image?: string; extraSecret?: string }): V1Pod {
  const pod = buildClientPod({
    name,
    namespace: NS,
    labels: { 'app.kubernetes.io/managed-by': 'ferry-test' },
    image: o.image ?? IMAGE,
    security: 'restricted',
    pvcName: 'unused',
    sourcePath: '/source',
    lifecycle,
    transportPort: 8873,
    transfer: { processes: [{ name: 'rsync', command: ['sleep', '600'], volumeMounts: [] }], volumes: [], objects: [] },
    transport: { processes: [{ name: 'stunnel', command: ['/bin/bash', '-c', o.transport], volumeMounts: o.extraSecret ? [{ name: 'tls', mountPath: '/tls' }] : [] }], volumes: o.extraSecret ? [{ name: 'tls', secret: { secretName: o.extraSecret } }] : [], objects: [] },
  });
  pod.spec!.volumes = pod.spec!.volumes!.map((v) => (v.persistentVolumeClaim ? { name: v.name, emptyDir: {} } : v));
  return pod;
}

labDescribe('waits with an end on the lab (issue 8 item 10)', () => {
  let client: KubeClient;
  beforeAll(async () => {
    client = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
    await client.objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  });
  afterAll(async () => {
    await client?.delete({ apiVersion: 'v1', kind: 'Namespace', name: NS }, 0).catch(() => undefined);
  });

  async function follow(pod: V1Pod, limits: PendingLimits = LIMITS): Promise<{ err: FerryError; seconds: number }> {
    await client.objects.create(pod);
    const started = Date.now();
    const err = await followTransferPod(client, { namespace: NS, name: pod.metadata!.name!, engine: 'rsync', intervalSeconds: 2, pendingLimits: limits, signal: AbortSignal.timeout(150_000) }).then(
      (r) => new Error(`followed to the end: ${JSON.stringify(r)}`),
      (e: unknown) => e,
    );
    const seconds = Math.round((Date.now() - started) / 1000);
    process.stdout.write(`[waits] ${pod.metadata!.name}: ${seconds} s: ${(err as Error).message}\n`);
    if (!(err instanceof FerryError)) throw err;
    return { err, seconds };
  }

  test('each stuck or crashing client pod ends within its bound, explained', async () => {
    const [crash, pull, mount, doneFile] = await Promise.all([
      // kubelet restarts it after 10 s, then 20 s: the second restart comes ~30 s in.
      follow(clientPod('t-crash', 'native-sidecar', { transport: 'echo "[!] ferry drill: transport configuration refused" >&2; exit 1' }), { ...LIMITS, pendingSeconds: 120 }),
      follow(clientPod('t-pull', 'native-sidecar', { transport: 'sleep 600', image: 'ferry.local/lab/does-not-exist:1' })),
      follow(clientPod('t-mount', 'native-sidecar', { transport: 'sleep 600', extraSecret: 't-no-such-secret' })),
      follow(clientPod('t-donefile', 'done-file', { transport: 'echo "ferry drill: transport died" >&2; exit 1' })),
    ]);
    expect(crash.err.category).toBe('config');
    expect(crash.err.message).toMatch(/transport sidecar stunnel .*keeps crashing \(.*exited 1 \(Error\).*restarted [2-9] times/);
    expect(crash.err.message).toMatch(/last log line: "\[!\] ferry drill: transport configuration refused"/);
    expect(crash.seconds).toBeLessThan(90);

    expect(pull.err.category).toBe('config');
    expect(pull.err.message).toMatch(/cannot (pull|use) image ferry.local\/lab\/does-not-exist:1/);
    expect(pull.seconds).toBeLessThan(LIMITS.imagePullSeconds + 30);

    expect(mount.err.category).toBe('transient');
    expect(mount.err.message).toMatch(/has not started after \d+ s .*waiting \((ContainerCreating|PodInitializing)\).*kubelet could not set the pod up/);
    expect(mount.err.message).toMatch(/FailedMount: MountVolume.SetUp failed for volume "tls" : secret "t-no-such-secret" not found/);
    expect(mount.seconds).toBeLessThan(LIMITS.pendingSeconds + 30);

    expect(doneFile.err.category).toBe('transient');
    expect(doneFile.err.message).toMatch(/container stunnel exited 1 \(Error\).* before the transfer finished/);
    expect(doneFile.seconds).toBeLessThan(60);
    // kubelet's per-pod DNS warnings are not evidence.
    for (const r of [crash, pull, mount, doneFile]) expect(r.err.message).not.toMatch(/MissingClusterDNS/);
  }, 200_000);

  test("the log of a pod not yet scheduled reads as empty (the API server's 204 has no Content-Type)", async () => {
    // verify and the follows read a pod's log right after creating it; client-node threw "Cannot
    // parse content. No Content-Type defined." on this answer (a full CI run failed on it).
    const pod = clientPod('t-unscheduled', 'native-sidecar', { transport: 'sleep 600' });
    pod.spec!.nodeSelector = { 'ferry.test/no-such-node': 'x' };
    await client.objects.create(pod);
    expect(await readLogTail(client, NS, 't-unscheduled', 'rsync', 20, 64 * 1024)).toBe('');
  });
});
