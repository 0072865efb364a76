/**
 * Issue 8, items 1, 3, 13, 14, 15 (data loss and dead ends around quiesce), in the kube library and
 * the activity layer, against an in-memory API (test/support/fake-kube.ts) that plays the parts of
 * the StatefulSet controller and of admission that matter here:
 *   1  StatefulSet persistentVolumeClaimRetentionPolicy whenScaled: Delete: PVCs kept through quiesce,
 *      the policy restored exactly, quiesce fails before scaling when the policy cannot be changed;
 *   3  pods Ferry cannot quiesce: discovered, refused by preflight unless unmanagedPods: delete,
 *      deleted and re-checked by checkSourceWriters;
 *   13 Pod Security: preflight compares the namespaces' enforce labels with the security mode; a 403
 *      "violates PodSecurity" is a FerryConfig failure with the label fix, not FerryAuth;
 *   14 StatefulSets / DaemonSets in the middle of a rollout: discovered, refused unless accepted;
 *   15 the pre-quiesce annotation carries the migration id; another migration's is never restored.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { toApplicationFailure } from '../../src/activities';
import { FailureType, type NamespaceDiscovery } from '../../src/core/types';
import { discoverNamespace, pendingRolloutOf } from '../../src/migration/discovery';
import { k8s } from '../../src/k8s/k8s';
import { BASELINE_CAPABILITIES, pendingRolloutsProblem, podSecurityProblem, runPreflight, unmanagedPodsProblem } from '../../src/migration/preflight';
import {
  PRE_QUIESCE_ANNOTATION,
  quiescePatch,
  quiesceWorkloads,
  recordFromAnnotation,
  recordsFromAnnotations,
  unquiescePatch,
  unquiesceWorkloads,
} from '../../src/migration/quiesce';
import { checkSourceWriters } from '../../src/migration/writers';
import { parsePlan } from '../../src/plan/load';
import { PRESERVE_OWNERSHIP_CAPABILITIES } from '../../src/statetransfer/pods/security';
import { FakeKube, mergePatch } from '../support/fake-kube';

const ns = 'shop';
const sts = (replicas: number, policy?: Record<string, string>, extra: Record<string, unknown> = {}): KubernetesObject =>
  ({
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'db', namespace: ns, uid: 'sts-uid' },
    spec: {
      replicas,
      ...(policy ? { persistentVolumeClaimRetentionPolicy: policy } : {}),
      volumeClaimTemplates: [{ metadata: { name: 'data' } }],
      template: { spec: { containers: [{ name: 'db', volumeMounts: [{ name: 'data', mountPath: '/data' }] }] } },
    },
    ...extra,
  }) as KubernetesObject;
const pvc = (name: string): KubernetesObject =>
  ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: ns }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } }, status: { phase: 'Bound' } }) as KubernetesObject;
const deployment = (name: string, replicas: number): KubernetesObject =>
  ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: ns, uid: `${name}-uid` }, spec: { replicas, template: { spec: { containers: [] } } } }) as KubernetesObject;
const podOf = (name: string, claims: string[], owner?: { apiVersion: string; kind: string; name: string; uid?: string }, extra: { readOnly?: boolean; labels?: Record<string, string> } = {}): KubernetesObject =>
  ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      uid: `${name}-uid`,
      ...(extra.labels ? { labels: extra.labels } : {}),
      ...(owner ? { ownerReferences: [{ ...owner, uid: owner.uid ?? `${owner.name}-uid`, controller: true }] } : {}),
    },
    spec: {
      nodeName: 'node-a',
      containers: [{ name: 'c', volumeMounts: claims.map((c, i) => ({ name: `v${i}`, mountPath: `/d${i}` })) }],
      volumes: claims.map((c, i) => ({ name: `v${i}`, persistentVolumeClaim: { claimName: c, ...(extra.readOnly ? { readOnly: true } : {}) } })),
    },
    status: { phase: 'Running' },
  }) as KubernetesObject;
const specOf = (o: KubernetesObject | undefined) => (o as unknown as { spec: Record<string, any> }).spec;
const ref = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: ns, name: 'db' };

/**
 * The StatefulSet controller's PVC auto-deletion (KEP-1847, GA in 1.32), reduced to what quiesce
 * meets: when the stored object's replicas go down while its policy says whenScaled: Delete, the
 * claims of the removed ordinals are deleted.
 */
function statefulSetController(kube: FakeKube): void {
  kube.onPatch = (cur, _patch, next) => {
    if (next.kind !== 'StatefulSet') return;
    const before = specOf(cur).replicas as number;
    const after = specOf(next).replicas as number;
    if (after < before && specOf(next).persistentVolumeClaimRetentionPolicy?.whenScaled === 'Delete') {
      for (let i = after; i < before; i++) void kube.delete({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: ns, name: `data-db-${i}` });
    }
  };
}

describe('item 1: StatefulSet persistentVolumeClaimRetentionPolicy', () => {
  it('whenScaled: Delete: set to Retain before scaling, the PVCs survive quiesce, the policy is restored exactly', async () => {
    const policy = { whenScaled: 'Delete', whenDeleted: 'Retain' };
    const kube = new FakeKube([sts(2, policy), pvc('data-db-0'), pvc('data-db-1')]);
    statefulSetController(kube);
    const records = await quiesceWorkloads(kube.client(), [ref], { migrationId: 'm1' });
    expect(kube.find('PersistentVolumeClaim', ns, 'data-db-0')).toBeDefined();
    expect(kube.find('PersistentVolumeClaim', ns, 'data-db-1')).toBeDefined();
    expect(specOf(kube.find('StatefulSet', ns, 'db'))).toMatchObject({ replicas: 0, persistentVolumeClaimRetentionPolicy: { whenScaled: 'Retain', whenDeleted: 'Retain' } });
    expect(records[0]).toMatchObject({ replicas: 2, pvcRetentionPolicy: policy, migrationId: 'm1', changed: true });
    // The policy patch comes first and does not scale; the scale patch comes after.
    const patches = kube.calls.filter((c) => c.startsWith('patch'));
    expect(patches).toHaveLength(2);
    expect(patches[0]).toMatch(/"persistentVolumeClaimRetentionPolicy":\{"whenScaled":"Retain","whenDeleted":"Retain"\}/);
    expect(patches[0]).not.toMatch(/"replicas":0/);
    expect(patches[1]).toMatch(/"replicas":0/);
    // The annotation holds the original policy too (a rollback after a crash restores it from there).
    expect(JSON.parse(kube.find('StatefulSet', ns, 'db')!.metadata!.annotations![PRE_QUIESCE_ANNOTATION]!)).toMatchObject({ pvcRetentionPolicy: policy, replicas: 2 });

    await unquiesceWorkloads(kube.client(), records);
    const restored = kube.find('StatefulSet', ns, 'db')!;
    expect(specOf(restored)).toMatchObject({ replicas: 2, persistentVolumeClaimRetentionPolicy: policy });
    expect(restored.metadata?.annotations ?? {}).not.toHaveProperty(PRE_QUIESCE_ANNOTATION);
  });

  it('whenDeleted: Delete alone is also held at Retain while quiesced, and restored', () => {
    const o = sts(3, { whenScaled: 'Retain', whenDeleted: 'Delete' });
    const q = quiescePatch(o, 'm1');
    expect(q.guard).toEqual({ spec: { persistentVolumeClaimRetentionPolicy: { whenScaled: 'Retain', whenDeleted: 'Retain' } }, metadata: q.patch!.metadata });
    const quiesced = mergePatch(mergePatch(o, q.guard), q.patch);
    const u = unquiescePatch(quiesced, q.record);
    expect(u.patch!.spec).toEqual({ replicas: 3, persistentVolumeClaimRetentionPolicy: { whenScaled: 'Retain', whenDeleted: 'Delete' } });
  });

  it('without a Delete policy nothing changes: no guard, no policy in any patch', () => {
    const q = quiescePatch(sts(2), 'm1');
    expect(q.guard).toBeUndefined();
    expect(q.record.pvcRetentionPolicy).toBeUndefined();
    expect(q.patch!.spec).toEqual({ replicas: 0 });
  });

  it('the API refusing the policy change fails quiesce before ANY workload is scaled', async () => {
    const kube = new FakeKube([deployment('web', 3), sts(2, { whenScaled: 'Delete', whenDeleted: 'Delete' }), pvc('data-db-0'), pvc('data-db-1')]);
    kube.onPatch = (_cur, patch) => {
      if (JSON.stringify(patch).includes('persistentVolumeClaimRetentionPolicy')) throw new k8s.ApiException(403, 'forbidden', JSON.stringify({ kind: 'Status', message: 'denied by policy' }), {});
    };
    const deploymentRef = { apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name: 'web' };
    await expect(quiesceWorkloads(kube.client(), [deploymentRef, ref], { migrationId: 'm1' })).rejects.toThrow(/denied by policy/);
    expect(specOf(kube.find('StatefulSet', ns, 'db')).replicas).toBe(2);
    expect(specOf(kube.find('Deployment', ns, 'web')).replicas).toBe(3);
  });

  it('an admission webhook reverting the policy: quiesce fails with the fix, the StatefulSet is not scaled', async () => {
    const kube = new FakeKube([sts(2, { whenScaled: 'Delete' }), pvc('data-db-0'), pvc('data-db-1')]);
    kube.onPatch = (_cur, _patch, next) => mergePatch(next, { spec: { persistentVolumeClaimRetentionPolicy: { whenScaled: 'Delete' } } });
    await expect(quiesceWorkloads(kube.client(), [ref], { migrationId: 'm1' })).rejects.toThrow(/still \{"whenScaled":"Delete".*so it was not scaled.*Retain/);
    expect(specOf(kube.find('StatefulSet', ns, 'db')).replicas).toBe(2);
  });

  it('a rollback after a quiesce that failed after the guard restores the policy from the annotation', async () => {
    const kube = new FakeKube([sts(2, { whenScaled: 'Delete' }), pvc('data-db-0')]);
    let n = 0;
    kube.onPatch = () => {
      if (++n === 2) throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
    };
    await expect(quiesceWorkloads(kube.client(), [ref], { migrationId: 'm1' })).rejects.toThrow(/connection reset/);
    expect(specOf(kube.find('StatefulSet', ns, 'db')).persistentVolumeClaimRetentionPolicy.whenScaled).toBe('Retain');
    const fromAnnotations = await recordsFromAnnotations(kube.client(), [ref], [], { migrationId: 'm1' });
    await unquiesceWorkloads(kube.client(), fromAnnotations);
    expect(specOf(kube.find('StatefulSet', ns, 'db'))).toMatchObject({ replicas: 2, persistentVolumeClaimRetentionPolicy: { whenScaled: 'Delete', whenDeleted: 'Retain' } });
  });
});

describe('item 15: the pre-quiesce annotation belongs to one migration', () => {
  const leftByKeepSourceQuiesced = (replicasNow: number) =>
    deployment('web', replicasNow) as KubernetesObject & { metadata: { annotations?: Record<string, string> } };
  const annotate = (o: KubernetesObject, value: object) => {
    o.metadata!.annotations = { [PRE_QUIESCE_ANNOTATION]: JSON.stringify(value) };
    return o;
  };

  it('quiesce writes the migration id into the annotation (keepSourceQuiesced leaves it documented)', () => {
    const q = quiescePatch(deployment('web', 3), 'mig-a');
    const stored = JSON.parse((q.patch!.metadata as { annotations: Record<string, string> }).annotations[PRE_QUIESCE_ANNOTATION]!);
    expect(stored).toMatchObject({ migrationId: 'mig-a', replicas: 3, changed: true });
  });

  it.each([
    ['another migration', { replicas: 5, changed: true, migrationId: 'mig-a' }],
    ['an older Ferry (no id)', { replicas: 5, changed: true }],
  ])('an annotation of %s is ignored: the current state is recorded and the annotation replaced', (_what, stale) => {
    // mig-a kept the source quiesced; the operator scaled it up by hand to 2 since.
    const o = annotate(leftByKeepSourceQuiesced(2), stale);
    const q = quiescePatch(o, 'mig-b');
    expect(q.record).toMatchObject({ replicas: 2, changed: true, migrationId: 'mig-b' });
    expect(q.staleAnnotation).toMatch(/mig-a|unknown migration/);
    const quiesced = mergePatch(o, q.patch);
    expect(JSON.parse(quiesced.metadata!.annotations![PRE_QUIESCE_ANNOTATION]!)).toMatchObject({ replicas: 2, migrationId: 'mig-b' });
    expect(specOf(mergePatch(quiesced, unquiescePatch(quiesced, q.record).patch)).replicas).toBe(2);
  });

  it('a workload another migration left quiesced stays quiesced, and its annotation stays', () => {
    const o = annotate(leftByKeepSourceQuiesced(0), { replicas: 5, changed: true, migrationId: 'mig-a' });
    const q = quiescePatch(o, 'mig-b');
    expect(q.record).toMatchObject({ replicas: 0, changed: false });
    expect(q.patch).toBeUndefined();
    expect(unquiescePatch(o, q.record).patch).toBeUndefined();
  });

  it('restoring from annotations ignores another migration\'s: no stale replica count comes back', async () => {
    const kube = new FakeKube([annotate(leftByKeepSourceQuiesced(0), { replicas: 5, changed: true, migrationId: 'mig-a' })]);
    const wref = { apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name: 'web' };
    expect(recordFromAnnotation(kube.find('Deployment', ns, 'web')!, 'mig-b')).toBeUndefined();
    const records = await recordsFromAnnotations(kube.client(), [wref], [], { migrationId: 'mig-b' });
    expect(records).toEqual([]);
    await unquiesceWorkloads(kube.client(), records);
    expect(specOf(kube.find('Deployment', ns, 'web')).replicas).toBe(0);
    expect(recordFromAnnotation(kube.find('Deployment', ns, 'web')!, 'mig-a')).toMatchObject({ replicas: 5 });
  });
});

const plan = (extra: Record<string, unknown> = {}) =>
  parsePlan({ source: { context: 'src' }, destination: { context: 'dst' }, namespaces: [ns], ...extra });
const namespaceObj = (name: string, labels: Record<string, string> = {}): KubernetesObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const storageClass: KubernetesObject = { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'standard', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } } } as KubernetesObject;

describe('item 3: pods Ferry cannot quiesce', () => {
  const objects = () => [
    namespaceObj(ns),
    pvc('data'),
    pvc('logs'),
    deployment('web', 1),
    { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web-1', namespace: ns, uid: 'web-1-uid', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'web-uid', controller: true }] }, spec: { replicas: 1 } } as KubernetesObject,
    podOf('web-1-abc', ['data'], { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1' }),
    podOf('debug-shell', ['data', 'logs']),
    podOf('pg-0', ['logs'], { apiVersion: 'acid.zalan.do/v1', kind: 'postgresql', name: 'pg' }),
    podOf('reader', ['data'], undefined, { readOnly: true }),
    podOf('ferry-client-old', ['data'], undefined, { labels: { 'app.kubernetes.io/managed-by': 'ferry' } }),
  ];

  it('discovery lists bare pods and pods of unknown controllers (writable mounts, not Ferry\'s own)', async () => {
    const kube = new FakeKube(objects());
    const d = await discoverNamespace(kube.client(), { mapping: plan().namespaces[0]!, plan: plan() });
    expect(d.workloads.map((w) => w.name)).toEqual(['web']);
    expect(d.unmanagedPods).toEqual([
      { name: 'debug-shell', pvcs: ['data', 'logs'] },
      { name: 'pg-0', pvcs: ['logs'], owner: 'postgresql pg' },
    ]);
  });

  it('preflight refuses them by default, naming each pod; unmanagedPods: delete (or quiesce: false) accepts them', async () => {
    const kube = new FakeKube(objects());
    const d = await discoverNamespace(kube.client(), { mapping: plan().namespaces[0]!, plan: plan() });
    const problem = unmanagedPodsProblem(plan(), d);
    expect(problem).toMatch(/2 pods in shop that Ferry cannot quiesce mount source PVCs.*pod debug-shell \(no controller; mounts data, logs\); pod pg-0 \(controlled by postgresql pg; mounts logs\).*unmanagedPods: delete/);
    expect(unmanagedPodsProblem(plan({ unmanagedPods: 'delete' }), d)).toBeUndefined();
    expect(unmanagedPodsProblem(plan({ quiesce: false }), d)).toBeUndefined();
    const problems = await runPreflight({ migrationId: 'm1', plan: plan(), discoveries: [d], source: { client: kube.client() }, destination: { client: new FakeKube([storageClass]).client() } });
    expect(problems.map((p) => p.message).join('\n')).toMatch(/pod debug-shell/);
  });

  it('checkSourceWriters: reports every writer; with delete, deletes the unmanaged ones only and checks again', async () => {
    const kube = new FakeKube(objects());
    const kept = await checkSourceWriters(kube.client(), ns, ['data', 'logs'], { deleteUnmanaged: false });
    expect(kept.deleted).toEqual([]);
    expect(kept.pods.map((p) => p.name)).toEqual(['debug-shell', 'pg-0', 'web-1-abc']);
    expect(kept.pods.find((p) => p.name === 'web-1-abc')!.owner).toBe('Deployment shop/web (not quiesced)');

    const after = await checkSourceWriters(kube.client(), ns, ['data', 'logs'], { deleteUnmanaged: true, intervalSeconds: 0.01 });
    expect(after.deleted).toEqual(['debug-shell', 'pg-0']);
    expect(after.pods.map((p) => p.name)).toEqual(['web-1-abc']);
    expect(kube.find('Pod', ns, 'reader')).toBeDefined();
    expect(kube.find('Pod', ns, 'ferry-client-old')).toBeDefined();
  });
});

describe('item 13: Pod Security admission', () => {
  it('podSecurityProblem: preserve-ownership is refused by restricted, admitted by baseline and privileged; restricted mode always passes', () => {
    expect(podSecurityProblem('preserve-ownership', 'restricted', 'destination', 'shop')).toMatch(
      /destination namespace shop enforces the "restricted" Pod Security Standard.*kubectl label --overwrite namespace shop pod-security.kubernetes.io\/enforce=baseline.*security.mode: restricted/,
    );
    expect(podSecurityProblem('preserve-ownership', 'baseline', 'source', 'shop')).toBeUndefined();
    expect(podSecurityProblem('preserve-ownership', 'privileged', 'source', 'shop')).toBeUndefined();
    expect(podSecurityProblem('preserve-ownership', undefined, 'source', 'shop')).toBeUndefined();
    expect(podSecurityProblem('restricted', 'restricted', 'source', 'shop')).toBeUndefined();
    // The capabilities preserve-ownership adds are all within baseline.
    expect(PRESERVE_OWNERSHIP_CAPABILITIES.filter((c) => !BASELINE_CAPABILITIES.includes(c))).toEqual([]);
  });

  it('runPreflight reads both namespaces\' enforce labels', async () => {
    const p = plan({ security: { mode: 'preserve-ownership' } });
    const d: NamespaceDiscovery = { sourceNamespace: ns, destinationNamespace: ns, pvcs: [], workloads: [] };
    const src = new FakeKube([namespaceObj(ns, { 'pod-security.kubernetes.io/enforce': 'baseline' })]);
    const dst = new FakeKube([storageClass, namespaceObj(ns, { 'pod-security.kubernetes.io/enforce': 'restricted' })]);
    const problems = await runPreflight({ migrationId: 'm1', plan: p, discoveries: [d], source: { client: src.client() }, destination: { client: dst.client() } });
    const psa = problems.filter((x) => /Pod Security/.test(x.message));
    expect(psa).toHaveLength(1);
    expect(psa[0]!.message).toMatch(/^destination namespace shop enforces the "restricted"/);
    const none = await runPreflight({ migrationId: 'm1', plan: plan(), discoveries: [d], source: { client: src.client() }, destination: { client: dst.client() } });
    expect(none.filter((x) => /Pod Security/.test(x.message))).toEqual([]);
  });

  it('a 403 "violates PodSecurity" is FerryConfig with the namespace label fix, not FerryAuth with kubeconfig advice', () => {
    const message = 'pods "ferry-server-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)';
    const f = toApplicationFailure(new k8s.ApiException(403, 'Forbidden', JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message }), {}), 'createServer');
    expect(f.type).toBe(FailureType.Config);
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/Pod Security admission rejected a transfer pod: pods "ferry-server-x" is forbidden: violates PodSecurity/);
    expect(f.message).toMatch(/pod-security.kubernetes.io\/enforce=baseline/);
    expect(f.message).not.toMatch(/kubeconfig credentials/);
    // A plain RBAC 403 stays FerryAuth.
    const rbac = toApplicationFailure(new k8s.ApiException(403, 'Forbidden', JSON.stringify({ kind: 'Status', message: 'pods is forbidden: User "x" cannot create resource "pods"' }), {}), 'createServer');
    expect(rbac.type).toBe(FailureType.Auth);
  });
});

describe('item 14: workloads in the middle of a rollout', () => {
  const status = (s: Record<string, unknown>) => ({ status: s });

  it('pendingRolloutOf: partitioned StatefulSet, OnDelete StatefulSet and DaemonSet lagging; settled ones are fine', () => {
    const partitioned = sts(3, undefined, status({ replicas: 3, currentReplicas: 2, currentRevision: 'db-5d4', updateRevision: 'db-7f9' }));
    specOf(partitioned).updateStrategy = { type: 'RollingUpdate', rollingUpdate: { partition: 2 } };
    expect(pendingRolloutOf(partitioned)).toBe('2 of 3 pods run revision db-5d4 while the template is db-7f9 (partition 2); after quiesce every pod comes back on db-7f9');
    const onDelete = sts(2, undefined, status({ replicas: 2, currentReplicas: 2, updatedReplicas: 0, currentRevision: 'db-1', updateRevision: 'db-2' }));
    specOf(onDelete).updateStrategy = { type: 'OnDelete' };
    expect(pendingRolloutOf(onDelete)).toMatch(/updateStrategy OnDelete/);
    expect(pendingRolloutOf(sts(2, undefined, status({ currentRevision: 'db-2', updateRevision: 'db-2' })))).toBeUndefined();
    const ds = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent', namespace: ns }, spec: { updateStrategy: { type: 'OnDelete' } }, status: { desiredNumberScheduled: 3, updatedNumberScheduled: 1 } } as KubernetesObject;
    expect(pendingRolloutOf(ds)).toBe('2 of 3 pods run an older template (updateStrategy OnDelete); after quiesce every pod comes back on the current template');
    expect(pendingRolloutOf({ ...ds, status: { desiredNumberScheduled: 3, updatedNumberScheduled: 3 } } as KubernetesObject)).toBeUndefined();
  });

  it('discovery reports them; preflight refuses unless acceptRevisionChange: true', async () => {
    const partitioned = sts(3, undefined, status({ replicas: 3, currentReplicas: 2, currentRevision: 'db-5d4', updateRevision: 'db-7f9' }));
    const kube = new FakeKube([namespaceObj(ns), partitioned, pvc('data-db-0')]);
    const d = await discoverNamespace(kube.client(), { mapping: plan().namespaces[0]!, plan: plan() });
    expect(d.pendingRollouts).toEqual([{ workload: ref, detail: expect.stringMatching(/2 of 3 pods run revision db-5d4/) }]);
    expect(pendingRolloutsProblem(plan(), d)).toMatch(/StatefulSet shop\/db: 2 of 3 pods run revision db-5d4 .*acceptRevisionChange: true/);
    expect(pendingRolloutsProblem(plan({ acceptRevisionChange: true }), d)).toBeUndefined();
    expect(pendingRolloutsProblem(plan({ quiesce: false }), d)).toBeUndefined();
  });
});

describe('plan fields', () => {
  it('unmanagedPods: fail | delete; acceptRevisionChange: boolean', () => {
    expect(plan({ unmanagedPods: 'delete', acceptRevisionChange: true })).toMatchObject({ unmanagedPods: 'delete', acceptRevisionChange: true });
    expect(() => plan({ unmanagedPods: 'ignore' })).toThrow(/unmanagedPods/);
  });
});
