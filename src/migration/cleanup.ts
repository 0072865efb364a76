/**
 * Cleanup: deletes every object a migration created for the transfer, by its labels
 * (names.ts `migrationSelector`), in every namespace of the plan on both clusters, and checks that
 * none remain. Destination PVCs and namespaces are not transfer objects and are never touched here
 * (rollback deletes PVCs through destination.ts, and only on request). crane-lib's destroy functions
 * are no-op stubs that leak the objects (konveyor/crane-lib).
 */
import type { CleanupReport } from '../core/types';
import { LABELS, migrationSelectorString } from '../statetransfer/names';
import { GROUP_SNAPSHOT_API_VERSION, SNAPSHOT_API_VERSION, SNAPSHOT_SOURCE_ROLE } from '../statetransfer/snapshot';
import { unlabelGroupSnapshotPVCs } from './snapshot';
import { endpointExtraKinds } from '../statetransfer/registry';
import { waitFor, type KindRef, type KubeClient } from '../k8s/client';
import { WaitTimeoutError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';

/** The kinds of transfer objects, in deletion order (pods first: they use the others); the endpoint
 * types' own kinds (Route, Ingress, ...) come from their EndpointKind (statetransfer/registry.ts). */
export const TRANSFER_OBJECT_KINDS: readonly KindRef[] = Object.freeze([
  { apiVersion: 'v1', kind: 'Pod' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  ...endpointExtraKinds(),
  { apiVersion: 'v1', kind: 'Service' },
  // a stage pass's VolumeGroupSnapshot (plan groupSnapshot; its member snapshots go with it), and a
  // stage sync's point-in-time source (sourceCopyMethod snapshot): its snapshot (the claim: below)
  { apiVersion: GROUP_SNAPSHOT_API_VERSION, kind: 'VolumeGroupSnapshot' },
  { apiVersion: SNAPSHOT_API_VERSION, kind: 'VolumeSnapshot' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'Secret' },
]);

/** PVCs are deleted only with the role of a point-in-time source (statetransfer/snapshot.ts): never
 * a destination PVC, whatever its labels. */
const POINT_IN_TIME_CLAIMS: readonly KindRef[] = Object.freeze([{ apiVersion: 'v1', kind: 'PersistentVolumeClaim' }]);
const pointInTimeSelector = (migrationId: string) => `${migrationSelectorString(migrationId)},${LABELS.role}=${SNAPSHOT_SOURCE_ROLE}`;

/** Namespaces to clean on each side. */
export interface CleanupScope {
  source: string[];
  destination: string[];
}

/** Counts the migration's transfer objects still present in a cluster. */
export async function countTransferObjects(client: KubeClient, namespaces: readonly string[], migrationId: string): Promise<number> {
  const selector = migrationSelectorString(migrationId);
  let n = 0;
  for (const ns of namespaces) {
    for (const kind of TRANSFER_OBJECT_KINDS) {
      if (!(await client.hasApi(kind.apiVersion, kind.kind))) continue;
      n += (await client.list(kind, ns, { labelSelector: selector })).length;
    }
    n += (await client.list(POINT_IN_TIME_CLAIMS[0]!, ns, { labelSelector: pointInTimeSelector(migrationId) })).length;
  }
  return n;
}

/** Options of `cleanupMigration`. */
export interface CleanupOptions {
  /** Seconds to wait for the objects to be gone (default 180). */
  timeoutSeconds?: number;
  onTick?: (remaining: number) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

/**
 * Deletes the migration's transfer objects in `scope` on both clusters and waits (up to
 * `timeoutSeconds`) until none is left. Returns the counts; `remaining` > 0 means something did not go
 * away in time (e.g. a finalizer): logged, not thrown, so the caller reports it.
 */
export async function cleanupMigration(source: KubeClient, destination: KubeClient, migrationId: string, scope: CleanupScope, options: CleanupOptions = {}): Promise<CleanupReport> {
  const log = options.logger ?? silentLogger;
  const selector = migrationSelectorString(migrationId);
  let sourceCount = 0;
  let destinationCount = 0;
  for (const ns of scope.source) {
    sourceCount += await source.deleteBySelector([...TRANSFER_OBJECT_KINDS], ns, selector);
    sourceCount += await source.deleteBySelector([...POINT_IN_TIME_CLAIMS], ns, pointInTimeSelector(migrationId));
    // the group-snapshot label on the user's source PVCs (plan groupSnapshot): removed, not counted
    const unlabelled = await unlabelGroupSnapshotPVCs(source, migrationId, ns);
    if (unlabelled.length > 0) log.info({ namespace: ns, pvcs: unlabelled }, 'removed the group-snapshot label from source PVCs');
  }
  for (const ns of scope.destination) destinationCount += await destination.deleteBySelector([...TRANSFER_OBJECT_KINDS], ns, selector);
  let remaining = 0;
  try {
    await waitFor(
      async () => {
        remaining = (await countTransferObjects(source, scope.source, migrationId)) + (await countTransferObjects(destination, scope.destination, migrationId));
        if (remaining === 0) return true;
        options.onTick?.(remaining);
        return false;
      },
      { timeoutSeconds: options.timeoutSeconds ?? 180, intervalSeconds: 2, signal: options.signal, description: 'transfer objects to be deleted' },
    );
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    log.warn({ remaining }, 'some transfer objects are still present after cleanup');
  }
  log.info({ source: sourceCount, destination: destinationCount, remaining }, 'cleanup done');
  return { source: sourceCount, destination: destinationCount, remaining };
}
