/**
 * The destination namespace and PVCs.
 *
 * The namespace copies the source namespace's labels and annotations (MTC does the same: on OpenShift
 * they carry the namespace's UID/GID ranges, `openshift.io/sa.scc.*`, which decide file ownership of
 * the migrated applications). A namespace that already exists is used as it is (GitOps often creates
 * it first); it counts as created by Ferry when it carries this migration's id annotation.
 *
 * PVCs copy the source PVC's labels and its annotations except those the control plane writes
 * (binding, provisioner, selected node, last-applied), get the mapped StorageClass, access modes and
 * size, and carry `ferry.dev/migration` so a retry adopts them and a rollback can tell them apart from
 * PVCs someone else made.
 */
import type { V1Namespace, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { NamespaceDiscovery, PVCInfo } from '../core/types';
import { ANNOTATIONS, LABELS, migrationKey } from '../statetransfer/names';
import type { KubeClient } from '../k8s/client';
import { FerryError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';

/** Annotation prefixes the control plane owns on PVCs and namespaces: never copied. */
const SYSTEM_ANNOTATION = /^(pv\.kubernetes\.io\/|volume\.kubernetes\.io\/|volume\.beta\.kubernetes\.io\/|kubectl\.kubernetes\.io\/last-applied-configuration$|control-plane\.alpha\.kubernetes\.io\/)/;
/** Labels the API server sets itself. */
const SYSTEM_LABELS = new Set(['kubernetes.io/metadata.name']);

function copyAnnotations(a: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(a ?? {}).filter(([k]) => !SYSTEM_ANNOTATION.test(k) && k !== 'ferry.dev/pre-quiesce' && k !== CUTOVER_ANNOTATIONS.by && k !== CUTOVER_ANNOTATIONS.at),
  );
}

/**
 * The cutover mark of a destination PVC: after the final sync of a PVC succeeded, the PVC belongs to
 * the cut-over application, and no migration may write into it again unless its plan says
 * `overwriteCutoverPVCs: true` (a second final sync with --delete would overwrite what the
 * application wrote since). `by`: the migration id; `at`: ISO 8601 time of the mark.
 */
export const CUTOVER_ANNOTATIONS = { by: 'ferry.dev/cutover-by', at: 'ferry.dev/cutover-at' } as const;

/** The cutover mark of `pvc`, or undefined when it carries none. */
export function cutoverMarkOf(pvc: V1PersistentVolumeClaim | undefined): { by: string; at?: string } | undefined {
  const a = pvc?.metadata?.annotations;
  const by = a?.[CUTOVER_ANNOTATIONS.by];
  if (!by) return undefined;
  const at = a?.[CUTOVER_ANNOTATIONS.at];
  return { by, ...(at ? { at } : {}) };
}

/**
 * Marks the destination PVC `namespace/name` as cut over by `migrationId` (see CUTOVER_ANNOTATIONS).
 * Called once the final sync of the PVC succeeded; idempotent (a retry rewrites the same id).
 * @throws FerryError (config) when the PVC does not exist: the final sync just wrote into it, so
 *   that means someone deleted it.
 */
export async function markCutover(destination: KubeClient, migrationId: string, namespace: string, name: string, at: Date = new Date()): Promise<void> {
  const ref = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name };
  if (!(await destination.get<V1PersistentVolumeClaim>(ref))) {
    throw new FerryError('config', `destination PVC ${namespace}/${name} disappeared right after its final sync: check who deleted it before using the migrated data`);
  }
  await destination.patch(ref, { metadata: { annotations: { [CUTOVER_ANNOTATIONS.by]: migrationId, [CUTOVER_ANNOTATIONS.at]: at.toISOString() } } });
}

function copyLabels(l: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(l ?? {}).filter(([k]) => !SYSTEM_LABELS.has(k)));
}

/** Pure: the destination Namespace object for a source namespace. */
export function destinationNamespaceObject(migrationId: string, name: string, source: V1Namespace | undefined): V1Namespace {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      labels: copyLabels(source?.metadata?.labels),
      annotations: { ...copyAnnotations(source?.metadata?.annotations), [ANNOTATIONS.migrationId]: migrationId },
    },
  };
}

/** Pure: the destination PVC for a source PVC (see module docstring). */
export function destinationPVCObject(migrationId: string, namespace: string, info: PVCInfo, source: V1PersistentVolumeClaim | undefined): V1PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: info.destinationName,
      namespace,
      labels: { ...copyLabels(source?.metadata?.labels), [LABELS.migration]: migrationKey(migrationId) },
      annotations: { ...copyAnnotations(source?.metadata?.annotations), [ANNOTATIONS.migrationId]: migrationId, [ANNOTATIONS.pvc]: info.name },
    },
    spec: {
      accessModes: [...info.destinationAccessModes],
      resources: { requests: { storage: info.capacity } },
      volumeMode: info.volumeMode,
      ...(info.destinationStorageClass !== undefined ? { storageClassName: info.destinationStorageClass } : {}),
    },
  };
}

/**
 * Creates the destination namespace when absent (labels and annotations of the source namespace, and
 * this migration's id annotation: see destinationNamespaceObject), or uses the existing one. Safe to
 * call from several activities at once (prepareDestination and createEndpoint run concurrently): a
 * creation that loses the race (409) reads the winner's. `createdNamespace` is true when the namespace
 * carries this migration's id annotation, i.e. Ferry made it, whichever call did.
 * @throws FerryError (preflight) when the destination namespace is being deleted (Terminating).
 */
export async function ensureDestinationNamespace(
  source: KubeClient,
  destination: KubeClient,
  migrationId: string,
  sourceNamespace: string,
  destinationNamespace: string,
  logger: Logger = silentLogger,
): Promise<{ namespace: V1Namespace | undefined; createdNamespace: boolean }> {
  const dstNs = destinationNamespace;
  let ns = await destination.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name: dstNs });
  if (!ns) {
    const src = await source.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name: sourceNamespace });
    try {
      ns = (await destination.objects.create(destinationNamespaceObject(migrationId, dstNs, src))) as V1Namespace;
      logger.info({ namespace: dstNs }, 'destination namespace created');
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
      ns = await destination.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name: dstNs });
    }
  }
  if (ns?.metadata?.deletionTimestamp || ns?.status?.phase === 'Terminating') {
    throw new FerryError('preflight', `destination namespace ${dstNs} is being deleted (Terminating): wait until it is gone or choose another destination namespace`);
  }
  return { namespace: ns, createdNamespace: ns?.metadata?.annotations?.[ANNOTATIONS.migrationId] === migrationId };
}

/** How many destination PVCs `prepareDestination` creates at the same time. */
export const PVC_CREATE_CONCURRENCY = 8;

/**
 * Creates the destination namespace (when absent: ensureDestinationNamespace) and PVCs (or adopts
 * this migration's own), PVC_CREATE_CONCURRENCY PVCs at a time. Returns whether the namespace is
 * Ferry's and the PVCs this migration created (adopted ones included: they were created by an
 * earlier attempt of the same migration), in the order of `discovery.pvcs`.
 * @throws FerryError (preflight) when the destination namespace is being deleted; ConflictError when
 *   a PVC of that name exists and is not this migration's.
 */
export async function prepareDestination(
  source: KubeClient,
  destination: KubeClient,
  migrationId: string,
  discovery: NamespaceDiscovery,
  logger: Logger = silentLogger,
): Promise<{ createdNamespace: boolean; createdPVCs: string[] }> {
  const dstNs = discovery.destinationNamespace;
  const { createdNamespace } = await ensureDestinationNamespace(source, destination, migrationId, discovery.sourceNamespace, dstNs, logger);
  const createOne = async (info: PVCInfo): Promise<string> => {
    const src = await source.get<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: discovery.sourceNamespace, name: info.name });
    const { created } = await destination.createOrAdopt(destinationPVCObject(migrationId, dstNs, info, src));
    logger.info({ namespace: dstNs, pvc: info.destinationName, created }, created ? 'destination PVC created' : 'destination PVC of this migration already exists; adopted');
    return info.destinationName;
  };
  const createdPVCs: string[] = [];
  for (let i = 0; i < discovery.pvcs.length; i += PVC_CREATE_CONCURRENCY) {
    // Every call of a batch ends before a failure is thrown: nothing is still being created after.
    const batch = await Promise.allSettled(discovery.pvcs.slice(i, i + PVC_CREATE_CONCURRENCY).map(createOne));
    for (const r of batch) if (r.status === 'rejected') throw r.reason;
    createdPVCs.push(...batch.map((r) => (r as PromiseFulfilledResult<string>).value));
  }
  return { createdNamespace, createdPVCs };
}

/**
 * Rollback: deletes the named destination PVCs that carry this migration's label; a PVC of that name
 * without the label (someone else's) is left alone and logged. Returns the names deleted.
 */
export async function deleteDestinationPVCs(destination: KubeClient, migrationId: string, namespace: string, names: readonly string[], logger: Logger = silentLogger): Promise<string[]> {
  const deleted: string[] = [];
  for (const name of names) {
    const ref = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name };
    const pvc = await destination.get<V1PersistentVolumeClaim>(ref);
    if (!pvc) continue;
    if (pvc.metadata?.labels?.[LABELS.migration] !== migrationKey(migrationId)) {
      logger.warn({ namespace, pvc: name }, 'destination PVC is not this migration\'s; not deleted');
      continue;
    }
    if (await destination.delete(ref)) deleted.push(name);
  }
  if (deleted.length) logger.info({ namespace, pvcs: deleted }, 'destination PVCs deleted (rollback)');
  return deleted;
}

/**
 * Rollback of a namespace whose final sync did not complete: removes the cutover marks `migrationId`
 * left on destination PVCs of `namespace` (PVCs whose own final sync had succeeded), since the
 * namespace did not cut over and a new run may write into them again. Marks of other migrations
 * are left alone. Returns the names of the PVCs unmarked.
 */
export async function clearCutoverMarks(destination: KubeClient, migrationId: string, namespace: string, logger: Logger = silentLogger): Promise<string[]> {
  const cleared: string[] = [];
  for (const pvc of await destination.list<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim' }, namespace)) {
    if (cutoverMarkOf(pvc)?.by !== migrationId) continue;
    const name = pvc.metadata!.name!;
    await destination.patch({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name }, { metadata: { annotations: { [CUTOVER_ANNOTATIONS.by]: null, [CUTOVER_ANNOTATIONS.at]: null } } });
    cleared.push(name);
  }
  if (cleared.length) logger.info({ namespace, pvcs: cleared }, 'cutover marks removed (the namespace rolled back before its cutover completed)');
  return cleared;
}
