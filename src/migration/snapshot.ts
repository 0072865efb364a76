/**
 * A point-in-time source for one stage sync (plan `sourceCopyMethod: snapshot | clone`): the
 * VolumeSnapshot (ready to use) and the claim restored from it, or a clone of the source PVC, made
 * before the sync and deleted after it, whatever happened (statetransfer/snapshot.ts builds them).
 * Idempotent: a retried sync of the same pass reuses them; objects of another pass are replaced. The
 * final sync reads the source PVC itself (the application is quiesced).
 */
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { FerryError, errorMessage } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { parseQuantity } from '../k8s/quantity';
import { waitFor, type KubeClient } from '../k8s/client';
import { pointInTimeClaim, pointInTimeClaimName, SNAPSHOT_API_VERSION, SNAPSHOT_PASS_ANNOTATION, snapshotName, volumeSnapshot, type PointInTimeOptions, type SourceCopyMethod, type VolumeSnapshotObject } from '../statetransfer/snapshot';

/** Options of `preparePointInTime`. */
export interface PointInTimeRun extends PointInTimeOptions {
  method: Exclude<SourceCopyMethod, 'direct'>;
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
  if (o.method === 'snapshot') {
    const name = snapshotName(o.migrationId, o.pvc);
    const old = await client.get<VolumeSnapshotObject>(snapRef(o.namespace, name));
    if (old && old.metadata?.annotations?.[SNAPSHOT_PASS_ANNOTATION] !== pass) await deleteAndWait(client, snapRef(o.namespace, name), o.signal);
    await client.createOrAdopt(volumeSnapshot(o) as never);
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
  await client.createOrAdopt(pointInTimeClaim(o, o.method, size));
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
