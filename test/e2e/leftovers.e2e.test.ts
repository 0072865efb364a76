/**
 * `ferry cleanup`'s cluster side on the lab (issue 8 item 9): what a dead migration left — a source
 * Deployment quiesced by Ferry (replicas 0, ferry.dev/pre-quiesce annotation) and transfer objects
 * labelled with the migration in both clusters — is found by its labels cluster-wide, the workload is
 * restored (or left down when the plan kept the source quiesced and the namespace cut over, or when
 * another running migration uses the namespace), and the objects are deleted. PVCs stay.
 * Namespaces: w-lo-<run> in both clusters, deleted afterwards. No Temporal needed (the CLI's checks
 * against Temporal are in test/workflows/cli.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { KubeClient } from '../../src/k8s/client';
import { clearCutoverMarks, CUTOVER_ANNOTATIONS, cutoverMarkOf, markCutover } from '../../src/migration/destination';
import { kubeMigrationClusters } from '../../src/migration/leftovers';
import { PRE_QUIESCE_ANNOTATION, quiesceWorkloads } from '../../src/migration/quiesce';
import { parsePlan } from '../../src/plan/load';
import { migrationKey, objectLabels } from '../../src/statetransfer/names';
import { kubectl, LAB_KUBECONFIG } from '../../hack/e2e/lib';

function lab(): string | undefined {
  if (!existsSync(LAB_KUBECONFIG)) return `no lab kubeconfig at ${LAB_KUBECONFIG}`;
  for (const c of ['ferry-src', 'ferry-dst']) {
    const r = spawnSync('kubectl', ['--kubeconfig', LAB_KUBECONFIG, '--context', c, 'get', 'nodes', '-o', 'name'], { encoding: 'utf8', timeout: 30000 });
    if (r.status !== 0) return `cluster ${c} not reachable (start the lab: bash hack/lab/lab.sh up)`;
  }
  return undefined;
}
const unavailable = lab();
if (unavailable && process.env.FERRY_REQUIRE_LAB === '1') throw new Error(`FERRY_REQUIRE_LAB=1 but the lab is not available: ${unavailable}`);
if (unavailable) console.warn(`SKIPPED leftovers e2e: ${unavailable}`);
const labDescribe = unavailable ? describe.skip : describe;

jest.setTimeout(180_000);

const RUN = Math.random().toString(36).slice(2, 7);
const NS = `w-lo-${RUN}`;
const ID = `w-lo-mig-${RUN}`;

const replicas = () => Number(kubectl('ferry-src', ['-n', NS, 'get', 'deployment', 'web', '-o', 'jsonpath={.spec.replicas}']));
const annotation = () => kubectl('ferry-src', ['-n', NS, 'get', 'deployment', 'web', '-o', 'json']).includes(PRE_QUIESCE_ANNOTATION);

function transferObjects(ctx: 'ferry-src' | 'ferry-dst'): string {
  const labels = objectLabels(ID, 'server');
  const meta = (kind: string, name: string) => ({ apiVersion: 'v1', kind, metadata: { name, namespace: NS, labels } });
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { ...meta('ConfigMap', `ferry-${migrationKey(ID)}-conf`), data: { a: 'b' } },
      { ...meta('Secret', `ferry-${migrationKey(ID)}-creds`), stringData: { a: 'b' } },
    ],
  });
}

labDescribe('ferry cleanup on the lab', () => {
  const src = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' });
  const dst = KubeClient.fromOptions({ kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' });
  const clusters = kubeMigrationClusters(src, dst);
  const plan = (extra: Record<string, unknown> = {}) =>
    parsePlan({ source: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-src' }, destination: { kubeconfig: LAB_KUBECONFIG, context: 'ferry-dst' }, namespaces: [NS], ...extra });

  beforeAll(() => {
    for (const ctx of ['ferry-src', 'ferry-dst'] as const) kubectl(ctx, ['create', 'namespace', NS]);
    kubectl(
      'ferry-src',
      ['-n', NS, 'apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '16Mi' } } } },
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'web' },
            spec: {
              replicas: 2,
              selector: { matchLabels: { app: 'web' } },
              template: {
                metadata: { labels: { app: 'web' } },
                spec: {
                  containers: [{ name: 'web', image: 'lab/workload:latest', imagePullPolicy: 'Never', command: ['sleep', '3600'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
                  volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
                },
              },
            },
          },
        ],
      }),
    );
    kubectl('ferry-src', ['apply', '-f', '-'], transferObjects('ferry-src'));
    kubectl('ferry-dst', ['apply', '-f', '-'], transferObjects('ferry-dst'));
    kubectl(
      'ferry-dst',
      ['-n', NS, 'apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'data', annotations: { [CUTOVER_ANNOTATIONS.by]: ID, [CUTOVER_ANNOTATIONS.at]: new Date().toISOString() } },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '16Mi' } } },
      }),
    );
  });

  afterAll(() => {
    for (const ctx of ['ferry-src', 'ferry-dst'] as const) kubectl(ctx, ['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']);
  });

  test('finds the leftovers by label, restores the quiesced source only when safe, deletes the transfer objects', async () => {
    await quiesceWorkloads(src, [{ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: 'web' }], { migrationId: ID });
    expect(replicas()).toBe(0);
    expect(annotation()).toBe(true);

    const found = (await clusters.ferryObjects()).filter((g) => g.key === migrationKey(ID));
    expect(found.sort((a, b) => a.side.localeCompare(b.side))).toEqual([
      { key: migrationKey(ID), side: 'destination', namespace: NS, count: 2 },
      { key: migrationKey(ID), side: 'source', namespace: NS, count: 2 },
    ]);

    // Another running migration uses the namespace: left as it is.
    expect(await clusters.restoreQuiesced(ID, plan(), new Map([[NS, 'another running migration uses it']]))).toEqual({ restored: [], notes: [expect.stringMatching(/another running migration uses it/)] });
    // The namespace cut over (the CLI read it from Temporal, see src/cli/cleanup.ts namespaceVerdict): stays down.
    expect(await clusters.restoreQuiesced(ID, plan({ keepSourceQuiesced: true }), new Map([[NS, 'cut over with keepSourceQuiesced: true; its source workloads stay down']]))).toEqual({
      restored: [],
      notes: [expect.stringMatching(/keepSourceQuiesced: true; its source workloads stay down/)],
    });
    expect(replicas()).toBe(0);
    // Otherwise restored from the annotation.
    const restored = await clusters.restoreQuiesced(ID, plan(), new Map());
    expect(restored.restored).toEqual([`Deployment ${NS}/web`]);
    expect(replicas()).toBe(2);
    expect(annotation()).toBe(false);

    const report = await clusters.cleanup(ID, plan());
    expect(report).toEqual({ source: 2, destination: 2, remaining: 0 });
    expect((await clusters.ferryObjects()).filter((g) => g.key === migrationKey(ID))).toEqual([]);
    // PVCs are never touched.
    expect(kubectl('ferry-src', ['-n', NS, 'get', 'pvc', 'data', '-o', 'name']).trim()).toBe('persistentvolumeclaim/data');
    expect(kubectl('ferry-dst', ['-n', NS, 'get', 'pvc', 'data', '-o', 'name']).trim()).toBe('persistentvolumeclaim/data');
  });

  test('the cutover mark: written after a final sync, read by preflight, removed on rollback (issue 8 item 2)', async () => {
    const pvc = async () => dst.get<import('@kubernetes/client-node').V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: NS, name: 'data' });
    await markCutover(dst, 'w-other-migration', NS, 'data', new Date('2026-01-02T03:04:05Z'));
    expect(cutoverMarkOf(await pvc())).toEqual({ by: 'w-other-migration', at: '2026-01-02T03:04:05.000Z' });
    expect(await clearCutoverMarks(dst, ID, NS)).toEqual([]); // another migration's mark stays
    await markCutover(dst, ID, NS, 'data');
    expect(cutoverMarkOf(await pvc())?.by).toBe(ID);
    expect(await clearCutoverMarks(dst, ID, NS)).toEqual(['data']);
    expect(cutoverMarkOf(await pvc())).toBeUndefined();
    await expect(markCutover(dst, ID, NS, 'gone')).rejects.toThrow(/disappeared right after its final sync/);
  });
});
