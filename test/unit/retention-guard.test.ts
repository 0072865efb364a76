/**
 * Review finding A3 on issue 8 (the StatefulSet retention guard held only at the moment of the scale),
 * in the kube library against the in-memory API of test/support/fake-kube.ts:
 * - waitForQuiesced re-reads the quiesced StatefulSets on every check and fails as soon as one's
 *   persistentVolumeClaimRetentionPolicy deletes PVCs again (an operator reverted it after the scale);
 * - checkSourceWriters, right before the final sync (retentionOf), fails the same way;
 * - preflight refuses a Delete-policy StatefulSet whose controller is a kind Ferry does not manage,
 *   unless the plan says acceptOperatorRetentionPolicy: true.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { discoverNamespace } from '../../src/migration/discovery';
import { operatorRetentionProblem, runPreflight } from '../../src/migration/preflight';
import { quiesceWorkloads, waitForQuiesced } from '../../src/migration/quiesce';
import { checkSourceWriters } from '../../src/migration/writers';
import { parsePlan } from '../../src/plan/load';
import { FakeKube, mergePatch } from '../support/fake-kube';

const ns = 'shop';
const ref = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: ns, name: 'db' };
const operator = { apiVersion: 'acid.zalan.do/v1', kind: 'postgresql', name: 'pg', uid: 'pg-uid', controller: true };
const sts = (replicas: number, policy?: Record<string, string>, owner?: Record<string, unknown>): KubernetesObject =>
  ({
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'db', namespace: ns, uid: 'sts-uid', ...(owner ? { ownerReferences: [owner] } : {}) },
    spec: {
      replicas,
      ...(policy ? { persistentVolumeClaimRetentionPolicy: policy } : {}),
      volumeClaimTemplates: [{ metadata: { name: 'data' } }],
      template: { spec: { containers: [{ name: 'db', volumeMounts: [{ name: 'data', mountPath: '/data' }] }] } },
    },
  }) as KubernetesObject;
const pvc = (name: string): KubernetesObject =>
  ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: ns }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } }, status: { phase: 'Bound' } }) as KubernetesObject;
const namespaceObj: KubernetesObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } };
const storageClass = { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'standard', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } } } as KubernetesObject;
const plan = (extra: Record<string, unknown> = {}) => parsePlan({ source: { context: 'src' }, destination: { context: 'dst' }, namespaces: [ns], ...extra });

/** What an operator reconciling the StatefulSet from its own spec does after Ferry's scale: policy Delete again. */
function operatorReverts(kube: FakeKube, policy: Record<string, string>): void {
  kube.put(mergePatch(kube.find('StatefulSet', ns, 'db')!, { spec: { persistentVolumeClaimRetentionPolicy: policy } }));
}

describe('A3: the retention policy is re-checked after the scale', () => {
  it('waitForQuiesced fails at once, naming the StatefulSet and what to do, when the policy deletes PVCs again', async () => {
    const kube = new FakeKube([sts(2, { whenScaled: 'Delete' }, operator), pvc('data-db-0'), pvc('data-db-1')]);
    await quiesceWorkloads(kube.client(), [ref], { migrationId: 'm1' });
    // Held: the wait ends (no pod runs).
    await expect(waitForQuiesced(kube.client(), [ref], { migrationId: 'm1', intervalSeconds: 0.01, timeoutSeconds: 1 })).resolves.toBeUndefined();
    operatorReverts(kube, { whenScaled: 'Delete', whenDeleted: 'Retain' });
    await expect(waitForQuiesced(kube.client(), [ref], { migrationId: 'm1', intervalSeconds: 0.01, timeoutSeconds: 1 })).rejects.toThrow(
      /StatefulSet shop\/db: its persistentVolumeClaimRetentionPolicy is \{"whenScaled":"Delete","whenDeleted":"Retain"\} again while Ferry holds it quiesced \(.*its controller postgresql pg.*\).*kubectl get pvc -n shop.*keep whenScaled and whenDeleted at Retain/,
    );
  });

  it('whenDeleted: Delete set back alone is caught too; a StatefulSet already at 0 before the migration (not guarded) is not judged', async () => {
    const kube = new FakeKube([sts(2, { whenDeleted: 'Delete' }), pvc('data-db-0')]);
    await quiesceWorkloads(kube.client(), [ref], { migrationId: 'm1' });
    operatorReverts(kube, { whenDeleted: 'Delete' });
    await expect(waitForQuiesced(kube.client(), [ref], { migrationId: 'm1', intervalSeconds: 0.01, timeoutSeconds: 1 })).rejects.toThrow(/"whenDeleted":"Delete"/);

    const idle = new FakeKube([sts(0, { whenDeleted: 'Delete' })]);
    const records = await quiesceWorkloads(idle.client(), [ref], { migrationId: 'm1' });
    expect(records[0]!.changed).toBe(false);
    await expect(waitForQuiesced(idle.client(), [ref], { migrationId: 'm1', intervalSeconds: 0.01, timeoutSeconds: 1 })).resolves.toBeUndefined();
  });

  it('checkSourceWriters right before the final sync (retentionOf) fails on a reverted policy; the call after it does not judge it', async () => {
    const kube = new FakeKube([sts(2, { whenScaled: 'Delete' }, operator), pvc('data-db-0'), pvc('data-db-1')]);
    await quiesceWorkloads(kube.client(), [ref], { migrationId: 'm1' });
    await expect(checkSourceWriters(kube.client(), ns, ['data-db-0', 'data-db-1'], { deleteUnmanaged: false, retentionOf: 'm1' })).resolves.toEqual({ pods: [], deleted: [] });
    operatorReverts(kube, { whenScaled: 'Delete' });
    kube.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'debug', namespace: ns, uid: 'debug-uid' }, spec: { containers: [], volumes: [{ name: 'v', persistentVolumeClaim: { claimName: 'data-db-0' } }] }, status: { phase: 'Running' } } as KubernetesObject);
    await expect(checkSourceWriters(kube.client(), ns, ['data-db-0', 'data-db-1'], { deleteUnmanaged: true, retentionOf: 'm1' })).rejects.toThrow(
      /StatefulSet shop\/db: its persistentVolumeClaimRetentionPolicy is \{"whenScaled":"Delete","whenDeleted":"Retain"\} again/,
    );
    // Checked before anything is deleted.
    expect(kube.calls.filter((c) => c.startsWith('delete'))).toEqual([]);
    expect(kube.find('Pod', ns, 'debug')).toBeDefined();
    await expect(checkSourceWriters(kube.client(), ns, ['data-db-0', 'data-db-1'], { deleteUnmanaged: false })).resolves.toEqual({ pods: [{ name: 'debug', pvcs: ['data-db-0'] }], deleted: [] });
  });
});

describe('A3: preflight refuses a Delete-policy StatefulSet an operator controls', () => {
  const preflight = async (objects: KubernetesObject[], p = plan()) => {
    const kube = new FakeKube([namespaceObj, ...objects]);
    const d = await discoverNamespace(kube.client(), { mapping: p.namespaces[0]!, plan: p });
    const problems = await runPreflight({ migrationId: 'm1', plan: p, discoveries: [d], source: { client: kube.client() }, destination: { client: new FakeKube([storageClass]).client() } });
    return problems.filter((x) => /persistentVolumeClaimRetentionPolicy/.test(x.message));
  };

  it('refused with the controller named and the ways out; acceptOperatorRetentionPolicy: true or quiesce: false accept it', async () => {
    const objects = [sts(2, { whenScaled: 'Delete', whenDeleted: 'Retain' }, operator), pvc('data-db-0')];
    const refused = await preflight(objects);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toEqual({
      subject: 'namespaces[0]',
      message: expect.stringMatching(
        /^StatefulSet shop\/db has persistentVolumeClaimRetentionPolicy \{"whenScaled":"Delete","whenDeleted":"Retain"\} and is controlled by postgresql pg \(acid.zalan.do\/v1\), which Ferry does not manage: .*Set whenScaled and whenDeleted to Retain in postgresql pg.*quiesce: false.*acceptOperatorRetentionPolicy: true/,
      ),
    });
    expect(await preflight(objects, plan({ acceptOperatorRetentionPolicy: true }))).toEqual([]);
    expect(await preflight(objects, plan({ quiesce: false }))).toEqual([]);
  });

  it('no foreign controller, or a Retain policy: nothing to refuse', async () => {
    expect(await preflight([sts(2, { whenScaled: 'Delete' }), pvc('data-db-0')])).toEqual([]);
    expect(await preflight([sts(2, { whenScaled: 'Retain', whenDeleted: 'Retain' }, operator), pvc('data-db-0')])).toEqual([]);
    expect(operatorRetentionProblem(plan(), sts(2, undefined, operator))).toBeUndefined();
    expect(operatorRetentionProblem(plan(), sts(2, { whenDeleted: 'Delete' }, operator))).toMatch(/controlled by postgresql pg/);
  });

  it('the plan field is a boolean', () => {
    expect(plan({ acceptOperatorRetentionPolicy: true }).acceptOperatorRetentionPolicy).toBe(true);
    expect(() => plan({ acceptOperatorRetentionPolicy: 'yes' })).toThrow(/acceptOperatorRetentionPolicy/);
  });
});
