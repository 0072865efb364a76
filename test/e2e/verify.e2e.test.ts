/**
 * Lab drill (issue 13 §5): `ferry verify` on the lab's two real clusters. A PVC `data` in a source
 * and a destination namespace `vf-<run>` gets the same tree (written by the same script: files, a
 * hard link, a symlink, a sparse file, fixed mtimes), the destination PVC carries the migration's
 * cutover mark, and verification must find them identical (digests only); then a difference is
 * planted in the destination (a file changed in place, same size, and a file added), and verification
 * must find exactly those, by kind, with `--hashes`; without hashes the same-size change is a
 * difference only if its mtime moved. The manifest pods are gone afterwards.
 * Skipped unless the lab is up (FERRY_REQUIRE_LAB=1 makes that a failure).
 */
import { verifyMigration } from '../../src/cli/verify';
import { KubeClient } from '../../src/k8s/client';
import { CUTOVER_ANNOTATIONS } from '../../src/migration/destination';
import { parsePlan } from '../../src/plan/load';
import { kubectl, LAB_KUBECONFIG, labGate, waitUntil } from '../../hack/e2e/lib';

const labDescribe = labGate('verify drill');

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `vf-${RUN}`;
const MID = `vf-${RUN}`;

const SEED = [
  'set -e; cd /d',
  'mkdir -p sub/deep',
  "printf 'hello\\n' > a.txt; ln a.txt sub/a-link; ln -s ../a.txt sub/sym",
  'head -c 300000 /dev/zero | tr "\\0" "x" > sub/deep/b.txt',
  'truncate -s 64M sparse',
  'touch -h -d @1700000000 a.txt sub/deep/b.txt sparse',
].join('\n');

function runPod(ctx: 'ferry-src' | 'ferry-dst', name: string, script: string): void {
  kubectl(ctx, ['-n', NS, 'apply', '-f', '-'], JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: {
      restartPolicy: 'Never',
      securityContext: { runAsUser: 0 },
      containers: [{ name: 'c', image: 'ferry/transfer:latest', imagePullPolicy: 'IfNotPresent', command: ['bash', '-c', script], volumeMounts: [{ name: 'd', mountPath: '/d' }] }],
      volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data' } }],
    },
  }));
}

async function podDone(ctx: 'ferry-src' | 'ferry-dst', name: string): Promise<void> {
  await waitUntil(() => {
    const phase = kubectl(ctx, ['-n', NS, 'get', 'pod', name, '-o', 'jsonpath={.status.phase}']);
    if (phase === 'Failed') throw new Error(`pod ${ctx}/${name} failed: ${kubectl(ctx, ['-n', NS, 'logs', name])}`);
    return phase === 'Succeeded';
  }, `pod ${ctx}/${name}`);
  kubectl(ctx, ['-n', NS, 'delete', 'pod', name, '--wait=true']);
}

labDescribe('ferry verify on the lab', () => {
  const plan = parsePlan({
    source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' },
    destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' },
    namespaces: [NS],
    security: { mode: 'preserve-ownership' },
  });
  const clients = { source: KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' }), destination: KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' }) };

  beforeAll(async () => {
    for (const ctx of ['ferry-src', 'ferry-dst'] as const) {
      kubectl(ctx, ['create', 'namespace', NS]);
      kubectl(ctx, ['-n', NS, 'apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '256Mi' } } } }));
      runPod(ctx, 'seed', SEED);
    }
    await Promise.all([podDone('ferry-src', 'seed'), podDone('ferry-dst', 'seed')]);
    kubectl('ferry-dst', ['-n', NS, 'annotate', 'pvc', 'data', `${CUTOVER_ANNOTATIONS.by}=${MID}`]);
  }, 300_000);

  afterAll(() => {
    for (const ctx of ['ferry-src', 'ferry-dst'] as const) kubectl(ctx, ['delete', 'namespace', NS, '--wait=false']);
  });

  it('finds the same trees identical, then each planted difference by kind; leaves no pod', async () => {
    const same = await verifyMigration(MID, plan, clients, { hashes: true });
    expect(same.identical).toBe(true);
    expect(same.results).toEqual([expect.objectContaining({ destinationPVC: 'data', identical: true, entries: 7 })]);

    runPod('ferry-dst', 'plant', "set -e; cd /d; printf 'hellO\\n' > sub/deep/new.txt; printf 'y' | dd of=sub/deep/b.txt bs=1 seek=10 conv=notrunc status=none; touch -d @1700000000 sub/deep/b.txt");
    await podDone('ferry-dst', 'plant');
    const planted = await verifyMigration(MID, plan, clients, { hashes: true });
    expect(planted.identical).toBe(false);
    expect(planted.results[0]!.differences.map((d) => `${d.kind} ${d.path}`)).toEqual(['content sub/deep/b.txt', 'extra sub/deep/new.txt']);
    // without content hashes a same-size, same-mtime change is invisible; the added file is not
    const shallow = await verifyMigration(MID, plan, clients, { hashes: false });
    expect(shallow.results[0]!.differences.map((d) => `${d.kind} ${d.path}`)).toEqual(['extra sub/deep/new.txt']);
    for (const ctx of ['ferry-src', 'ferry-dst'] as const) expect(kubectl(ctx, ['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/managed-by=ferry', '-o', 'name'])).toBe('');
  }, 600_000);
});
