/**
 * keepPVCNames (migration/rebind.ts): the original PVC name ends on the new volume, no claim is ever
 * deleted while its volume would go with it, the old volume is kept, and a call resumed after a crash
 * at any step finishes the job. Against the in-memory cluster, with the PV controller's binding played
 * by the test.
 */
import type { KubernetesObject, V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { parsePlan, PlanValidationError } from '../../src/plan/load';
import { bindReplacedVolume, PRIOR_RECLAIM_ANNOTATION, REBIND_ANNOTATION, REPLACED_VOLUME_ANNOTATION, rebindClaim, temporaryClaimName } from '../../src/migration/rebind';
import { CUTOVER_ANNOTATIONS } from '../../src/migration/destination';
import { FakeKube, mergePatch } from '../support/fake-kube';

const NS = 'shop';
const TEMP = temporaryClaimName('m1', 'data');

function pv(name: string, claim: string, cls: string): V1PersistentVolume {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name },
    spec: { capacity: { storage: '2Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Delete', storageClassName: cls, volumeMode: 'Filesystem', claimRef: { namespace: NS, name: claim, uid: `uid-${claim}` } },
    status: { phase: 'Bound' },
  };
}

function pvc(name: string, volume: string, cls: string, extra: Partial<V1PersistentVolumeClaim['metadata']> = {}): V1PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: NS, uid: `uid-${name}`, ...extra },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, storageClassName: cls, volumeName: volume, volumeMode: 'Filesystem' },
    status: { phase: 'Bound' },
  };
}

function cluster(): FakeKube {
  return new FakeKube([
    pv('pv-old', 'data', 'slow'),
    pv('pv-new', TEMP, 'fast'),
    pvc('data', 'pv-old', 'slow', { labels: { app: 'db' }, annotations: { 'pv.kubernetes.io/bind-completed': 'yes', 'backup.example/policy': 'daily' } }),
    pvc(TEMP, 'pv-new', 'fast', { annotations: { 'ferry.dev/migration-id': 'm1', [CUTOVER_ANNOTATIONS.by]: 'm1', [CUTOVER_ANNOTATIONS.at]: '2026-12-05T18:00:00.000Z' } }),
  ] as KubernetesObject[]);
}

/** Plays the PV controller: binds claim `claim` once it exists naming volume `volume`. */
function bindWhenCreated(kube: FakeKube, claim = 'data', volume = 'pv-new'): void {
  const tick = setInterval(() => {
    const c = kube.find('PersistentVolumeClaim', NS, claim) as V1PersistentVolumeClaim | undefined;
    if (c?.spec?.volumeName === volume && c.status?.phase !== 'Bound') {
      kube.put(mergePatch(c, { status: { phase: 'Bound' } }));
      clearInterval(tick);
    }
  }, 20);
  setTimeout(() => clearInterval(tick), 20_000).unref();
}

const get = <T>(kube: FakeKube, kind: string, name: string, ns?: string) => kube.find(kind, ns, name) as T | undefined;

describe('rebindClaim', () => {
  it('binds the original name to the new volume, keeps the old volume, and never deletes a claim whose volume is not Retain', async () => {
    const kube = cluster();
    bindWhenCreated(kube);
    const r = await rebindClaim(kube.client(), NS, 'data', TEMP);
    expect(r).toEqual({ pvc: 'data', newVolume: 'pv-new', oldVolume: 'pv-old' });

    const claim = get<V1PersistentVolumeClaim>(kube, 'PersistentVolumeClaim', 'data', NS)!;
    expect(claim.spec).toMatchObject({ volumeName: 'pv-new', storageClassName: 'fast', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2Gi' } } });
    expect(claim.metadata!.labels).toEqual({ app: 'db' });
    // the temporary claim's cutover mark moves to the claim of the original name (ferry verify finds it by it)
    expect(claim.metadata!.annotations).toEqual({ 'backup.example/policy': 'daily', [REPLACED_VOLUME_ANNOTATION]: 'pv-old', [CUTOVER_ANNOTATIONS.by]: 'm1', [CUTOVER_ANNOTATIONS.at]: '2026-12-05T18:00:00.000Z' });
    expect(get(kube, 'PersistentVolumeClaim', TEMP, NS)).toBeUndefined();

    const fresh = get<V1PersistentVolume>(kube, 'PersistentVolume', 'pv-new')!;
    expect(fresh.spec!.persistentVolumeReclaimPolicy).toBe('Delete');
    expect(fresh.spec!.claimRef).toMatchObject({ namespace: NS, name: 'data' });
    expect(fresh.metadata!.annotations ?? {}).toEqual({});
    const old = get<V1PersistentVolume>(kube, 'PersistentVolume', 'pv-old')!;
    expect(old.spec!.persistentVolumeReclaimPolicy).toBe('Retain');
    expect(old.metadata!.annotations).toEqual({ [PRIOR_RECLAIM_ANNOTATION]: 'Delete' });

    // both volumes were Retain before either claim was deleted
    const at = (s: string) => kube.calls.findIndex((c) => c.startsWith(s));
    const retained = (name: string) => kube.calls.findIndex((c) => c.startsWith(`patch PersistentVolume ${name}`) && c.includes('"persistentVolumeReclaimPolicy":"Retain"'));
    expect(retained('pv-new')).toBeGreaterThanOrEqual(0);
    expect(retained('pv-old')).toBeGreaterThanOrEqual(0);
    expect(Math.max(retained('pv-new'), retained('pv-old'))).toBeLessThan(at(`delete PersistentVolumeClaim ${TEMP}`));
    expect(at(`delete PersistentVolumeClaim ${TEMP}`)).toBeLessThan(at('delete PersistentVolumeClaim data'));
  });

  it('resumes after a crash between the deletions (the new volume found by its mark), and a finished one is a no-op', async () => {
    const kube = cluster();
    // as a first call left it: both Retain, the new PV marked, the temporary claim deleted
    kube.put(mergePatch(get(kube, 'PersistentVolume', 'pv-new')!, { metadata: { annotations: { [PRIOR_RECLAIM_ANNOTATION]: 'Delete', [REBIND_ANNOTATION]: `${NS}/data`, [CUTOVER_ANNOTATIONS.by]: 'm1' } }, spec: { persistentVolumeReclaimPolicy: 'Retain' }, status: { phase: 'Released' } }));
    kube.put(mergePatch(get(kube, 'PersistentVolume', 'pv-old')!, { metadata: { annotations: { [PRIOR_RECLAIM_ANNOTATION]: 'Delete' } }, spec: { persistentVolumeReclaimPolicy: 'Retain' } }));
    await kube.client().delete({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: NS, name: TEMP });
    bindWhenCreated(kube);
    expect(await rebindClaim(kube.client(), NS, 'data', TEMP)).toEqual({ pvc: 'data', newVolume: 'pv-new', oldVolume: 'pv-old' });
    expect(get<V1PersistentVolume>(kube, 'PersistentVolume', 'pv-new')!.spec!.persistentVolumeReclaimPolicy).toBe('Delete');
    expect(get<V1PersistentVolume>(kube, 'PersistentVolume', 'pv-old')!.spec!.persistentVolumeReclaimPolicy).toBe('Retain');
    // the cutover mark kept on the new PV reaches the claim; the PV is left without Ferry's marks
    expect(get<V1PersistentVolumeClaim>(kube, 'PersistentVolumeClaim', 'data', NS)!.metadata!.annotations?.[CUTOVER_ANNOTATIONS.by]).toBe('m1');
    expect(get<V1PersistentVolume>(kube, 'PersistentVolume', 'pv-new')!.metadata!.annotations ?? {}).toEqual({});

    const deletes = kube.calls.filter((c) => c.startsWith('delete')).length;
    expect(await rebindClaim(kube.client(), NS, 'data', TEMP)).toEqual({ pvc: 'data', newVolume: 'pv-new', oldVolume: 'pv-old' });
    expect(kube.calls.filter((c) => c.startsWith('delete')).length).toBe(deletes);
  });

  it('deletes the finished pods that still name the old claim (they would hold it Terminating), not running ones', async () => {
    const kube = cluster();
    const pod = (name: string, phase: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS }, spec: { containers: [], volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data' } }] }, status: { phase } }) as KubernetesObject;
    kube.put(pod('seed-abc', 'Succeeded'));
    kube.put(pod('failed-1', 'Failed'));
    kube.put(pod('reader', 'Running'));
    bindWhenCreated(kube);
    const r = await rebindClaim(kube.client(), NS, 'data', TEMP);
    expect(r.deletedPods).toEqual(['seed-abc', 'failed-1']);
    expect(kube.find('Pod', NS, 'reader')).toBeDefined();
  });

  it('refuses when there is no new volume to bind to', async () => {
    const kube = new FakeKube([pv('pv-old', 'data', 'slow'), pvc('data', 'pv-old', 'slow')] as KubernetesObject[]);
    await expect(rebindClaim(kube.client(), NS, 'data', TEMP)).rejects.toThrow(/temporary PVC .* is not bound to a volume/);
    expect(kube.calls.some((c) => c.startsWith('delete'))).toBe(false);
  });
});

describe('the plan', () => {
  const base = { source: { context: 'lab' }, destination: { context: 'lab' }, namespaces: ['shop'], keepPVCNames: true, storageClassMapping: { slow: 'fast' } };
  const problems = (fields: Record<string, unknown>) => {
    try {
      parsePlan({ ...base, ...fields });
      return '';
    } catch (e) {
      return (e as PlanValidationError).problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    }
  };

  it('keepPVCNames: one cluster, each namespace onto itself', () => {
    expect(problems({})).toBe('');
    expect(problems({ destination: { context: 'other' } })).toMatch(/^keepPVCNames: .*must be the same cluster/);
    expect(problems({ namespaces: ['shop:shop2'] })).toMatch(/namespaces\[0\]\.destination: with keepPVCNames the PVCs stay in their namespace/);
    expect(problems({ keepPVCNames: false })).toMatch(/would be migrated onto a source namespace: rename it, or set keepPVCNames: true/);
  });
});

describe('bindReplacedVolume (ferry verify after a move that kept the names)', () => {
  const OLD = 'ferry-m1-old-data';
  /** After a move: `data` on pv-new (replaced pv-old), pv-old Released with `policy`. */
  function moved(policy: string): FakeKube {
    const old = pv('pv-old', 'data', 'slow');
    old.spec!.persistentVolumeReclaimPolicy = policy;
    old.status = { phase: 'Released' };
    return new FakeKube([old, pv('pv-new', 'data', 'fast'), pvc('data', 'pv-new', 'fast', { annotations: { [REPLACED_VOLUME_ANNOTATION]: 'pv-old' } })] as KubernetesObject[]);
  }
  it('reserves the old volume for a temporary claim of its own class and size, and release deletes only that claim', async () => {
    const kube = moved('Retain');
    bindWhenCreated(kube, OLD, 'pv-old');
    const old = await bindReplacedVolume(kube.client(), NS, 'data', OLD, { 'ferry.dev/migration': 'm1' });
    expect(old).toMatchObject({ claim: OLD, volume: 'pv-old' });
    const ref = get<V1PersistentVolume>(kube, 'PersistentVolume', 'pv-old')!.spec!.claimRef!;
    expect([ref.namespace, ref.name, ref.uid ?? null]).toEqual([NS, OLD, null]);
    const claim = get<V1PersistentVolumeClaim>(kube, 'PersistentVolumeClaim', OLD, NS)!;
    expect(claim.spec).toMatchObject({ volumeName: 'pv-old', storageClassName: 'slow', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2Gi' } }, volumeMode: 'Filesystem' });
    await old.release();
    expect(get(kube, 'PersistentVolumeClaim', OLD, NS)).toBeUndefined();
    expect(get(kube, 'PersistentVolume', 'pv-old')).toBeDefined();
    expect(get<V1PersistentVolumeClaim>(kube, 'PersistentVolumeClaim', 'data', NS)!.spec!.volumeName).toBe('pv-new');
  });

  it('refuses, changing nothing, when the old volume is not Retain, or the claim replaced none', async () => {
    const kube = moved('Delete');
    await expect(bindReplacedVolume(kube.client(), NS, 'data', OLD, {})).rejects.toThrow(/old volume pv-old of PVC shop\/data has reclaim policy Delete, not Retain/);
    expect(get<V1PersistentVolume>(kube, 'PersistentVolume', 'pv-old')!.spec!.claimRef!.name).toBe('data');
    expect(get(kube, 'PersistentVolumeClaim', OLD, NS)).toBeUndefined();
    const plain = new FakeKube([pvc('data', 'pv-new', 'fast')] as KubernetesObject[]);
    await expect(bindReplacedVolume(plain.client(), NS, 'data', OLD, {})).rejects.toThrow(/no ferry.dev\/replaced-volume annotation/);
  });
});
