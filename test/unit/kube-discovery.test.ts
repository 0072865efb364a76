/**
 * The pure part of discovery: owner resolution through ownerReferences, PVC usage (running pods,
 * templates of scaled-down workloads, StatefulSet claim templates, CronJobs), identity, storage
 * mapping and capacity.
 */
import type { KubernetesObject, V1PersistentVolumeClaim, V1Pod, V1StorageClass } from '@kubernetes/client-node';
import {
  defaultStorageClassName,
  mapAccessModes,
  mapStorageClass,
  pvcCapacity,
  pvcInfo,
  pvcUsage,
  selectByNames,
} from '../../src/migration/discovery';
import { claimNamesOf, identityOf, isTopLevelWorkload, ownerIndex, resolveController, statefulSetOwnsClaim } from '../../src/migration/workloads';

const ns = 'shop';
let uid = 0;
function owned(apiVersion: string, kind: string, name: string, owner?: KubernetesObject, extra: Record<string, unknown> = {}): KubernetesObject {
  const o: KubernetesObject = { apiVersion, kind, metadata: { name, namespace: ns, uid: `uid-${++uid}` }, ...extra } as KubernetesObject;
  if (owner) {
    o.metadata!.ownerReferences = [{ apiVersion: owner.apiVersion!, kind: owner.kind!, name: owner.metadata!.name!, uid: owner.metadata!.uid!, controller: true }];
  }
  return o;
}
function pod(name: string, owner: KubernetesObject | undefined, claims: string[], phase = 'Running', node = 'node-a', securityContext?: object): V1Pod {
  return owned('v1', 'Pod', name, owner, {
    spec: {
      nodeName: node,
      ...(securityContext ? { securityContext } : {}),
      containers: [{ name: 'app', volumeMounts: claims.map((c, i) => ({ name: `v${i}`, mountPath: `/d${i}` })) }],
      volumes: claims.map((c, i) => ({ name: `v${i}`, persistentVolumeClaim: { claimName: c } })),
    },
    status: { phase },
  }) as V1Pod;
}
const template = (claims: string[], securityContext?: object) => ({
  template: {
    spec: {
      ...(securityContext ? { securityContext } : {}),
      containers: [{ name: 'app', volumeMounts: claims.map((c, i) => ({ name: `v${i}`, mountPath: `/d${i}` })) }],
      volumes: claims.map((c, i) => ({ name: `v${i}`, persistentVolumeClaim: { claimName: c } })),
    },
  },
});

describe('resolveController (owner resolution)', () => {
  const deploy = owned('apps/v1', 'Deployment', 'web');
  const rs = owned('apps/v1', 'ReplicaSet', 'web-5d4f', deploy);
  const bareRs = owned('apps/v1', 'ReplicaSet', 'legacy');
  const sts = owned('apps/v1', 'StatefulSet', 'db');
  const ds = owned('apps/v1', 'DaemonSet', 'agent');
  const dc = owned('apps.openshift.io/v1', 'DeploymentConfig', 'old');
  const rc = owned('v1', 'ReplicationController', 'old-3', dc);
  const cj = owned('batch/v1', 'CronJob', 'backup');
  const job = owned('batch/v1', 'Job', 'backup-2890', cj);
  const bareJob = owned('batch/v1', 'Job', 'migrate');
  const index = ownerIndex([deploy, rs, bareRs, sts, ds, dc, rc, cj, job, bareJob]);

  it.each([
    ['Pod → ReplicaSet → Deployment', rs, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }],
    ['Pod → bare ReplicaSet', bareRs, { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'legacy' }],
    ['Pod → StatefulSet', sts, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db' }],
    ['Pod → DaemonSet', ds, { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent' }],
    ['Pod → ReplicationController → DeploymentConfig', rc, { apiVersion: 'apps.openshift.io/v1', kind: 'DeploymentConfig', name: 'old' }],
    ['Pod → Job → CronJob', job, { apiVersion: 'batch/v1', kind: 'CronJob', name: 'backup' }],
    ['Pod → bare Job', bareJob, { apiVersion: 'batch/v1', kind: 'Job', name: 'migrate' }],
  ])('%s', (_label, owner, expected) => {
    const r = resolveController(pod('p', owner, []), index);
    expect(r.workload).toEqual({ ...expected, namespace: ns });
    expect(r.foreignOwner).toBeUndefined();
  });

  it('a bare pod has no workload', () => {
    expect(resolveController(pod('p', undefined, []), index)).toEqual({ workload: undefined });
  });

  it('an owner missing from the index ends the walk at its reference', () => {
    const goneRs = owned('apps/v1', 'ReplicaSet', 'gone');
    expect(resolveController(pod('p', goneRs, []), index).workload).toMatchObject({ kind: 'ReplicaSet', name: 'gone' });
  });

  it('an indexed object with another uid (same-named replacement) is not followed', () => {
    const oldRs = { ...rs, metadata: { ...rs.metadata, uid: 'old-uid' } };
    const p = pod('p', oldRs, []);
    expect(resolveController(p, index).workload).toMatchObject({ kind: 'ReplicaSet', name: 'web-5d4f' });
  });

  it('reports an unknown controller above a known workload (e.g. an Argo Rollout)', () => {
    const rollout = owned('argoproj.io/v1alpha1', 'Rollout', 'canary');
    const rrs = owned('apps/v1', 'ReplicaSet', 'canary-1', rollout);
    const r = resolveController(pod('p', rrs, []), ownerIndex([rollout, rrs]));
    expect(r.workload).toMatchObject({ kind: 'ReplicaSet', name: 'canary-1' });
    expect(r.foreignOwner).toEqual({ apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', name: 'canary' });
  });

  it('a same-named kind of another API group is foreign', () => {
    const fake = owned('example.com/v1', 'Deployment', 'x');
    expect(resolveController(pod('p', fake, []), ownerIndex([fake])).foreignOwner).toMatchObject({ kind: 'Deployment' });
  });
});

describe('StatefulSet claim templates', () => {
  const sts = owned('apps/v1', 'StatefulSet', 'db', undefined, { spec: { replicas: 0, volumeClaimTemplates: [{ metadata: { name: 'data' } }] } });
  it.each([
    ['data-db-0', true],
    ['data-db-12', true],
    ['data-db-', false],
    ['data-db-x', false],
    ['data-dbx-0', false],
    ['logs-db-0', false],
  ])('%s → %s', (pvc, owns) => {
    expect(statefulSetOwnsClaim(sts, pvc)).toBe(owns);
  });
});

describe('pvcUsage', () => {
  const deploy = owned('apps/v1', 'Deployment', 'web', undefined, { spec: template(['uploads'], { fsGroup: 2000 }) });
  const rs = owned('apps/v1', 'ReplicaSet', 'web-1', deploy, { spec: template(['uploads']) });
  const oldRs = owned('apps/v1', 'ReplicaSet', 'web-0', deploy, { spec: template(['uploads']) });
  const stsIdle = owned('apps/v1', 'StatefulSet', 'db', undefined, {
    spec: { replicas: 0, volumeClaimTemplates: [{ metadata: { name: 'data' } }], template: { spec: { securityContext: { runAsUser: 999, fsGroup: 999 }, containers: [{ name: 'pg', volumeMounts: [{ name: 'data', mountPath: '/var/lib/pg' }] }] } } },
  });
  const cj = owned('batch/v1', 'CronJob', 'backup', undefined, { spec: { jobTemplate: { spec: template(['uploads', 'backups']) } } });
  const finishedJob = owned('batch/v1', 'Job', 'once', undefined, { spec: template(['backups']), status: { conditions: [{ type: 'Complete', status: 'True' }] } });
  const running = pod('web-1-abc', rs, ['uploads'], 'Running', 'node-7', { fsGroup: 2000, runAsUser: 1001, supplementalGroups: [5], seLinuxOptions: { level: 's0:c1,c2' } });
  const done = pod('web-1-old', rs, ['uploads'], 'Succeeded', 'node-1');
  const bare = pod('debug', undefined, ['backups'], 'Running', 'node-2');
  const inventory = { namespace: ns, pods: [running, done, bare], workloads: [deploy, rs, oldRs, stsIdle, cj, finishedJob] };

  it('running pods resolve to their Deployment; templates add the CronJob; node and identity come from the running pod', () => {
    const u = pvcUsage('uploads', inventory);
    expect(u.usedBy.map((w) => `${w.kind}/${w.name}`)).toEqual(['CronJob/backup', 'Deployment/web']);
    expect(u.nodeName).toBe('node-7');
    expect(u.identity).toEqual({ runAsUser: 1001, fsGroup: 2000, supplementalGroups: [5], seLinuxOptions: { level: 's0:c1,c2' } });
    expect(u.barePods).toEqual([]);
  });

  it('a StatefulSet scaled to 0 still owns its claim-template PVCs, and gives the identity', () => {
    const u = pvcUsage('data-db-0', inventory);
    expect(u.usedBy).toEqual([{ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: ns, name: 'db' }]);
    expect(u.nodeName).toBeUndefined();
    expect(u.identity).toEqual({ runAsUser: 999, fsGroup: 999 });
  });

  it('bare pods are reported; finished Jobs are not users', () => {
    const u = pvcUsage('backups', inventory);
    expect(u.usedBy.map((w) => w.kind)).toEqual(['CronJob']);
    expect(u.barePods).toEqual(['debug']);
  });

  it("Ferry's own pods (a warm transfer agent, listed before the application's pod) are not users, bare pods, nor the node and identity (issue 9)", () => {
    const agent = pod('ferry-abc-client-uploads', undefined, ['uploads'], 'Running', 'node-9', { runAsUser: 65532, runAsNonRoot: true });
    agent.metadata!.labels = { 'app.kubernetes.io/managed-by': 'ferry', 'ferry.dev/role': 'client' };
    const u = pvcUsage('uploads', { ...inventory, pods: [agent, running, done, bare] });
    expect(u.barePods).toEqual([]);
    expect(u.unmanaged).toEqual([]);
    expect(u.nodeName).toBe('node-7');
    expect(u.identity).toEqual({ runAsUser: 1001, fsGroup: 2000, supplementalGroups: [5], seLinuxOptions: { level: 's0:c1,c2' } });
    // With no application pod running, the agent does not make the PVC look in use.
    const alone = pvcUsage('scratch', { ...inventory, pods: [pod('ferry-abc-client-scratch', undefined, ['scratch'], 'Running', 'node-9')].map((p) => ({ ...p, metadata: { ...p.metadata, labels: { 'app.kubernetes.io/managed-by': 'ferry' } } })) });
    expect(alone).toEqual({ usedBy: [], barePods: [], foreignOwners: [], unmanaged: [] });
  });

  it('an unused PVC has no users', () => {
    expect(pvcUsage('scratch', inventory)).toEqual({ usedBy: [], barePods: [], foreignOwners: [], unmanaged: [] });
  });

  it('old ReplicaSets of a Deployment and finished Jobs are not top-level', () => {
    expect(isTopLevelWorkload(oldRs)).toBe(false);
    expect(isTopLevelWorkload(finishedJob)).toBe(false);
    expect(isTopLevelWorkload(cj)).toBe(true);
  });
});

describe('identityOf', () => {
  it('container settings of the container mounting the claim override the pod level', () => {
    const spec = {
      securityContext: { runAsUser: 1, runAsGroup: 2, fsGroup: 3 },
      containers: [
        { name: 'other', securityContext: { runAsUser: 50 } },
        { name: 'app', securityContext: { runAsUser: 100, seLinuxOptions: { type: 'spc_t' } }, volumeMounts: [{ name: 'd', mountPath: '/d' }] },
      ],
      volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'c' } }],
    };
    expect(identityOf(spec as never, 'c')).toEqual({ runAsUser: 100, runAsGroup: 2, fsGroup: 3, seLinuxOptions: { type: 'spc_t' } });
    expect(claimNamesOf(spec as never)).toEqual(['c']);
  });
  it('is undefined when nothing is set', () => {
    expect(identityOf({ containers: [] } as never, 'c')).toBeUndefined();
  });
});

describe('storage mapping', () => {
  const plan = { storageClassMapping: { 'local-path': 'standard' }, accessModeMapping: { ReadWriteOncePod: 'ReadWriteOnce' as const }, defaultStorageClass: undefined };
  const sc = (name: string, isDefault = false): V1StorageClass => ({ metadata: { name, ...(isDefault ? { annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } } : {}) }, provisioner: 'x' });

  it('maps, keeps, or falls back to the destination default class', () => {
    expect(mapStorageClass('local-path', plan)).toBe('standard');
    expect(mapStorageClass('gp2', plan)).toBe('gp2');
    expect(mapStorageClass('gp2', plan, [sc('gp2'), sc('fast', true)])).toBe('gp2');
    expect(mapStorageClass('gp2', plan, [sc('fast', true)])).toBe('fast');
    expect(mapStorageClass('gp2', plan, [sc('fast')])).toBe('gp2');
    expect(mapStorageClass(undefined, plan, [sc('fast', true)])).toBe('fast');
    expect(mapStorageClass(undefined, plan)).toBeUndefined();
    expect(mapStorageClass('gp2', { ...plan, defaultStorageClass: 'ceph' })).toBe('ceph');
    expect(mapStorageClass('local-path', { ...plan, defaultStorageClass: 'ceph' })).toBe('standard');
  });

  it('picks the newest of several default classes', () => {
    const a = { ...sc('a', true), metadata: { ...sc('a', true).metadata, creationTimestamp: '2024-01-01T00:00:00Z' as never } };
    const b = { ...sc('b', true), metadata: { ...sc('b', true).metadata, creationTimestamp: '2025-01-01T00:00:00Z' as never } };
    expect(defaultStorageClassName([a, b])).toBe('b');
  });

  it('maps access modes and deduplicates', () => {
    expect(mapAccessModes(['ReadWriteOncePod', 'ReadWriteOnce'], plan)).toEqual(['ReadWriteOnce']);
    expect(mapAccessModes(['ReadWriteMany'], plan)).toEqual(['ReadWriteMany']);
  });
});

describe('pvcInfo / pvcCapacity / selectByNames', () => {
  const pvc = (name: string, request: string, capacity?: string, extra: object = {}): V1PersistentVolumeClaim => ({
    metadata: { name, namespace: ns },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'local-path', resources: { requests: { storage: request } }, ...extra },
    ...(capacity ? { status: { phase: 'Bound', capacity: { storage: capacity } } } : {}),
  });

  it('capacity is the larger of request and provisioned size', () => {
    expect(pvcCapacity(pvc('a', '1Gi', '10Gi'))).toEqual({ capacity: '10Gi', capacityBytes: 10 * 2 ** 30 });
    expect(pvcCapacity(pvc('a', '5Gi', '5Gi'))).toEqual({ capacity: '5Gi', capacityBytes: 5 * 2 ** 30 });
    expect(pvcCapacity(pvc('a', '2G'))).toEqual({ capacity: '2G', capacityBytes: 2e9 });
  });

  it('builds the PVCInfo with the mapped destination, pinning RWO only', () => {
    const usage = { usedBy: [], nodeName: 'node-7', barePods: [], foreignOwners: [] };
    const info = pvcInfo(pvc('data', '1Gi', '1Gi'), usage, { storageClassMapping: { 'local-path': 'standard' }, accessModeMapping: {}, defaultStorageClass: undefined });
    expect(info).toEqual({
      name: 'data',
      destinationName: 'data',
      capacity: '1Gi',
      capacityBytes: 2 ** 30,
      storageClass: 'local-path',
      destinationStorageClass: 'standard',
      accessModes: ['ReadWriteOnce'],
      destinationAccessModes: ['ReadWriteOnce'],
      volumeMode: 'Filesystem',
      nodeName: 'node-7',
      usedBy: [],
    });
    const rwx = pvcInfo(pvc('shared', '1Gi', '1Gi', { accessModes: ['ReadWriteMany'], volumeMode: 'Block' }), usage, { storageClassMapping: {}, accessModeMapping: {}, defaultStorageClass: undefined });
    expect(rwx.nodeName).toBeUndefined();
    expect(rwx.volumeMode).toBe('Block');
  });

  it('selects by names', () => {
    const all = [pvc('a', '1Gi'), pvc('b', '1Gi'), pvc('c', '1Gi')];
    expect(selectByNames(all, { names: ['c', 'a', 'zz'] }).map((p) => p.metadata!.name)).toEqual(['a', 'c']);
    expect(selectByNames(all, { all: true })).toHaveLength(3);
  });
});
