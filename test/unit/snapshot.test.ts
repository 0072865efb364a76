/**
 * Point-in-time stage sources (plan `sourceCopyMethod: snapshot | clone`): the objects
 * (statetransfer/snapshot.ts), the plan's rules, the client pod reading the copy unpinned, and
 * preparePointInTime / releasePointInTime (migration/snapshot.ts) against an in-memory client whose
 * snapshot controller is simulated (readyToUse after a while, restoreSize, a failure).
 */
import type { KubernetesObject, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { FerryError } from '../../src/core/errors';
import type { KubeClient, ObjectRef } from '../../src/k8s/client';
import { prepareGroupSnapshot, preparePointInTime, releaseGroupSnapshot, releasePointInTime, unlabelGroupSnapshotPVCs } from '../../src/migration/snapshot';
import { parsePlan, PlanValidationError } from '../../src/plan/load';
import { sourceCopyMethodOf } from '../../src/plan/schema';
import { sourcePermissions } from '../../src/migration/preflight';
import { planFor } from '../../src/workflows/migration';
import { GROUP_SNAPSHOT_LABEL, groupSnapshotLabelValue, groupSnapshotName, pointInTimeClaim, pointInTimeClaimName, snapshotName, volumeGroupSnapshot, volumeSnapshot, SNAPSHOT_PASS_ANNOTATION, type VolumeSnapshotObject } from '../../src/statetransfer/snapshot';
import { createEndpoint } from '../../src/statetransfer/endpoint';
import { createNamespaceTransfer, createTransferCredentials } from '../../src/statetransfer/namespace-transfer';
import { createRsyncTransfer } from '../../src/statetransfer/transfer/rsync';
import { createStunnelTransport } from '../../src/statetransfer/transport/stunnel';

const base = { migrationId: 'm1', namespace: 'shop', pvc: 'data', storageClass: 'csi-hostpath', capacity: '1Gi', pass: 3 };

describe('objects', () => {
  test('the VolumeSnapshot names the source PVC, the class when given, and its pass', () => {
    const s = volumeSnapshot({ ...base, volumeSnapshotClass: 'fast' });
    expect(s.metadata.name).toBe(snapshotName('m1', 'data'));
    expect(s.metadata.annotations?.[SNAPSHOT_PASS_ANNOTATION]).toBe('3');
    expect(s.spec).toEqual({ source: { persistentVolumeClaimName: 'data' }, volumeSnapshotClassName: 'fast' });
    expect(volumeSnapshot(base).spec.volumeSnapshotClassName).toBeUndefined();
  });

  test('the claim is restored from the snapshot or cloned from the PVC, in its StorageClass, at least the given size', () => {
    const fromSnap = pointInTimeClaim(base, 'snapshot', '2Gi');
    expect(fromSnap.metadata?.name).toBe(pointInTimeClaimName('m1', 'data'));
    expect(fromSnap.spec?.dataSource).toEqual({ apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: snapshotName('m1', 'data') });
    expect(fromSnap.spec?.resources?.requests?.storage).toBe('2Gi');
    expect(fromSnap.spec?.storageClassName).toBe('csi-hostpath');
    const clone = pointInTimeClaim(base, 'clone');
    expect(clone.spec?.dataSource).toEqual({ kind: 'PersistentVolumeClaim', name: 'data' });
    expect(clone.spec?.resources?.requests?.storage).toBe('1Gi');
    // cleanup deletes PVCs only by this role: a destination PVC never carries it
    expect(clone.metadata?.labels?.['ferry.dev/role']).toBe('snapshot-source');
  });

  test('a client reading a point-in-time claim mounts it and is not pinned to the writer node', () => {
    const endpoint = createEndpoint({ type: 'NodePort', migrationId: 'm1', namespace: 'shop', backendPort: 8443 });
    const nt = createNamespaceTransfer({
      migrationId: 'm1',
      sourceNamespace: 'shop',
      destinationNamespace: 'shop',
      volumes: [{ sourcePVC: 'data', destinationPVC: 'data', nodeName: 'node-a' }],
      transfer: createRsyncTransfer({}),
      transport: createStunnelTransport(),
      endpoint,
      security: 'restricted',
      image: 'registry.example/ferry/transfer:1',
    });
    const address = { host: '192.0.2.10', port: 31443 };
    const creds = createTransferCredentials('m1', endpoint, address);
    const pod = (readFrom?: string) => nt.sourceObjects('data', address, creds, { final: false, ...(readFrom ? { readFrom } : {}) }).find((o) => o.kind === 'Pod') as V1Pod;
    const live = pod();
    const pinned = (p: V1Pod) => p.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.[0]?.matchFields?.[0]?.values;
    expect(pinned(live)).toEqual(['node-a']);
    const pit = pod('m1-copy');
    expect(pit.spec?.affinity).toBeUndefined();
    const claims = (pit.spec?.volumes ?? []).map((v) => v.persistentVolumeClaim?.claimName).filter(Boolean);
    expect(claims).toEqual(['m1-copy']);
  });
});

describe('plan', () => {
  const plan = (extra: Record<string, unknown>) => parsePlan({ source: { context: 's' }, destination: { context: 'd' }, namespaces: ['shop'], ...extra });
  test('direct by default; snapshot and clone accepted; volumeSnapshotClass only with snapshot', () => {
    expect(plan({}).sourceCopyMethod).toBe('direct');
    expect(plan({ sourceCopyMethod: 'snapshot', volumeSnapshotClass: 'fast' }).volumeSnapshotClass).toBe('fast');
    expect(plan({ sourceCopyMethod: 'clone' }).sourceCopyMethod).toBe('clone');
    expect(() => plan({ sourceCopyMethod: 'clone', volumeSnapshotClass: 'fast' })).toThrow(PlanValidationError);
    expect(() => plan({ sourceCopyMethod: 'clone', volumeSnapshotClass: 'fast' })).toThrow(/volumeSnapshotClass.*only with sourceCopyMethod: snapshot/);
    expect(() => plan({ sourceCopyMethod: 'lvm' })).toThrow(PlanValidationError);
  });
});

/** Objects by kind/namespace/name; a VolumeSnapshot becomes ready (or fails) on its `readyAfter`-th read. */
class SnapshotCluster {
  objects = new Map<string, KubernetesObject>();
  reads = 0;
  created: string[] = [];
  deleted: string[] = [];
  constructor(private readonly behaviour: { readyAfter: number; restoreSize?: string; error?: string }) {}
  private key(r: { kind?: string; namespace?: string; name?: string; metadata?: { namespace?: string; name?: string } }) {
    return `${r.kind}/${r.metadata?.namespace ?? r.namespace}/${r.metadata?.name ?? r.name}`;
  }
  async get<T>(ref: ObjectRef): Promise<T | undefined> {
    const o = this.objects.get(this.key(ref));
    if (o?.kind === 'VolumeSnapshot' && ++this.reads >= this.behaviour.readyAfter) {
      (o as VolumeSnapshotObject).status = this.behaviour.error
        ? { readyToUse: false, error: { message: this.behaviour.error } }
        : { readyToUse: true, ...(this.behaviour.restoreSize ? { restoreSize: this.behaviour.restoreSize } : {}) };
    }
    return structuredClone(o) as T | undefined;
  }
  async createOrAdopt<T extends KubernetesObject>(obj: T): Promise<{ object: T; created: boolean }> {
    const k = this.key(obj);
    if (this.objects.has(k)) return { object: structuredClone(this.objects.get(k)) as T, created: false };
    this.objects.set(k, structuredClone(obj));
    this.created.push(k);
    return { object: obj, created: true };
  }
  async delete(ref: ObjectRef): Promise<boolean> {
    const k = this.key(ref);
    this.deleted.push(k);
    return this.objects.delete(k);
  }
  async hasApi(): Promise<boolean> {
    return true;
  }
}

describe('preparePointInTime / releasePointInTime', () => {
  const claimKey = `PersistentVolumeClaim/shop/${pointInTimeClaimName('m1', 'data')}`;
  const snapKey = `VolumeSnapshot/shop/${snapshotName('m1', 'data')}`;

  test('snapshot: waits until the snapshot is ready, restores a claim of its restoreSize when larger; release deletes both', async () => {
    const c = new SnapshotCluster({ readyAfter: 2, restoreSize: '1536Mi' });
    const claim = await preparePointInTime(c as unknown as KubeClient, { ...base, method: 'snapshot', timeoutSeconds: 30 });
    expect(claim).toBe(pointInTimeClaimName('m1', 'data'));
    expect(c.created).toEqual([snapKey, claimKey]);
    const pvc = c.objects.get(claimKey) as V1PersistentVolumeClaim;
    expect(pvc.spec?.resources?.requests?.storage).toBe('1536Mi');
    await releasePointInTime(c as unknown as KubeClient, base);
    expect(c.objects.size).toBe(0);
  });

  test('a retry of the same pass reuses the objects; another pass replaces them (an older copy is never read)', async () => {
    const c = new SnapshotCluster({ readyAfter: 1 });
    await preparePointInTime(c as unknown as KubeClient, { ...base, method: 'snapshot', timeoutSeconds: 30 });
    await preparePointInTime(c as unknown as KubeClient, { ...base, method: 'snapshot', timeoutSeconds: 30 });
    expect(c.deleted).toEqual([]);
    await preparePointInTime(c as unknown as KubeClient, { ...base, pass: 4, method: 'snapshot', timeoutSeconds: 30 });
    expect(c.deleted).toEqual([claimKey, snapKey]);
    expect((c.objects.get(snapKey) as VolumeSnapshotObject).metadata.annotations?.[SNAPSHOT_PASS_ANNOTATION]).toBe('4');
    expect((c.objects.get(claimKey) as V1PersistentVolumeClaim).metadata?.annotations?.[SNAPSHOT_PASS_ANNOTATION]).toBe('4');
  });

  test('a failed snapshot is a configuration error naming the PVC and the driver message', async () => {
    const c = new SnapshotCluster({ readyAfter: 1, error: 'Failed to check and update snapshot content: driver does not support snapshots' });
    const err = await preparePointInTime(c as unknown as KubeClient, { ...base, method: 'snapshot', timeoutSeconds: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).message).toMatch(/VolumeSnapshot shop\/.* of PVC data failed: .*does not support snapshots/);
    expect(c.created).toEqual([snapKey]); // no claim from a failed snapshot
  });

  test('clone: only the claim, cloned from the PVC', async () => {
    const c = new SnapshotCluster({ readyAfter: 1 });
    await preparePointInTime(c as unknown as KubeClient, { ...base, method: 'clone', timeoutSeconds: 30 });
    expect(c.created).toEqual([claimKey]);
    expect((c.objects.get(claimKey) as V1PersistentVolumeClaim).spec?.dataSource).toEqual({ kind: 'PersistentVolumeClaim', name: 'data' });
  });
});

describe('group snapshots (plan groupSnapshot)', () => {
  test('the VolumeGroupSnapshot selects the PVCs Ferry labels, with its class and pass', () => {
    const g = volumeGroupSnapshot({ migrationId: 'm1', namespace: 'shop', pass: 2, volumeGroupSnapshotClass: 'grp' });
    expect(g.metadata.name).toBe(groupSnapshotName('m1'));
    expect(g.spec).toEqual({ source: { selector: { matchLabels: { [GROUP_SNAPSHOT_LABEL]: groupSnapshotLabelValue('m1') } } }, volumeGroupSnapshotClassName: 'grp' });
    expect(g.metadata.annotations?.[SNAPSHOT_PASS_ANNOTATION]).toBe('2');
    // restored from the member snapshot, not the PVC's own
    expect(pointInTimeClaim(base, 'snapshot', '1Gi', 'member-1').spec?.dataSource?.name).toBe('member-1');
  });

  test('plan: groupSnapshot needs sourceCopyMethod snapshot; its class needs groupSnapshot', () => {
    const plan = (extra: Record<string, unknown>) => parsePlan({ source: { context: 's' }, destination: { context: 'd' }, namespaces: ['shop'], ...extra });
    expect(plan({}).groupSnapshot).toBe(false);
    expect(plan({ sourceCopyMethod: 'snapshot', groupSnapshot: true, volumeGroupSnapshotClass: 'grp' }).volumeGroupSnapshotClass).toBe('grp');
    expect(() => plan({ groupSnapshot: true })).toThrow(/groupSnapshot: needs sourceCopyMethod: snapshot, not direct/);
    expect(() => plan({ sourceCopyMethod: 'snapshot', volumeGroupSnapshotClass: 'grp' })).toThrow(/volumeGroupSnapshotClass: is used only with groupSnapshot: true/);
  });

  /** A namespace with PVCs; the simulated snapshot-controller makes the group ready on its 2nd read and its members on the next list. */
  class GroupCluster {
    objects = new Map<string, KubernetesObject>();
    patches: string[] = [];
    reads = 0;
    constructor(pvcs: string[], private readonly error?: string) {
      for (const p of pvcs) this.objects.set(`PersistentVolumeClaim/shop/${p}`, { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: p, namespace: 'shop', labels: {} } });
    }
    private key(r: { kind?: string; namespace?: string; name?: string; metadata?: { namespace?: string; name?: string } }) {
      return `${r.kind}/${r.metadata?.namespace ?? r.namespace}/${r.metadata?.name ?? r.name}`;
    }
    async patch(ref: ObjectRef, body: { metadata: { labels: Record<string, string | null> } }) {
      const o = this.objects.get(this.key(ref))!;
      this.patches.push(`${ref.name}:${JSON.stringify(body.metadata.labels)}`);
      for (const [k, v] of Object.entries(body.metadata.labels)) {
        if (v === null) delete o.metadata!.labels![k];
        else o.metadata!.labels![k] = v;
      }
      return o;
    }
    async get<T>(ref: ObjectRef): Promise<T | undefined> {
      const o = this.objects.get(this.key(ref)) as (KubernetesObject & { spec?: { source?: { selector?: { matchLabels: Record<string, string> } } }; status?: unknown }) | undefined;
      if (o?.kind === 'VolumeGroupSnapshot' && ++this.reads >= 2) {
        o.status = this.error ? { error: { message: this.error } } : { readyToUse: true };
        if (!this.error) {
          // the controller's members: one VolumeSnapshot per PVC the selector matches
          const [[k, v]] = Object.entries(o.spec!.source!.selector!.matchLabels) as [[string, string]];
          for (const pvc of [...this.objects.values()].filter((x) => x.kind === 'PersistentVolumeClaim' && x.metadata?.labels?.[k] === v)) {
            const name = `snapshot-${pvc.metadata!.name}-xyz`;
            this.objects.set(`VolumeSnapshot/shop/${name}`, { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name, namespace: 'shop' }, spec: { source: { persistentVolumeClaimName: pvc.metadata!.name } }, status: { readyToUse: true, volumeGroupSnapshotName: o.metadata!.name } } as KubernetesObject);
          }
        }
      }
      return structuredClone(o) as T | undefined;
    }
    async list<T>(kind: { kind: string }, _ns: string, opts: { labelSelector?: string } = {}): Promise<T[]> {
      const [k, v] = (opts.labelSelector ?? '=').split('=');
      return [...this.objects.values()].filter((o) => o.kind === kind.kind && (!k || o.metadata?.labels?.[k] === v)) as T[];
    }
    async createOrAdopt<T extends KubernetesObject>(obj: T) {
      if (!this.objects.has(this.key(obj))) this.objects.set(this.key(obj), structuredClone(obj));
      return { object: obj, created: true };
    }
    /** Deleting the group, the controller deletes its members (unless `keepMembers`: then only an explicit delete does). */
    keepMembers = false;
    async delete(ref: ObjectRef) {
      if (ref.kind === 'VolumeGroupSnapshot' && !this.keepMembers) {
        for (const [k, o] of [...this.objects]) if ((o as { status?: { volumeGroupSnapshotName?: string } }).status?.volumeGroupSnapshotName === ref.name) this.objects.delete(k);
      }
      return this.objects.delete(this.key(ref));
    }
    async hasApi() {
      return true;
    }
  }

  test('prepare labels the PVCs, waits for the group and a ready member per PVC; release deletes the group; cleanup unlabels', async () => {
    const c = new GroupCluster(['data', 'wal', 'other']);
    const members = await prepareGroupSnapshot(c as unknown as KubeClient, { migrationId: 'm1', namespace: 'shop', pass: 1, pvcs: ['data', 'wal'], timeoutSeconds: 30 });
    expect(members).toEqual({ data: 'snapshot-data-xyz', wal: 'snapshot-wal-xyz' });
    expect(c.objects.get('PersistentVolumeClaim/shop/other')!.metadata!.labels).toEqual({}); // not selected, not labelled
    expect(c.objects.has('VolumeSnapshot/shop/snapshot-data-xyz')).toBe(true);
    await releaseGroupSnapshot(c as unknown as KubeClient, { migrationId: 'm1', namespace: 'shop' });
    expect(c.objects.has(`VolumeGroupSnapshot/shop/${groupSnapshotName('m1')}`)).toBe(false);
    expect([...c.objects.keys()].filter((k) => k.startsWith('VolumeSnapshot/'))).toEqual([]); // members waited for
    expect((await unlabelGroupSnapshotPVCs(c as unknown as KubeClient, 'm1', 'shop')).sort()).toEqual(['data', 'wal']);
    expect(c.objects.get('PersistentVolumeClaim/shop/data')!.metadata!.labels).toEqual({});
  });

  test('a failed group snapshot is a configuration error with the controller message', async () => {
    const c = new GroupCluster(['data'], 'the CSI driver does not support the GroupController service');
    await expect(prepareGroupSnapshot(c as unknown as KubeClient, { migrationId: 'm1', namespace: 'shop', pass: 1, pvcs: ['data'], timeoutSeconds: 30 })).rejects.toThrow(/VolumeGroupSnapshot shop\/.* failed: the CSI driver does not support the GroupController service/);
  });
});

describe('a namespace of its own sourceCopyMethod', () => {
  const plan = parsePlan({
    source: { context: 's' },
    destination: { context: 'd' },
    namespaces: [{ source: 'db', sourceCopyMethod: 'snapshot' }, 'web'],
    groupSnapshot: true,
    volumeSnapshotClass: 'csi-hostpath-snapclass',
  });

  test('the plan keeps it per namespace, and the namespace workflow gets it as its plan', () => {
    expect(plan.sourceCopyMethod).toBe('direct');
    expect(plan.namespaces.map((n) => sourceCopyMethodOf(plan, n))).toEqual(['snapshot', 'direct']);
    expect(planFor(plan, plan.namespaces[0]!).sourceCopyMethod).toBe('snapshot');
    expect(planFor(plan, plan.namespaces[1]!).sourceCopyMethod).toBe('direct');
    // the parsed plan parses again to itself (the workflow's input)
    expect(parsePlan(plan)).toEqual(plan);
  });

  test('snapshot RBAC only where a namespace snapshots', () => {
    const resources = (p: typeof plan) => sourcePermissions(p, false).map((n) => n.resource);
    expect(resources(planFor(plan, plan.namespaces[0]!))).toEqual(expect.arrayContaining(['volumesnapshots', 'volumegroupsnapshots']));
    expect(resources(planFor(plan, plan.namespaces[1]!))).not.toEqual(expect.arrayContaining(['volumesnapshots']));
    expect(resources(planFor(plan, plan.namespaces[1]!))).not.toEqual(expect.arrayContaining(['volumegroupsnapshots']));
  });

  test('volumeSnapshotClass and groupSnapshot are refused when no namespace snapshots', () => {
    expect(() => parsePlan({ source: { context: 's' }, destination: { context: 'd' }, namespaces: [{ source: 'db', sourceCopyMethod: 'clone' }], groupSnapshot: true })).toThrow(/groupSnapshot: needs sourceCopyMethod: snapshot/);
  });
});
