/**
 * Discovery of one source namespace: the selected PVCs, what they become at the destination (size,
 * StorageClass, access modes), and the workloads that use them (what quiesce scales down, where a
 * ReadWriteOnce volume is attached, which identity reads it).
 *
 * Discovery never fails on a missing namespace or missing named PVCs: it returns what exists, and
 * preflight (./preflight.ts) reports the gaps together with every other problem.
 */
import type { KubernetesObject, V1Namespace, V1PersistentVolumeClaim, V1StorageClass } from '@kubernetes/client-node';
import type { NamespaceDiscovery, PendingRollout, PVCInfo, UnmanagedPod, WorkloadIdentity, WorkloadRef } from '../core/types';
import type { MigrationPlan, NamespaceMapping, PVCSelection } from '../plan/schema';
import type { KubeClient } from '../k8s/client';
import { ANNOTATIONS, LABELS } from '../statetransfer/names';
import { temporaryClaimName } from './rebind';
import { silentLogger, type Logger } from '../core/log';
import { parseQuantity } from '../k8s/quantity';
import {
  claimNamesOf,
  describeWorkload,
  identityOf,
  isTopLevelWorkload,
  isWorkloadKind,
  ownerIndex,
  podIsActive,
  podSpecOf,
  readInventory,
  resolveController,
  statefulSetOwnsClaim,
  workloadKey,
  workloadRef,
  writableClaimNamesOf,
  type WorkloadInventory,
} from './workloads';

/** Annotation marking the cluster's default StorageClass (Kubernetes docs, "Change the default StorageClass"). */
export const DEFAULT_CLASS_ANNOTATION = 'storageclass.kubernetes.io/is-default-class';
/** The pre-GA spelling of the same annotation, still honoured by the API server. */
export const BETA_DEFAULT_CLASS_ANNOTATION = 'storageclass.beta.kubernetes.io/is-default-class';

/** Plan fields that decide a destination PVC's class and access modes. */
export type StorageMappingPlan = Pick<MigrationPlan, 'storageClassMapping' | 'accessModeMapping' | 'defaultStorageClass'>;

/** The name of the default StorageClass among `classes`, if exactly one is marked default. */
export function defaultStorageClassName(classes: readonly V1StorageClass[]): string | undefined {
  const marked = classes.filter((c) => {
    const a = c.metadata?.annotations ?? {};
    return a[DEFAULT_CLASS_ANNOTATION] === 'true' || a[BETA_DEFAULT_CLASS_ANNOTATION] === 'true';
  });
  // With several defaults the API server picks the newest (Kubernetes ≥ 1.26); do the same.
  marked.sort((a, b) => String(b.metadata?.creationTimestamp ?? '').localeCompare(String(a.metadata?.creationTimestamp ?? '')));
  return marked[0]?.metadata?.name;
}

/**
 * The destination StorageClass of a source PVC: `storageClassMapping[source]`, else
 * `defaultStorageClass`, else the same name. When the destination's classes are known and the kept
 * name does not exist there, the destination's default class (undefined if none: preflight reports it).
 * A source PVC without a class (static binding) maps to `defaultStorageClass`, else the destination default.
 */
export function mapStorageClass(source: string | undefined, plan: StorageMappingPlan, destinationClasses?: readonly V1StorageClass[]): string | undefined {
  if (source && plan.storageClassMapping[source]) return plan.storageClassMapping[source];
  if (plan.defaultStorageClass) return plan.defaultStorageClass;
  if (!destinationClasses) return source || undefined;
  if (source && destinationClasses.some((c) => c.metadata?.name === source)) return source;
  return defaultStorageClassName(destinationClasses) ?? (source || undefined);
}

/** The destination access modes: each source mode through `accessModeMapping`, deduplicated, in order. */
export function mapAccessModes(modes: readonly string[], plan: StorageMappingPlan): string[] {
  const mapping = plan.accessModeMapping as Record<string, string | undefined>;
  return [...new Set(modes.map((m) => mapping[m] ?? m))];
}

/**
 * The size of the destination PVC: the larger of the source's request and its provisioned
 * capacity (status.capacity.storage, which can exceed the request: some provisioners round up, and
 * a resized volume reports the new size there), so the data always fits.
 * @throws QuantityError when the source has no parsable size.
 */
export function pvcCapacity(pvc: V1PersistentVolumeClaim): { capacity: string; capacityBytes: number } {
  const requested = pvc.spec?.resources?.requests?.storage;
  const actual = pvc.status?.capacity?.storage;
  const candidates = [requested, actual].filter((q): q is string => typeof q === 'string' && q !== '');
  if (candidates.length === 0) return { capacity: '0', capacityBytes: 0 };
  let best = { capacity: candidates[0]!, capacityBytes: parseQuantity(candidates[0]!) };
  for (const q of candidates.slice(1)) {
    const b = parseQuantity(q);
    if (b > best.capacityBytes) best = { capacity: q, capacityBytes: b };
  }
  return best;
}

/** True when the access modes make a volume attachable to one node only. */
export function isSingleNode(modes: readonly string[]): boolean {
  return modes.includes('ReadWriteOnce') || modes.includes('ReadWriteOncePod');
}

/** Filters PVCs by a parsed selection's `names` (label selectors are applied by the API). */
export function selectByNames(pvcs: readonly V1PersistentVolumeClaim[], selection: PVCSelection): V1PersistentVolumeClaim[] {
  if (!('names' in selection)) return [...pvcs];
  const wanted = new Set(selection.names);
  return pvcs.filter((p) => wanted.has(p.metadata?.name ?? ''));
}

/** How a PVC is used, from the inventory. */
export interface PVCUsage {
  usedBy: WorkloadRef[];
  /** Node of a running pod mounting the PVC. */
  nodeName?: string;
  identity?: WorkloadIdentity;
  /** Active pods mounting the PVC that no known workload controls (cannot be quiesced). */
  barePods: string[];
  /** Controllers above a workload that Ferry does not know and that may undo a quiesce. */
  foreignOwners: string[];
  /** Active pods mounting the PVC writable that Ferry cannot stop: bare pods, pods whose controller
   * chain contains a kind Ferry does not know (owner: that controller). Always set by pvcUsage. */
  unmanaged?: { name: string; owner?: string }[];
}

/**
 * Who uses PVC `claimName`, from an inventory (pure):
 * - active pods mounting it, resolved through ownerReferences to their top-most workload;
 * - workloads whose pod template mounts it even with no pod now (scaled to 0, CronJobs between runs);
 * - StatefulSets whose volumeClaimTemplates produced it (`<template>-<sts>-<ordinal>`).
 * The node is that of a Running pod mounting it; the identity is that pod's, else the first
 * workload template's that sets one.
 */
export function pvcUsage(claimName: string, inventory: WorkloadInventory): PVCUsage {
  const index = ownerIndex(inventory.workloads);
  const usedBy = new Map<string, WorkloadRef>();
  const barePods: string[] = [];
  const foreignOwners = new Set<string>();
  const unmanaged: { name: string; owner?: string }[] = [];
  let nodeName: string | undefined;
  let identity: WorkloadIdentity | undefined;

  for (const pod of inventory.pods) {
    if (!podIsActive(pod) || !claimNamesOf(pod.spec).includes(claimName)) continue;
    // Ferry's own pods (a warm transfer agent mounts the PVC read-only for the whole migration) are
    // neither users, writers, bare pods, nor where the PVC's node and identity come from.
    if (pod.metadata?.labels?.[LABELS.managedBy] === 'ferry') continue;
    const r = resolveController(pod, index);
    if (r.workload) usedBy.set(workloadKey(r.workload), r.workload);
    else barePods.push(pod.metadata?.name ?? '?');
    const foreign = r.foreignOwner ? `${r.foreignOwner.kind} ${r.foreignOwner.name}${r.workload ? ` (controls ${describeWorkload(r.workload)})` : ''}` : undefined;
    if (foreign) foreignOwners.add(foreign);
    if ((!r.workload || foreign) && writableClaimNamesOf(pod.spec).includes(claimName)) unmanaged.push({ name: pod.metadata?.name ?? '?', ...(foreign ? { owner: foreign } : {}) });
    if (pod.status?.phase === 'Running' && pod.spec?.nodeName) {
      if (nodeName === undefined) nodeName = pod.spec.nodeName;
      identity ??= identityOf(pod.spec, claimName);
    }
  }
  for (const w of inventory.workloads) {
    if (!isTopLevelWorkload(w) || !isWorkloadKind(w.kind)) continue;
    const mounts = claimNamesOf(podSpecOf(w)).includes(claimName) || (w.kind === 'StatefulSet' && statefulSetOwnsClaim(w, claimName));
    if (!mounts) continue;
    const r = resolveController(w, index);
    const ref = r.workload ?? workloadRef(w.kind, inventory.namespace, w.metadata?.name ?? '');
    usedBy.set(workloadKey(ref), ref);
    if (r.foreignOwner) foreignOwners.add(`${r.foreignOwner.kind} ${r.foreignOwner.name} (controls ${describeWorkload(ref)})`);
    if (identity === undefined) {
      // A StatefulSet's template mounts a claim template by the template's name, not the PVC's.
      const spec = podSpecOf(w);
      const volumeName = w.kind === 'StatefulSet' && !claimNamesOf(spec).includes(claimName) ? claimTemplateName(w, claimName) : undefined;
      identity = volumeName ? identityOfTemplateVolume(spec, volumeName) : identityOf(spec, claimName);
    }
  }
  const sorted = [...usedBy.values()].sort((a, b) => workloadKey(a).localeCompare(workloadKey(b)));
  return {
    usedBy: sorted,
    ...(nodeName !== undefined ? { nodeName } : {}),
    ...(identity !== undefined ? { identity } : {}),
    barePods,
    foreignOwners: [...foreignOwners],
    unmanaged,
  };
}

/**
 * Why a workload's pods will not come back "as they were" after quiesce (pure), or undefined:
 * - a StatefulSet whose status.currentRevision differs from status.updateRevision (a partitioned,
 *   stalled or unfinished rollout, or OnDelete pods not yet replaced): recreated from 0, every pod
 *   starts on the update revision (the controller creates missing pods from updateRevision);
 * - a DaemonSet with updateStrategy OnDelete whose updatedNumberScheduled < desiredNumberScheduled:
 *   the pods quiesce removes come back from the current template.
 * Status fields from the apps/v1 API (StatefulSetStatus, DaemonSetStatus).
 */
export function pendingRolloutOf(o: KubernetesObject): string | undefined {
  const spec = (o as { spec?: { updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } } } }).spec ?? {};
  const status = (o as { status?: Record<string, unknown> }).status ?? {};
  const num = (v: unknown) => (typeof v === 'number' ? v : 0);
  const strategy = spec.updateStrategy?.type ?? 'RollingUpdate';
  if (o.kind === 'StatefulSet') {
    const current = status.currentRevision;
    const update = status.updateRevision;
    if (typeof current !== 'string' || typeof update !== 'string' || current === update) return undefined;
    const partition = spec.updateStrategy?.rollingUpdate?.partition;
    const why = strategy === 'OnDelete' ? 'updateStrategy OnDelete' : partition ? `partition ${partition}` : 'rollout not finished';
    return `${num(status.currentReplicas)} of ${num(status.replicas)} pods run revision ${current} while the template is ${update} (${why}); after quiesce every pod comes back on ${update}`;
  }
  if (o.kind === 'DaemonSet' && strategy === 'OnDelete') {
    const desired = num(status.desiredNumberScheduled);
    const updated = num(status.updatedNumberScheduled);
    if (updated >= desired) return undefined;
    return `${desired - updated} of ${desired} pods run an older template (updateStrategy OnDelete); after quiesce every pod comes back on the current template`;
  }
  return undefined;
}

function claimTemplateName(sts: KubernetesObject, pvcName: string): string | undefined {
  const name = sts.metadata?.name ?? '';
  const templates = (sts as { spec?: { volumeClaimTemplates?: { metadata?: { name?: string } }[] } }).spec?.volumeClaimTemplates ?? [];
  return templates.map((t) => t.metadata?.name).find((t) => t && pvcName.startsWith(`${t}-${name}-`));
}

/** identityOf for a StatefulSet claim template: containers mount the template's name directly. */
function identityOfTemplateVolume(spec: ReturnType<typeof podSpecOf>, volumeName: string): WorkloadIdentity | undefined {
  if (!spec) return undefined;
  const synthetic = { ...spec, volumes: [...(spec.volumes ?? []), { name: volumeName, persistentVolumeClaim: { claimName: `\0${volumeName}` } }] };
  return identityOf(synthetic, `\0${volumeName}`);
}

/** Builds the PVCInfo of one source PVC (pure). */
export function pvcInfo(pvc: V1PersistentVolumeClaim, usage: PVCUsage, plan: StorageMappingPlan, destinationClasses?: readonly V1StorageClass[]): PVCInfo {
  const name = pvc.metadata?.name ?? '';
  const accessModes = [...(pvc.spec?.accessModes ?? [])];
  const storageClass = pvc.spec?.storageClassName || undefined;
  const destinationStorageClass = mapStorageClass(storageClass, plan, destinationClasses);
  const info: PVCInfo = {
    name,
    destinationName: name,
    ...pvcCapacity(pvc),
    ...(storageClass !== undefined ? { storageClass } : {}),
    ...(destinationStorageClass !== undefined ? { destinationStorageClass } : {}),
    accessModes,
    destinationAccessModes: mapAccessModes(accessModes, plan),
    volumeMode: pvc.spec?.volumeMode === 'Block' ? 'Block' : 'Filesystem',
    usedBy: usage.usedBy,
  };
  if (usage.nodeName !== undefined && isSingleNode(accessModes)) info.nodeName = usage.nodeName;
  if (usage.identity !== undefined) info.identity = usage.identity;
  return info;
}

/** Options of `discoverNamespace`. */
export interface DiscoverOptions {
  mapping: NamespaceMapping;
  plan: StorageMappingPlan & Pick<MigrationPlan, 'keepPVCNames'>;
  /** With plan keepPVCNames: the migration whose temporary destination PVCs are named (rebind.ts). */
  migrationId?: string;
  /** The destination cluster's StorageClasses (resolves "keep the name, else the default class"). */
  destinationClasses?: readonly V1StorageClass[];
  logger?: Logger;
}

/**
 * Discovers one source namespace (see the module docstring). Returns an empty discovery when the
 * namespace does not exist. Logs a warning for pods no workload controls (they cannot be quiesced)
 * and for unknown controllers that may undo a quiesce; lists both in `unmanagedPods`, and the
 * workloads in the middle of a rollout (`pendingRolloutOf`) in `pendingRollouts`.
 * @throws API errors (callers classify them with isTransient).
 */
export async function discoverNamespace(source: KubeClient, options: DiscoverOptions): Promise<NamespaceDiscovery> {
  const { mapping, plan } = options;
  const log = options.logger ?? silentLogger;
  const empty: NamespaceDiscovery = { sourceNamespace: mapping.source, destinationNamespace: mapping.destination, pvcs: [], workloads: [] };
  const ns = await source.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name: mapping.source });
  if (!ns) {
    log.warn({ namespace: mapping.source }, 'source namespace does not exist');
    return empty;
  }
  const selection = mapping.pvcs;
  const listed = await source.list<V1PersistentVolumeClaim>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim' }, mapping.source, {
    ...('labelSelector' in selection ? { labelSelector: selection.labelSelector } : {}),
  });
  // keepPVCNames: this migration's own temporary PVCs live in the source namespace: never sources
  const own = (p: V1PersistentVolumeClaim) => options.migrationId !== undefined && p.metadata?.annotations?.[ANNOTATIONS.migrationId] === options.migrationId;
  const pvcs = selectByNames(listed.filter((p) => !own(p)), selection).sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  if (pvcs.length === 0) return empty;
  const inventory = await readInventory(source, mapping.source);
  const infos: PVCInfo[] = [];
  const workloads = new Map<string, WorkloadRef>();
  const unmanaged = new Map<string, UnmanagedPod>();
  for (const pvc of pvcs) {
    const usage = pvcUsage(pvc.metadata?.name ?? '', inventory);
    for (const u of usage.unmanaged ?? []) {
      const entry = unmanaged.get(u.name) ?? { name: u.name, pvcs: [], ...(u.owner ? { owner: u.owner } : {}) };
      entry.pvcs.push(pvc.metadata?.name ?? '');
      unmanaged.set(u.name, entry);
    }
    if (usage.barePods.length) {
      log.warn({ namespace: mapping.source, pvc: pvc.metadata?.name, pods: usage.barePods }, 'pods without a controller mount this PVC: Ferry cannot quiesce them (preflight refuses them unless the plan says unmanagedPods: delete)');
    }
    if (usage.foreignOwners.length) {
      log.warn({ namespace: mapping.source, pvc: pvc.metadata?.name, owners: usage.foreignOwners }, 'a controller Ferry does not know manages a workload using this PVC and may undo its quiesce');
    }
    const info = pvcInfo(pvc, usage, plan, options.destinationClasses);
    // keepPVCNames: copied into a temporary PVC, bound back under the original name after the final sync
    if (plan.keepPVCNames && options.migrationId) info.destinationName = temporaryClaimName(options.migrationId, info.name);
    for (const w of info.usedBy) workloads.set(workloadKey(w), w);
    infos.push(info);
  }
  const sortedWorkloads = [...workloads.values()].sort((a, b) => workloadKey(a).localeCompare(workloadKey(b)));
  const pendingRollouts: PendingRollout[] = [];
  for (const w of sortedWorkloads) {
    const o = inventory.workloads.find((x) => x.kind === w.kind && x.metadata?.name === w.name);
    const detail = o ? pendingRolloutOf(o) : undefined;
    if (detail) pendingRollouts.push({ workload: w, detail });
  }
  return {
    ...empty,
    pvcs: infos,
    workloads: sortedWorkloads,
    unmanagedPods: [...unmanaged.values()].sort((a, b) => a.name.localeCompare(b.name)),
    pendingRollouts,
  };
}
