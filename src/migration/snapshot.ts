/**
 * A point-in-time source for one stage sync (plan `sourceCopyMethod: snapshot | clone`): the
 * VolumeSnapshot (ready to use) and the claim restored from it, or a clone of the source PVC, made
 * before the sync and deleted after it, whatever happened (statetransfer/snapshot.ts builds them).
 * Idempotent: a retried sync of the same pass reuses them; objects of another pass are replaced. The
 * final sync reads the source PVC itself (the application is quiesced).
 */
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { FerryError, WaitTimeoutError, errorMessage } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { parseQuantity } from '../k8s/quantity';
import { waitFor, type KubeClient } from '../k8s/client';
import {
  GROUP_SNAPSHOT_API_VERSION,
  GROUP_SNAPSHOT_LABEL,
  groupSnapshotLabelValue,
  groupSnapshotName,
  pointInTimeClaim,
  pointInTimeClaimName,
  SNAPSHOT_API_VERSION,
  SNAPSHOT_PASS_ANNOTATION,
  snapshotName,
  volumeGroupSnapshot,
  volumeSnapshot,
  type GroupSnapshotOptions,
  type PointInTimeOptions,
  type SourceCopyMethod,
  type VolumeGroupSnapshotObject,
  type VolumeSnapshotObject,
} from '../statetransfer/snapshot';

/** Options of `preparePointInTime`. */
export interface PointInTimeRun extends PointInTimeOptions {
  method: Exclude<SourceCopyMethod, 'direct'>;
  /** snapshot: restore from this existing VolumeSnapshot (the PVC's member of the stage pass's
   * VolumeGroupSnapshot) instead of taking one. */
  fromSnapshot?: string;
  /** Limit for the snapshot to become ready, seconds. */
  timeoutSeconds: number;
  signal?: AbortSignal;
  logger?: Logger;
}

const snapRef = (namespace: string, name: string) => ({ apiVersion: SNAPSHOT_API_VERSION, kind: 'VolumeSnapshot', namespace, name });
const pvcRef = (namespace: string, name: string) => ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name });

/** Deletes an object and waits until it is gone (a VolumeSnapshot waits for its content's deletion). */
async function deleteAndWait(client: KubeClient, ref: { apiVersion: string; kind: string; namespace: string; name: string }, signal?: AbortSignal): Promise<void> {
  await client.delete(ref);
  await waitFor(async () => ((await client.get(ref)) ? undefined : true), { timeoutSeconds: 300, intervalSeconds: 1, description: `${ref.kind} ${ref.namespace}/${ref.name} to be deleted`, ...(signal ? { signal } : {}) });
}

/**
 * Makes the point-in-time claim of one PVC for pass `o.pass` and returns its name.
 * @throws FerryError (config) when the snapshot fails (its error message), transient on timeout.
 */
export async function preparePointInTime(client: KubeClient, o: PointInTimeRun): Promise<string> {
  const log = o.logger ?? silentLogger;
  const claim = pointInTimeClaimName(o.migrationId, o.pvc);
  const pass = String(o.pass);
  // Objects of another pass (a crash before their deletion) would give an older copy: replace them.
  const oldClaim = await client.get<V1PersistentVolumeClaim>(pvcRef(o.namespace, claim));
  if (oldClaim && oldClaim.metadata?.annotations?.[SNAPSHOT_PASS_ANNOTATION] !== pass) await deleteAndWait(client, pvcRef(o.namespace, claim), o.signal);
  let size = o.capacity;
  const name = o.fromSnapshot ?? snapshotName(o.migrationId, o.pvc);
  if (o.method === 'snapshot') {
    if (o.fromSnapshot === undefined) {
      const old = await client.get<VolumeSnapshotObject>(snapRef(o.namespace, name));
      if (old && old.metadata?.annotations?.[SNAPSHOT_PASS_ANNOTATION] !== pass) await deleteAndWait(client, snapRef(o.namespace, name), o.signal);
      await client.createOrAdopt(volumeSnapshot(o) as never);
    }
    const ready = await waitFor(
      async () => {
        const s = await client.get<VolumeSnapshotObject>(snapRef(o.namespace, name));
        if (s?.status?.error?.message) throw new FerryError('config', `VolumeSnapshot ${o.namespace}/${name} of PVC ${o.pvc} failed: ${s.status.error.message}`);
        return s?.status?.readyToUse === true ? s : undefined;
      },
      { timeoutSeconds: o.timeoutSeconds, intervalSeconds: 1, description: `VolumeSnapshot ${o.namespace}/${name} of PVC ${o.pvc} to be ready to use`, ...(o.signal ? { signal: o.signal } : {}) },
    );
    const restore = ready.status?.restoreSize;
    // A restored volume must be at least the snapshot's restoreSize.
    if (restore && parseQuantity(restore) > parseQuantity(o.capacity)) size = restore;
    log.info({ pvc: o.pvc, snapshot: name, restoreSize: restore }, 'source snapshot ready');
  }
  await client.createOrAdopt(pointInTimeClaim(o, o.method, size, name));
  return claim;
}

/** Deletes the point-in-time claim and snapshot of one PVC and waits until they are gone. */
export async function releasePointInTime(client: KubeClient, o: Pick<PointInTimeOptions, 'migrationId' | 'namespace' | 'pvc'>, logger: Logger = silentLogger): Promise<void> {
  for (const ref of [pvcRef(o.namespace, pointInTimeClaimName(o.migrationId, o.pvc)), snapRef(o.namespace, snapshotName(o.migrationId, o.pvc))]) {
    try {
      if (ref.kind === 'VolumeSnapshot' && !(await client.hasApi(SNAPSHOT_API_VERSION, 'VolumeSnapshot'))) continue;
      await deleteAndWait(client, ref);
    } catch (err) {
      logger.warn({ object: `${ref.kind} ${ref.namespace}/${ref.name}`, error: errorMessage(err) }, 'could not delete a point-in-time source object; cleanup deletes it');
    }
  }
}

const groupRef = (namespace: string, name: string) => ({ apiVersion: GROUP_SNAPSHOT_API_VERSION, kind: 'VolumeGroupSnapshot', namespace, name });

/** Options of `prepareGroupSnapshot`. */
export interface GroupSnapshotRun extends GroupSnapshotOptions {
  /** The source PVCs of the namespace to snap together. */
  pvcs: string[];
  /** Limit for the group and its member snapshots to become ready, seconds. */
  timeoutSeconds: number;
  /** Called once, as soon as the group snapshot is cut (its creationTime is set, or it is ready to
   * use): background hooks are released here. */
  onCut?: () => Promise<void>;
  signal?: AbortSignal;
  logger?: Logger;
}

type MemberSnapshot = VolumeSnapshotObject & { status?: VolumeSnapshotObject['status'] & { volumeGroupSnapshotName?: string } };

/**
 * Snaps the source PVCs `o.pvcs` of one namespace together for stage pass `o.pass` (plan
 * `groupSnapshot`): labels them (GROUP_SNAPSHOT_LABEL), creates the VolumeGroupSnapshot selecting that
 * label, waits until it and a ready member VolumeSnapshot of every PVC exist, and returns PVC name →
 * member snapshot name. Idempotent for one pass; a group of another pass is replaced.
 * @throws FerryError (config) when the group snapshot fails or a labelled PVC has no member; a
 *   WaitTimeoutError when it is not ready in time.
 */
export async function prepareGroupSnapshot(client: KubeClient, o: GroupSnapshotRun): Promise<Record<string, string>> {
  const log = o.logger ?? silentLogger;
  const name = groupSnapshotName(o.migrationId);
  const value = groupSnapshotLabelValue(o.migrationId);
  for (const pvc of o.pvcs) await client.patch(pvcRef(o.namespace, pvc), { metadata: { labels: { [GROUP_SNAPSHOT_LABEL]: value } } });
  const old = await client.get<VolumeGroupSnapshotObject>(groupRef(o.namespace, name));
  if (old && old.metadata?.annotations?.[SNAPSHOT_PASS_ANNOTATION] !== String(o.pass)) await deleteAndWait(client, groupRef(o.namespace, name), o.signal);
  await client.createOrAdopt(volumeGroupSnapshot(o) as never);
  let cut = false;
  const wait = { timeoutSeconds: o.timeoutSeconds, intervalSeconds: 1, ...(o.signal ? { signal: o.signal } : {}) };
  await waitFor(
    async () => {
      const g = await client.get<VolumeGroupSnapshotObject>(groupRef(o.namespace, name));
      if (g?.status?.error?.message) throw new FerryError('config', `VolumeGroupSnapshot ${o.namespace}/${name} failed: ${g.status.error.message}`);
      if (!cut && (g?.status?.creationTime !== undefined || g?.status?.readyToUse === true)) {
        cut = true;
        await o.onCut?.();
      }
      return g?.status?.readyToUse === true;
    },
    { ...wait, description: `VolumeGroupSnapshot ${o.namespace}/${name} of ${o.pvcs.length} PVC(s) to be ready to use` },
  );
  // The member VolumeSnapshots are made by the snapshot-controller, ready a moment after the group.
  const members = await waitFor(
    async () => {
      const all = await client.list<MemberSnapshot>({ apiVersion: SNAPSHOT_API_VERSION, kind: 'VolumeSnapshot' }, o.namespace);
      const mine = all.filter((v) => v.status?.volumeGroupSnapshotName === name && v.status.readyToUse === true);
      const byPVC = Object.fromEntries(mine.map((v) => [v.spec.source.persistentVolumeClaimName, v.metadata.name]));
      return o.pvcs.every((p) => byPVC[p] !== undefined) ? byPVC : undefined;
    },
    { ...wait, description: `the member snapshots of VolumeGroupSnapshot ${o.namespace}/${name} (PVCs ${o.pvcs.join(', ')})` },
  );
  log.info({ group: name, members }, 'source group snapshot ready');
  return Object.fromEntries(o.pvcs.map((p) => [p, members[p]!]));
}

/**
 * Deletes the namespace's VolumeGroupSnapshot and waits until it and its member VolumeSnapshots are
 * gone (the snapshot-controller deletes the members after the group; a member still there after 60 s
 * is deleted explicitly).
 */
export async function releaseGroupSnapshot(client: KubeClient, o: Pick<GroupSnapshotOptions, 'migrationId' | 'namespace'>, signal?: AbortSignal): Promise<void> {
  if (!(await client.hasApi(GROUP_SNAPSHOT_API_VERSION, 'VolumeGroupSnapshot'))) return;
  const name = groupSnapshotName(o.migrationId);
  const members = async () => (await client.list<MemberSnapshot>({ apiVersion: SNAPSHOT_API_VERSION, kind: 'VolumeSnapshot' }, o.namespace)).filter((v) => v.status?.volumeGroupSnapshotName === name);
  const before = await members();
  await deleteAndWait(client, groupRef(o.namespace, name), signal);
  const gone = async () => {
    const names = new Set(before.map((m) => m.metadata.name));
    return (await members()).filter((m) => names.has(m.metadata.name)).length === 0 && (await Promise.all(before.map((m) => client.get(snapRef(o.namespace, m.metadata.name))))).every((x) => x === undefined);
  };
  try {
    await waitFor(gone, { timeoutSeconds: 60, intervalSeconds: 1, description: `the member snapshots of VolumeGroupSnapshot ${o.namespace}/${name} to be deleted`, ...(signal ? { signal } : {}) });
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    for (const m of before) await deleteAndWait(client, snapRef(o.namespace, m.metadata.name), signal);
  }
}

/** Removes GROUP_SNAPSHOT_LABEL (this migration's value) from the source PVCs of `namespace`; their names. */
export async function unlabelGroupSnapshotPVCs(client: KubeClient, migrationId: string, namespace: string): Promise<string[]> {
  const value = groupSnapshotLabelValue(migrationId);
  const pvcs = await client.list<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim' }, namespace, { labelSelector: `${GROUP_SNAPSHOT_LABEL}=${value}` });
  for (const p of pvcs) await client.patch(pvcRef(namespace, p.metadata!.name!), { metadata: { labels: { [GROUP_SNAPSHOT_LABEL]: null } } });
  return pvcs.map((p) => p.metadata!.name!);
}
