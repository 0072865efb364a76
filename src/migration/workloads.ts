/**
 * Workloads: the kinds Ferry quiesces, their pod templates, and the resolution of a pod (or any
 * controlled object) to the workload that ultimately controls it through ownerReferences.
 *
 * Pure functions over objects already read from the API, plus `readInventory`, which lists every
 * workload kind of a namespace in one go (kinds the cluster does not serve are skipped).
 *
 * Ownership chains handled (Kubernetes garbage-collector ownerReferences, `controller: true`):
 *   Pod → ReplicaSet → Deployment          Pod → StatefulSet          Pod → DaemonSet
 *   Pod → ReplicationController → DeploymentConfig (OpenShift apps.openshift.io/v1)
 *   Pod → Job → CronJob                    Pod → ReplicaSet (bare)    Pod → ReplicationController (bare)
 */
import type { KubernetesObject, V1Container, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import type { WorkloadIdentity, WorkloadRef } from '../core/types';
import type { KindRef, KubeClient } from '../k8s/client';

/** The API version Ferry uses for each workload kind (batch/v1 CronJob: v1beta1 is gone since 1.25). */
export const WORKLOAD_KINDS = {
  Deployment: { apiVersion: 'apps/v1', kind: 'Deployment' },
  StatefulSet: { apiVersion: 'apps/v1', kind: 'StatefulSet' },
  ReplicaSet: { apiVersion: 'apps/v1', kind: 'ReplicaSet' },
  DaemonSet: { apiVersion: 'apps/v1', kind: 'DaemonSet' },
  Job: { apiVersion: 'batch/v1', kind: 'Job' },
  CronJob: { apiVersion: 'batch/v1', kind: 'CronJob' },
  ReplicationController: { apiVersion: 'v1', kind: 'ReplicationController' },
  DeploymentConfig: { apiVersion: 'apps.openshift.io/v1', kind: 'DeploymentConfig' },
} as const satisfies Record<string, KindRef>;

/** A workload kind name. */
export type WorkloadKind = keyof typeof WORKLOAD_KINDS;

/** True when `kind` is one of WORKLOAD_KINDS. */
export function isWorkloadKind(kind: string | undefined): kind is WorkloadKind {
  return kind !== undefined && Object.prototype.hasOwnProperty.call(WORKLOAD_KINDS, kind);
}

/** A WorkloadRef with Ferry's API version for the kind (a v1beta1 CronJob ref becomes batch/v1). */
export function workloadRef(kind: WorkloadKind, namespace: string, name: string): WorkloadRef {
  return { apiVersion: WORKLOAD_KINDS[kind].apiVersion, kind, namespace, name };
}

/** "Kind namespace/name". */
export function describeWorkload(w: WorkloadRef): string {
  return `${w.kind} ${w.namespace}/${w.name}`;
}

/** Stable key of a workload for deduplication. */
export function workloadKey(w: WorkloadRef): string {
  return `${w.kind}/${w.namespace}/${w.name}`;
}

/** Everything `resolveController` and the PVC usage scan need from one namespace. */
export interface WorkloadInventory {
  namespace: string;
  pods: V1Pod[];
  /** Every workload object of the namespace, any kind of WORKLOAD_KINDS. */
  workloads: KubernetesObject[];
}

/** Lookup of inventory objects by kind and name. */
export type OwnerIndex = ReadonlyMap<string, KubernetesObject>;

/** Builds the lookup used by `resolveController`. */
export function ownerIndex(objects: readonly KubernetesObject[]): OwnerIndex {
  const m = new Map<string, KubernetesObject>();
  for (const o of objects) if (o.kind && o.metadata?.name) m.set(`${o.kind}/${o.metadata.name}`, o);
  return m;
}

/** The controller ownerReference of an object (`controller: true`), if any. */
export function controllerOf(o: KubernetesObject): { apiVersion: string; kind: string; name: string; uid?: string } | undefined {
  const refs = o.metadata?.ownerReferences ?? [];
  const c = refs.find((r) => r.controller === true);
  return c ? { apiVersion: c.apiVersion, kind: c.kind, name: c.name, uid: c.uid } : undefined;
}

/** What `resolveController` found. */
export interface ResolvedController {
  /** The top-most workload Ferry knows how to quiesce; undefined for a bare pod. */
  workload?: WorkloadRef;
  /**
   * A controller above `workload` that Ferry does not know (an operator's custom resource, an Argo
   * Rollout …): it may undo a quiesce. Reported so callers can warn.
   */
  foreignOwner?: { apiVersion: string; kind: string; name: string };
}

/**
 * Follows controller ownerReferences from `obj` (normally a Pod) up to the top-most known workload.
 * Objects missing from `index` (already deleted) end the walk at their reference. A reference whose
 * uid differs from the indexed object's uid (a same-named replacement) is treated as missing.
 */
export function resolveController(obj: KubernetesObject, index: OwnerIndex): ResolvedController {
  const namespace = obj.metadata?.namespace ?? '';
  let current: KubernetesObject = obj;
  let workload: WorkloadRef | undefined = isWorkloadKind(obj.kind) ? workloadRef(obj.kind, namespace, obj.metadata?.name ?? '') : undefined;
  for (let depth = 0; depth < 8; depth++) {
    const ctrl = controllerOf(current);
    if (!ctrl) return { workload };
    if (!isWorkloadKind(ctrl.kind) || ctrl.apiVersion.split('/')[0] !== WORKLOAD_KINDS[ctrl.kind].apiVersion.split('/')[0]) {
      return { workload, foreignOwner: { apiVersion: ctrl.apiVersion, kind: ctrl.kind, name: ctrl.name } };
    }
    workload = workloadRef(ctrl.kind, namespace, ctrl.name);
    const owner = index.get(`${ctrl.kind}/${ctrl.name}`);
    if (!owner || (ctrl.uid && owner.metadata?.uid && ctrl.uid !== owner.metadata.uid)) return { workload };
    current = owner;
  }
  return { workload };
}

/** The pod template spec of a workload object (CronJob: its job template's). */
export function podSpecOf(o: KubernetesObject): V1PodSpec | undefined {
  const spec = (o as { spec?: Record<string, unknown> }).spec;
  if (!spec) return undefined;
  if (o.kind === 'Pod') return spec as unknown as V1PodSpec;
  if (o.kind === 'CronJob') {
    return (spec.jobTemplate as { spec?: { template?: { spec?: V1PodSpec } } } | undefined)?.spec?.template?.spec;
  }
  return (spec.template as { spec?: V1PodSpec } | undefined)?.spec;
}

/** Names of the PVCs a pod spec mounts (volumes[].persistentVolumeClaim.claimName). */
export function claimNamesOf(spec: V1PodSpec | undefined): string[] {
  return (spec?.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim?.claimName ? [v.persistentVolumeClaim.claimName] : []));
}

/** Names of the PVCs a pod spec mounts writable (claims with `readOnly: true` left out). */
export function writableClaimNamesOf(spec: V1PodSpec | undefined): string[] {
  return (spec?.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim?.claimName && v.persistentVolumeClaim.readOnly !== true ? [v.persistentVolumeClaim.claimName] : []));
}

/**
 * Whether StatefulSet `sts` owns PVC `pvcName` through a volumeClaimTemplate: the StatefulSet
 * controller names those claims `<template>-<statefulset>-<ordinal>` (kubernetes/pkg/controller/
 * statefulset, getPersistentVolumeClaimName), and keeps them when scaled to 0.
 */
export function statefulSetOwnsClaim(sts: KubernetesObject, pvcName: string): boolean {
  const name = sts.metadata?.name;
  const templates = (sts as { spec?: { volumeClaimTemplates?: { metadata?: { name?: string } }[] } }).spec?.volumeClaimTemplates ?? [];
  if (!name) return false;
  return templates.some((t) => {
    const tpl = t.metadata?.name;
    if (!tpl) return false;
    const prefix = `${tpl}-${name}-`;
    return pvcName.startsWith(prefix) && /^\d+$/.test(pvcName.slice(prefix.length));
  });
}

/** True while a pod may still run or start (not Succeeded/Failed). */
export function podIsActive(p: V1Pod): boolean {
  const phase = p.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed';
}

/** True when a Job has finished (condition Complete or Failed is True). */
export function jobFinished(job: KubernetesObject): boolean {
  const conditions = (job as { status?: { conditions?: { type?: string; status?: string }[] } }).status?.conditions ?? [];
  return conditions.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
}

/**
 * The identity of whoever uses the PVC in `spec`: the pod-level securityContext (fsGroup,
 * supplementalGroups, runAsUser, runAsGroup, seLinuxOptions); runAsUser/runAsGroup/seLinuxOptions
 * fall back to the first container mounting the claim that sets them (container settings override
 * the pod's for that container). Undefined when nothing is set.
 */
export function identityOf(spec: V1PodSpec | undefined, claimName: string): WorkloadIdentity | undefined {
  if (!spec) return undefined;
  const psc = spec.securityContext ?? {};
  const volumeNames = new Set((spec.volumes ?? []).filter((v) => v.persistentVolumeClaim?.claimName === claimName).map((v) => v.name));
  const mounting: V1Container[] = [...(spec.initContainers ?? []), ...(spec.containers ?? [])].filter((c) =>
    (c.volumeMounts ?? []).some((m) => volumeNames.has(m.name)),
  );
  const csc = mounting.map((c) => c.securityContext ?? {});
  const pick = <K extends 'runAsUser' | 'runAsGroup'>(k: K): number | undefined => csc.find((c) => typeof c[k] === 'number')?.[k] ?? psc[k];
  const id: WorkloadIdentity = {};
  const runAsUser = pick('runAsUser');
  const runAsGroup = pick('runAsGroup');
  if (runAsUser !== undefined) id.runAsUser = runAsUser;
  if (runAsGroup !== undefined) id.runAsGroup = runAsGroup;
  if (psc.fsGroup !== undefined) id.fsGroup = psc.fsGroup;
  if (psc.supplementalGroups?.length) id.supplementalGroups = [...psc.supplementalGroups];
  const se = csc.find((c) => c.seLinuxOptions)?.seLinuxOptions ?? psc.seLinuxOptions;
  if (se) {
    const o: NonNullable<WorkloadIdentity['seLinuxOptions']> = {};
    for (const k of ['level', 'role', 'type', 'user'] as const) if (se[k]) o[k] = se[k];
    if (Object.keys(o).length) id.seLinuxOptions = o;
  }
  return Object.keys(id).length ? id : undefined;
}

/**
 * Whether a workload object of the inventory is a candidate "user" of PVCs through its template:
 * ReplicaSets, ReplicationControllers and Jobs that another workload controls are covered by that
 * workload (an old ReplicaSet of a Deployment still names the claim), and finished Jobs never run
 * again.
 */
export function isTopLevelWorkload(o: KubernetesObject): boolean {
  if (!isWorkloadKind(o.kind)) return false;
  if (o.kind === 'ReplicaSet' || o.kind === 'ReplicationController' || o.kind === 'Job') {
    const c = controllerOf(o);
    if (c && isWorkloadKind(c.kind)) return false;
  }
  if (o.kind === 'Job' && jobFinished(o)) return false;
  return true;
}

/**
 * Lists the pods and every workload kind of `namespace` (kinds the cluster does not serve, e.g.
 * DeploymentConfig outside OpenShift, are skipped after an API discovery check).
 */
export async function readInventory(client: KubeClient, namespace: string): Promise<WorkloadInventory> {
  const pods = await client.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace);
  const workloads: KubernetesObject[] = [];
  for (const kind of Object.values(WORKLOAD_KINDS)) {
    if (!(await client.hasApi(kind.apiVersion, kind.kind))) continue;
    workloads.push(...(await client.list(kind, namespace)));
  }
  return { namespace, pods, workloads };
}
