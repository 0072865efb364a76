/**
 * Same-cluster moves that keep the PVC names (plan `keepPVCNames`; pvmigrate's approach): each source
 * PVC was copied into a temporary PVC of the destination StorageClass in the same namespace
 * (`temporaryClaimName`); after the final sync, with the applications quiesced and Ferry's pods
 * gone, `rebindClaim` puts the original name on the new volume:
 *
 *   1. both PersistentVolumes get reclaimPolicy Retain (their own policy noted in an annotation), so
 *      deleting a claim never deletes data;
 *   2. the temporary PVC is deleted (its PV becomes Released) and the original PVC is deleted;
 *   3. the new PV is pre-bound to the original name (spec.claimRef namespace/name, no uid: no other
 *      claim can take it) and a PVC of the original name is created with the original metadata and
 *      the new spec (class, size, access modes, volumeName) and the temporary claim's cutover mark
 *      (destination.ts CUTOVER_ANNOTATIONS; `ferry verify` finds the claim by it);
 *   4. once Bound, the new PV gets its own reclaim policy back; the old PV stays Released with Retain:
 *      the old data, for the operator to delete when satisfied (its name is reported).
 *
 * Every step checks the state first, so a retried or resumed call goes on where the last one stopped
 * (the annotation `ferry.dev/rebind-of` on the new PV names the claim it is for). Kubernetes: a PV
 * whose claimRef names a claim without uid is reserved for it (the PV controller binds them;
 * https://kubernetes.io/docs/concepts/storage/persistent-volumes/#reserving-a-persistentvolume).
 */
import type { V1PersistentVolume, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { FerryError } from '../core/errors';
import type { RebindResult } from '../core/types';
import { silentLogger, type Logger } from '../core/log';
import { waitFor, type KubeClient } from '../k8s/client';
import { objectName } from '../statetransfer/names';
import { CUTOVER_ANNOTATIONS } from './destination';

/** Name of the temporary PVC a source PVC is copied into (keepPVCNames). */
export function temporaryClaimName(migrationId: string, pvc: string): string {
  return objectName(migrationId, 'new', pvc);
}

/** On a PV Ferry set to Retain: its reclaim policy before. */
export const PRIOR_RECLAIM_ANNOTATION = 'ferry.dev/prior-reclaim-policy';
/** On the new PV: the claim (namespace/name) it is being bound to. */
export const REBIND_ANNOTATION = 'ferry.dev/rebind-of';
/** On the rebound PVC: the PV that held its data before (NO_VOLUME when there was none). */
export const REPLACED_VOLUME_ANNOTATION = 'ferry.dev/replaced-volume';
/** REPLACED_VOLUME_ANNOTATION's value when the claim had no volume before. */
export const NO_VOLUME = '-';

/** Annotations the PV controller and provisioners write on a claim: not copied to the new one. */
const BIND_ANNOTATIONS = [
  'pv.kubernetes.io/bind-completed',
  'pv.kubernetes.io/bound-by-controller',
  'volume.beta.kubernetes.io/storage-provisioner',
  'volume.kubernetes.io/storage-provisioner',
  'volume.kubernetes.io/selected-node',
];

const pvcRef = (namespace: string, name: string) => ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name });
const pvRef = (name: string) => ({ apiVersion: 'v1', kind: 'PersistentVolume', name });

async function retain(client: KubeClient, pv: V1PersistentVolume): Promise<void> {
  const policy = pv.spec?.persistentVolumeReclaimPolicy;
  if (policy === 'Retain' && pv.metadata?.annotations?.[PRIOR_RECLAIM_ANNOTATION] !== undefined) return;
  await client.patch(pvRef(pv.metadata!.name!), {
    metadata: { annotations: { [PRIOR_RECLAIM_ANNOTATION]: pv.metadata?.annotations?.[PRIOR_RECLAIM_ANNOTATION] ?? policy ?? 'Delete' } },
    spec: { persistentVolumeReclaimPolicy: 'Retain' },
  });
}

/** The pods of `namespace` whose volumes name claim `pvc`. */
async function podsUsing(client: KubeClient, namespace: string, pvc: string): Promise<V1Pod[]> {
  return (await client.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace)).filter((p) => (p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === pvc));
}

/**
 * Deletes the finished pods (Succeeded or Failed: a completed Job's) that name claim `pvc`: the PVC
 * protection controller keeps a claim while any pod object references it, finished or not (Kubernetes
 * docs, "Storage Object in Use Protection"). Running pods are left alone (the wait then names them).
 * Returns the names deleted.
 */
export async function deleteFinishedPods(client: KubeClient, namespace: string, pvc: string): Promise<string[]> {
  const finished = (await podsUsing(client, namespace, pvc)).filter((p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed');
  for (const p of finished) await client.delete({ apiVersion: 'v1', kind: 'Pod', namespace, name: p.metadata!.name! });
  return finished.map((p) => p.metadata!.name!);
}

async function gone(client: KubeClient, namespace: string, name: string, signal?: AbortSignal): Promise<void> {
  let users: string[] = [];
  await waitFor(
    async () => {
      if (!(await client.get(pvcRef(namespace, name)))) return true;
      users = (await podsUsing(client, namespace, name)).map((p) => `${p.metadata?.name} (${p.status?.phase ?? '?'})`);
      return undefined;
    },
    {
      timeoutSeconds: 300,
      intervalSeconds: 1,
      description: `PVC ${namespace}/${name} to be deleted`,
      explain: () => (users.length ? `pods still name it (kubernetes.io/pvc-protection keeps it): ${users.join(', ')}; stop them` : 'no pod names it; check its finalizers'),
      ...(signal ? { signal } : {}),
    },
  );
}

/**
 * Binds the original name `pvc` to the volume of the temporary claim `temporary` (see the module
 * docstring). Idempotent: resumes after a crash at any step.
 * @throws FerryError (config) when neither the temporary PVC nor a new PV marked for `pvc` is found
 *   (nothing is deleted then); WaitTimeoutError naming the pods that still use a claim being deleted;
 *   API errors (retried by the activity).
 */
export async function rebindClaim(client: KubeClient, namespace: string, pvc: string, temporary: string, o: { signal?: AbortSignal; logger?: Logger } = {}): Promise<RebindResult> {
  const log = o.logger ?? silentLogger;
  const mark = `${namespace}/${pvc}`;
  const original = await client.get<V1PersistentVolumeClaim>(pvcRef(namespace, pvc));
  const temp = await client.get<V1PersistentVolumeClaim>(pvcRef(namespace, temporary));
  // The new PV: the temporary claim's, else (resumed after its deletion) the one marked for this claim.
  let newPV: V1PersistentVolume | undefined;
  if (temp?.spec?.volumeName) newPV = await client.get<V1PersistentVolume>(pvRef(temp.spec.volumeName));
  if (!newPV) newPV = (await client.list<V1PersistentVolume>({ apiVersion: 'v1', kind: 'PersistentVolume' })).find((p) => p.metadata?.annotations?.[REBIND_ANNOTATION] === mark);
  const replaced = original?.metadata?.annotations?.[REPLACED_VOLUME_ANNOTATION];
  if (!newPV && !temp && replaced !== undefined && original?.status?.phase === 'Bound' && original.spec?.volumeName) {
    // finished before: the claim Ferry made carries the replaced-volume mark
    return { pvc, newVolume: original.spec.volumeName, ...(replaced !== NO_VOLUME ? { oldVolume: replaced } : {}) };
  }
  if (!newPV) throw new FerryError('config', `cannot rebind PVC ${mark}: its temporary PVC ${temporary} is not bound to a volume, and no volume is marked ${REBIND_ANNOTATION}=${mark}`);
  const newName = newPV.metadata!.name!;
  // Done already (a resumed call): the original name is bound to the new volume.
  if (original?.spec?.volumeName === newName && original.status?.phase === 'Bound') {
    await restorePolicy(client, newPV);
    return { pvc, newVolume: newName, ...(replaced !== undefined && replaced !== NO_VOLUME ? { oldVolume: replaced } : {}) };
  }
  const oldName = original?.spec?.volumeName && original.spec.volumeName !== newName ? original.spec.volumeName : undefined;
  // 1. nothing may delete data from here on
  await retain(client, newPV);
  // the temporary claim's cutover mark (destination.ts) goes onto the claim of the original name; kept
  // on the new PV meanwhile, so a rebind resumed after the temporary claim's deletion still has it
  const cutover = cutoverMark(temp) ?? cutoverMark(newPV);
  if (newPV.metadata?.annotations?.[REBIND_ANNOTATION] !== mark || (cutover && !cutoverMark(newPV))) {
    await client.patch(pvRef(newName), { metadata: { annotations: { [REBIND_ANNOTATION]: mark, ...cutover } } });
  }
  const oldPV = oldName ? await client.get<V1PersistentVolume>(pvRef(oldName)) : undefined;
  if (oldPV) await retain(client, oldPV);
  // 2. the temporary claim and the original claim go (their volumes stay: Retain)
  if (temp) {
    await client.delete(pvcRef(namespace, temporary));
    await gone(client, namespace, temporary, o.signal);
  }
  const template = original;
  let deletedPods: string[] = [];
  if (original) {
    await client.delete(pvcRef(namespace, pvc));
    // finished pods (a completed Job's) still count as users for kubernetes.io/pvc-protection
    deletedPods = await deleteFinishedPods(client, namespace, pvc);
    if (deletedPods.length) log.warn({ namespace, pvc, pods: deletedPods }, 'deleted finished pods that still referenced the PVC (kubernetes.io/pvc-protection keeps a claim while any pod object names it)');
    await gone(client, namespace, pvc, o.signal);
  }
  // 3. reserve the new volume for the original name, and make that claim
  await client.patch(pvRef(newName), { spec: { claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name: pvc, uid: null, resourceVersion: null } } });
  const spec = temp?.spec ?? {};
  const labels = { ...(template?.metadata?.labels ?? temp?.metadata?.labels ?? {}) };
  const annotations = Object.fromEntries(Object.entries(template?.metadata?.annotations ?? {}).filter(([k]) => !BIND_ANNOTATIONS.includes(k)));
  annotations[REPLACED_VOLUME_ANNOTATION] = oldName ?? NO_VOLUME;
  Object.assign(annotations, cutover);
  const capacity = newPV.spec?.capacity?.storage ?? spec.resources?.requests?.storage;
  await client.createOrAdopt<V1PersistentVolumeClaim>({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: pvc,
      namespace,
      labels,
      annotations,
      ...(template?.metadata?.ownerReferences ? { ownerReferences: template.metadata.ownerReferences } : {}),
    },
    spec: {
      accessModes: newPV.spec?.accessModes ?? spec.accessModes ?? [],
      resources: { requests: { storage: capacity ?? '1Gi' } },
      ...(newPV.spec?.storageClassName !== undefined ? { storageClassName: newPV.spec.storageClassName } : {}),
      volumeMode: newPV.spec?.volumeMode ?? spec.volumeMode ?? 'Filesystem',
      volumeName: newName,
    },
  });
  await waitFor(
    async () => {
      const c = await client.get<V1PersistentVolumeClaim>(pvcRef(namespace, pvc));
      return c?.status?.phase === 'Bound' && c.spec?.volumeName === newName ? true : undefined;
    },
    { timeoutSeconds: 300, intervalSeconds: 1, description: `PVC ${mark} to bind to volume ${newName}`, ...(o.signal ? { signal: o.signal } : {}) },
  );
  // 4. the new volume behaves as provisioned again; the old one stays kept
  await restorePolicy(client, (await client.get<V1PersistentVolume>(pvRef(newName)))!);
  log.info({ namespace, pvc, newVolume: newName, oldVolume: oldName }, 'PVC bound to its new volume under its own name (the old volume is kept: Released, Retain)');
  return { pvc, newVolume: newName, ...(oldName ? { oldVolume: oldName } : {}), ...(deletedPods.length ? { deletedPods } : {}) };
}

/** A temporary claim bound to the volume a keepPVCNames move replaced (`bindReplacedVolume`). */
export interface ReplacedVolumeClaim {
  /** The temporary claim's name (in the same namespace). */
  claim: string;
  /** The old PersistentVolume's name. */
  volume: string;
  /** Deletes the temporary claim and waits until it is gone; the volume is Released again (Retain). */
  release(): Promise<void>;
}

/**
 * Binds a temporary claim `name` to the old volume that claim `pvc` replaced in a keepPVCNames move
 * (its REPLACED_VOLUME_ANNOTATION), so that `ferry verify` can read the original data beside the
 * new volume. The volume is reserved for the temporary claim the way rebindClaim reserves the new
 * one (spec.claimRef without uid), the claim asks for the volume's own class, size, access modes and
 * volume mode, and `release()` deletes it: the volume's reclaim policy must be Retain, checked first,
 * so that the deletion leaves it Released with its data.
 * @throws FerryError (config), before anything is changed, when the claim carries no replaced volume
 *   (not made by a keepPVCNames move, or it had none), the volume is gone, its reclaim policy is not
 *   Retain, or another claim holds it; WaitTimeoutError when the claim does not bind within 120 s.
 */
export async function bindReplacedVolume(client: KubeClient, namespace: string, pvc: string, name: string, labels: Record<string, string>, o: { signal?: AbortSignal } = {}): Promise<ReplacedVolumeClaim> {
  const mark = `${namespace}/${pvc}`;
  const original = await client.get<V1PersistentVolumeClaim>(pvcRef(namespace, pvc));
  const replaced = original?.metadata?.annotations?.[REPLACED_VOLUME_ANNOTATION];
  if (replaced === undefined) throw new FerryError('config', `PVC ${mark} has no ${REPLACED_VOLUME_ANNOTATION} annotation: a keepPVCNames move did not make it, so there is no old volume to compare it with`);
  if (replaced === NO_VOLUME) throw new FerryError('config', `PVC ${mark} had no volume before the move (${REPLACED_VOLUME_ANNOTATION}: ${NO_VOLUME}): there is nothing to compare it with`);
  const pv = await client.get<V1PersistentVolume>(pvRef(replaced));
  if (!pv) throw new FerryError('config', `the old volume ${replaced} of PVC ${mark} is gone (deleted after the move): there is nothing to compare it with`);
  const policy = pv.spec?.persistentVolumeReclaimPolicy;
  if (policy !== 'Retain') throw new FerryError('config', `the old volume ${replaced} of PVC ${mark} has reclaim policy ${policy ?? 'unset'}, not Retain: deleting a claim bound to it could delete the data, so Ferry does not bind one; set it to Retain to compare`);
  const ref = pv.spec?.claimRef;
  if (pv.status?.phase === 'Bound' && !(ref?.namespace === namespace && ref?.name === name)) {
    throw new FerryError('config', `the old volume ${replaced} of PVC ${mark} is bound to claim ${ref?.namespace}/${ref?.name}: Ferry does not take it from that claim`);
  }
  const release = async () => {
    if (await client.get(pvcRef(namespace, name))) {
      await client.delete(pvcRef(namespace, name));
      await gone(client, namespace, name, o.signal);
    }
  };
  if (!(ref?.namespace === namespace && ref?.name === name)) {
    await client.patch(pvRef(replaced), { spec: { claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name, uid: null, resourceVersion: null } } });
  }
  try {
    await client.createOrAdopt<V1PersistentVolumeClaim>({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace, labels },
      spec: {
        accessModes: pv.spec?.accessModes ?? ['ReadWriteOnce'],
        resources: { requests: { storage: pv.spec?.capacity?.storage ?? '1Gi' } },
        storageClassName: pv.spec?.storageClassName ?? '',
        volumeMode: pv.spec?.volumeMode ?? 'Filesystem',
        volumeName: replaced,
      },
    });
    await waitFor(
      async () => {
        const c = await client.get<V1PersistentVolumeClaim>(pvcRef(namespace, name));
        return c?.status?.phase === 'Bound' && c.spec?.volumeName === replaced ? true : undefined;
      },
      { timeoutSeconds: 120, intervalSeconds: 1, description: `PVC ${namespace}/${name} to bind to the old volume ${replaced}`, ...(o.signal ? { signal: o.signal } : {}) },
    );
  } catch (e) {
    await release().catch(() => undefined);
    throw e;
  }
  return { claim: name, volume: replaced, release };
}

/** The cutover mark (destination.ts CUTOVER_ANNOTATIONS) on an object, if it carries one. */
function cutoverMark(o: { metadata?: { annotations?: Record<string, string> } } | undefined): Record<string, string> | undefined {
  const a = o?.metadata?.annotations;
  const by = a?.[CUTOVER_ANNOTATIONS.by];
  if (!by) return undefined;
  return { [CUTOVER_ANNOTATIONS.by]: by, ...(a?.[CUTOVER_ANNOTATIONS.at] ? { [CUTOVER_ANNOTATIONS.at]: a[CUTOVER_ANNOTATIONS.at]! } : {}) };
}

/** Gives the new PV its own reclaim policy back and removes Ferry's marks from it. */
async function restorePolicy(client: KubeClient, pv: V1PersistentVolume): Promise<void> {
  const prior = pv.metadata?.annotations?.[PRIOR_RECLAIM_ANNOTATION];
  if (prior === undefined && pv.metadata?.annotations?.[REBIND_ANNOTATION] === undefined) return;
  await client.patch(pvRef(pv.metadata!.name!), {
    metadata: { annotations: { [PRIOR_RECLAIM_ANNOTATION]: null, [REBIND_ANNOTATION]: null, [CUTOVER_ANNOTATIONS.by]: null, [CUTOVER_ANNOTATIONS.at]: null } },
    ...(prior !== undefined ? { spec: { persistentVolumeReclaimPolicy: prior } } : {}),
  });
}
