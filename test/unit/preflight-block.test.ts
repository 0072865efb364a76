/**
 * Preflight of volumeMode Block PVCs (issue 13 §2), against the in-memory API of
 * test/support/fake-kube.ts: with transfer rsync (which copies devices) a Bound block PVC is no
 * problem; with rclone (files only) it is refused, naming the PVC and the way out.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { discoverNamespace } from '../../src/migration/discovery';
import { runPreflight } from '../../src/migration/preflight';
import { parsePlan } from '../../src/plan/load';
import { FakeKube } from '../support/fake-kube';

const ns = 'vm';
const blockPVC = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'disk', namespace: ns }, spec: { accessModes: ['ReadWriteOnce'], volumeMode: 'Block', resources: { requests: { storage: '1Gi' } } }, status: { phase: 'Bound' } } as KubernetesObject;
const storageClass = { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'standard', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } } } as KubernetesObject;

async function problemsFor(transfer: 'rsync' | 'rclone') {
  const p = parsePlan({ source: { context: 'src' }, destination: { context: 'dst' }, namespaces: [ns], transfer, ...(transfer === 'rclone' ? { transport: 'null', endpoint: { type: 'LoadBalancer' } } : {}) });
  const kube = new FakeKube([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } as KubernetesObject, blockPVC]);
  const d = await discoverNamespace(kube.client(), { mapping: p.namespaces[0]!, plan: p });
  expect(d.pvcs.map((x) => [x.name, x.volumeMode])).toEqual([['disk', 'Block']]);
  const problems = await runPreflight({ migrationId: 'm1', plan: p, discoveries: [d], source: { client: kube.client() }, destination: { client: new FakeKube([storageClass]).client() } });
  return problems.filter((x) => x.subject === `pvc ${ns}/disk`);
}

describe('preflight of a block PVC', () => {
  it('passes with rsync, which copies the device', async () => {
    expect(await problemsFor('rsync')).toEqual([]);
  });

  it('is refused with rclone, which copies files', async () => {
    expect(await problemsFor('rclone')).toEqual([{ subject: `pvc ${ns}/disk`, message: expect.stringMatching(/^has volumeMode Block: transfer rclone copies files, not devices; use transfer rsync/) }]);
  });
});
