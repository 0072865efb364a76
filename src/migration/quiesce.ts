/**
 * Quiesce: stopping the applications that write to the migrated PVCs before the final sync, and
 * restoring them exactly as they were afterwards.
 *
 *   kind                                   quiesced state                         recorded
 *   Deployment                             spec.replicas 0 (paused left as is)    replicas, paused
 *   StatefulSet, ReplicaSet (bare),        spec.replicas 0                        replicas
 *   ReplicationController (bare),
 *   DeploymentConfig
 *   DaemonSet                              pod template nodeSelector              nodeSelector
 *                                          `ferry.dev/quiesced: "true"` (no node
 *                                          carries it, so the controller removes
 *                                          every pod)
 *   Job                                    spec.parallelism 0                     parallelism
 *   CronJob (batch/v1)                     spec.suspend true                      suspend
 *
 * The prior state is returned (the workflow keeps it) AND written to the annotation
 * `ferry.dev/pre-quiesce` (JSON of the QuiesceRecord) in the same patch, so a retried quiesce reads
 * the ORIGINAL state back instead of recording the quiesced one (replicas 0). A workload already in
 * the quiesced state (a suspended CronJob, a Deployment at 0) is recorded with `changed: false`, is
 * not patched, and is never "restored" later: MTC compares pointers and un-suspends CronJobs that
 * were suspended before the migration (MTC's quiesce/unquiesce of CronJobs); Ferry compares values.
 *
 * Unquiesce restores a field only while it still holds the quiesced value: when an operator changed
 * it in the meantime (scaled the Deployment to 3 by hand), their choice wins and a note says so.
 * Then the annotation is removed.
 *
 * StatefulSets whose `persistentVolumeClaimRetentionPolicy` deletes PVCs (`whenScaled: Delete`, GA in
 * Kubernetes 1.32: the controller deletes the PVCs of the pods a scale-down removes; `whenDeleted:
 * Delete` deletes them with the StatefulSet) would lose their source PVCs to quiesce. Ferry first
 * sets both fields to Retain (with the annotation, in a patch of its own), reads the object back to
 * check the API server kept it, and only then scales to 0; the original policy is recorded
 * (`pvcRetentionPolicy`) and restored by unquiesce in the same patch as the replicas. If the policy
 * cannot be changed, quiesce fails before scaling. Something may still change it back after the scale
 * (an operator owning the StatefulSet: preflight refuses those unless the plan says
 * `acceptOperatorRetentionPolicy: true`), so `waitForQuiesced` and the writers check right before the
 * final sync (./writers.ts) read the policy again and fail the migration when it deletes PVCs.
 *
 * The annotation carries the migration id. A record of another migration (left by a migration with
 * `keepSourceQuiesced: true`, or an older Ferry that wrote no id) is never restored by this one: quiesce
 * records the current state instead (and replaces the annotation when it scales), and restoring from
 * annotations ignores it.
 *
 * `quiescePatch` / `unquiescePatch` are pure; `quiesceWorkloads`, `waitForQuiesced` and
 * `unquiesceWorkloads` apply them with optimistic concurrency (the patch carries the
 * resourceVersion that was read; a 409 re-reads and recomputes).
 */
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import type { PVCRetentionPolicy, QuiesceRecord, WorkloadRef } from '../core/types';
import { keepWatching, statusCode, waitFor, Wakeup, type KubeClient } from '../k8s/client';
import { FerryError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import {
  describeWorkload,
  isWorkloadKind,
  ownerIndex,
  podIsActive,
  resolveController,
  WORKLOAD_KINDS,
  workloadKey,
  workloadRef,
  type WorkloadKind,
} from './workloads';

/** Annotation holding the JSON QuiesceRecord on a quiesced workload. */
export const PRE_QUIESCE_ANNOTATION = 'ferry.dev/pre-quiesce';
/** nodeSelector key that keeps a quiesced DaemonSet's pods off every node. */
export const QUIESCE_NODE_SELECTOR_KEY = 'ferry.dev/quiesced';
/** The retention policy a quiesced StatefulSet holds while it is scaled to 0 (keeps every PVC). */
export const RETAIN_POLICY = { whenScaled: 'Retain', whenDeleted: 'Retain' } as const;

/** The patch to apply (JSON merge patch, RFC 7386) and what to remember. */
export interface QuiescePlan {
  record: QuiesceRecord;
  /** undefined when nothing must change (already quiesced, or already in the quiesced state). */
  patch?: Record<string, unknown>;
  /**
   * For a StatefulSet whose retention policy deletes PVCs and that must be scaled: the patch to apply
   * FIRST (policy Retain and the annotation, replicas untouched). `patch` scales it afterwards.
   */
  guard?: Record<string, unknown>;
  /** An annotation of another migration found on the object (ignored): who wrote it. */
  staleAnnotation?: string;
}

/** The patch that restores a workload, and notes for operators about what was left alone. */
export interface UnquiescePlan {
  patch?: Record<string, unknown>;
  notes: string[];
}

type Spec = Record<string, unknown>;
const REPLICA_KINDS: readonly WorkloadKind[] = ['Deployment', 'StatefulSet', 'ReplicaSet', 'ReplicationController', 'DeploymentConfig'];

function specOf(o: KubernetesObject): Spec {
  return ((o as { spec?: Spec }).spec ?? {}) as Spec;
}

function nodeSelectorOf(o: KubernetesObject): Record<string, string> {
  const t = specOf(o).template as { spec?: { nodeSelector?: Record<string, string> } } | undefined;
  return { ...(t?.spec?.nodeSelector ?? {}) };
}

function numberOr(v: unknown, dflt: number): number {
  return typeof v === 'number' ? v : dflt;
}

/** A StatefulSet's spec.persistentVolumeClaimRetentionPolicy as set (undefined fields: Retain). */
export function retentionPolicyOf(o: KubernetesObject): PVCRetentionPolicy {
  const p = specOf(o).persistentVolumeClaimRetentionPolicy as PVCRetentionPolicy | undefined;
  return { ...(p?.whenScaled !== undefined ? { whenScaled: p.whenScaled } : {}), ...(p?.whenDeleted !== undefined ? { whenDeleted: p.whenDeleted } : {}) };
}

/** Whether a retention policy lets the StatefulSet controller delete PVCs (either field Delete). */
export function policyDeletesPVCs(p: PVCRetentionPolicy | undefined): boolean {
  return p?.whenScaled === 'Delete' || p?.whenDeleted === 'Delete';
}

function refOfWorkload(o: KubernetesObject): WorkloadRef {
  if (!isWorkloadKind(o.kind)) throw new FerryError('config', `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name} is not a workload kind Ferry can quiesce`);
  return workloadRef(o.kind, o.metadata?.namespace ?? '', o.metadata?.name ?? '');
}

/** The record in the annotation whatever migration wrote it, or undefined when absent or unreadable. */
function anyRecordFromAnnotation(o: KubernetesObject): QuiesceRecord | undefined {
  const raw = o.metadata?.annotations?.[PRE_QUIESCE_ANNOTATION];
  if (!raw) return undefined;
  try {
    const parsed = JSON.parse(raw) as Partial<QuiesceRecord>;
    if (typeof parsed !== 'object' || parsed === null || typeof parsed.changed !== 'boolean') return undefined;
    return { ...parsed, workload: refOfWorkload(o), changed: parsed.changed } as QuiesceRecord;
  } catch {
    return undefined;
  }
}

/**
 * The record read from the annotation, or undefined when absent or unreadable. With `migrationId`,
 * only a record written by that migration (an annotation of another migration, or one without id, is
 * stale: see `staleAnnotationOwner`).
 */
export function recordFromAnnotation(o: KubernetesObject, migrationId?: string): QuiesceRecord | undefined {
  const record = anyRecordFromAnnotation(o);
  if (!record || (migrationId !== undefined && record.migrationId !== migrationId)) return undefined;
  return record;
}

/** Who wrote the annotation when it is not `migrationId`'s ("migration X", "an unknown migration"); undefined otherwise. */
export function staleAnnotationOwner(o: KubernetesObject, migrationId: string): string | undefined {
  if (o.metadata?.annotations?.[PRE_QUIESCE_ANNOTATION] === undefined) return undefined;
  const record = anyRecordFromAnnotation(o);
  if (record?.migrationId === migrationId) return undefined;
  return record?.migrationId !== undefined ? `migration ${record.migrationId}` : 'an unknown migration (no id: an older Ferry, or unreadable)';
}

/** Whether `o` is in its kind's quiesced state. */
export function isQuiesced(o: KubernetesObject): boolean {
  const spec = specOf(o);
  const kind = o.kind as WorkloadKind;
  if (REPLICA_KINDS.includes(kind)) return numberOr(spec.replicas, 1) === 0;
  if (kind === 'Job') return numberOr(spec.parallelism, 1) === 0;
  if (kind === 'CronJob') return spec.suspend === true;
  if (kind === 'DaemonSet') return nodeSelectorOf(o)[QUIESCE_NODE_SELECTOR_KEY] === 'true';
  return false;
}

/** The merge patch that puts `o` in the quiesced state (spec part only). */
function quiescedSpecPatch(o: KubernetesObject): Record<string, unknown> {
  const kind = o.kind as WorkloadKind;
  if (kind === 'StatefulSet' && policyDeletesPVCs(retentionPolicyOf(o))) return { spec: { replicas: 0, persistentVolumeClaimRetentionPolicy: { ...RETAIN_POLICY } } };
  if (REPLICA_KINDS.includes(kind)) return { spec: { replicas: 0 } };
  if (kind === 'Job') return { spec: { parallelism: 0 } };
  if (kind === 'CronJob') return { spec: { suspend: true } };
  return { spec: { template: { spec: { nodeSelector: { [QUIESCE_NODE_SELECTOR_KEY]: 'true' } } } } };
}

/** The prior state of `o` as a record (changed = whether quiescing changes anything). */
function currentRecord(o: KubernetesObject, migrationId: string | undefined): QuiesceRecord {
  const spec = specOf(o);
  const kind = o.kind as WorkloadKind;
  const record: QuiesceRecord = { workload: refOfWorkload(o), changed: !isQuiesced(o), ...(migrationId !== undefined ? { migrationId } : {}) };
  if (REPLICA_KINDS.includes(kind)) record.replicas = numberOr(spec.replicas, 1);
  if (kind === 'StatefulSet' && record.changed && policyDeletesPVCs(retentionPolicyOf(o))) record.pvcRetentionPolicy = retentionPolicyOf(o);
  if (kind === 'Deployment') record.paused = spec.paused === true;
  if (kind === 'Job') record.parallelism = numberOr(spec.parallelism, 1);
  if (kind === 'CronJob') record.suspend = spec.suspend === true;
  if (kind === 'DaemonSet') record.nodeSelector = nodeSelectorOf(o);
  return record;
}

/**
 * What quiescing `o` for migration `migrationId` records and patches (pure).
 * - Annotation of this migration present (quiesced before, e.g. a retried activity): the annotation's
 *   record (the original state); a patch only if the object left the quiesced state since (re-applies it).
 * - Annotation of another migration (or without id): stale, ignored (`staleAnnotation` says whose);
 *   the current state is recorded as below, and the annotation replaced when Ferry patches.
 * - Already in the quiesced state: `changed: false`, no patch.
 * - Otherwise: the quiesced state plus the annotation, in one patch; for a StatefulSet whose
 *   retention policy deletes PVCs, also `guard` (policy Retain + annotation) to apply before it.
 * Without `migrationId` (older callers) any annotation is taken as this migration's.
 * @throws FerryError (config) when `o` is not a workload kind Ferry knows.
 */
export function quiescePatch(o: KubernetesObject, migrationId?: string): QuiescePlan {
  refOfWorkload(o);
  const previous = recordFromAnnotation(o, migrationId);
  const stale = migrationId !== undefined ? staleAnnotationOwner(o, migrationId) : undefined;
  const withGuard = (plan: QuiescePlan): QuiescePlan => {
    if (!plan.patch || o.kind !== 'StatefulSet' || !policyDeletesPVCs(retentionPolicyOf(o))) return plan;
    const meta = plan.patch.metadata as Record<string, unknown> | undefined;
    return { ...plan, guard: { spec: { persistentVolumeClaimRetentionPolicy: { ...RETAIN_POLICY } }, ...(meta ? { metadata: meta } : {}) } };
  };
  if (previous) return withGuard({ record: previous, ...(isQuiesced(o) ? {} : { patch: quiescedSpecPatch(o) }) });
  const record = currentRecord(o, migrationId);
  const staleField = stale !== undefined ? { staleAnnotation: stale } : {};
  if (!record.changed) return { record, ...staleField };
  const { workload: _w, ...stored } = record;
  return withGuard({ record, ...staleField, patch: { ...quiescedSpecPatch(o), metadata: { annotations: { [PRE_QUIESCE_ANNOTATION]: JSON.stringify(stored) } } } });
}

/**
 * What restoring `o` per `record` patches (pure): each recorded field goes back only while it still
 * holds the quiesced value; a field someone changed since is left, with a note. A CronJob that was
 * suspended before (`suspend: true`) or any record with `changed: false` is never resumed. The
 * annotation is removed when present.
 */
export function unquiescePatch(o: KubernetesObject, record: QuiesceRecord): UnquiescePlan {
  const spec = specOf(o);
  const kind = o.kind as WorkloadKind;
  const what = describeWorkload(refOfWorkload(o));
  const notes: string[] = [];
  const specPatch: Record<string, unknown> = {};
  if (record.changed) {
    if (REPLICA_KINDS.includes(kind) && record.replicas !== undefined) {
      const now = numberOr(spec.replicas, 1);
      if (now === 0) specPatch.replicas = record.replicas;
      else if (now !== record.replicas) notes.push(`${what}: replicas were changed to ${now} since quiesce (recorded ${record.replicas}); left as is`);
    }
    if (kind === 'StatefulSet' && record.pvcRetentionPolicy) {
      // Restored in the same patch as the replicas: the controller never sees replicas 0 with Delete.
      const now = retentionPolicyOf(o);
      const recorded = record.pvcRetentionPolicy;
      const same = (now.whenScaled ?? 'Retain') === (recorded.whenScaled ?? 'Retain') && (now.whenDeleted ?? 'Retain') === (recorded.whenDeleted ?? 'Retain');
      if (!same && !policyDeletesPVCs(now)) {
        specPatch.persistentVolumeClaimRetentionPolicy = { whenScaled: recorded.whenScaled ?? 'Retain', whenDeleted: recorded.whenDeleted ?? 'Retain' };
      } else if (!same) {
        notes.push(`${what}: persistentVolumeClaimRetentionPolicy was changed to ${JSON.stringify(now)} since quiesce (recorded ${JSON.stringify(recorded)}); left as is`);
      }
    }
    if (kind === 'Job' && record.parallelism !== undefined) {
      const now = numberOr(spec.parallelism, 1);
      if (now === 0) specPatch.parallelism = record.parallelism;
      else notes.push(`${what}: parallelism was changed to ${now} since quiesce (recorded ${record.parallelism}); left as is`);
    }
    if (kind === 'CronJob' && record.suspend === false) {
      if (spec.suspend === true) specPatch.suspend = false;
      else notes.push(`${what}: already resumed by someone else; left as is`);
    }
    if (kind === 'DaemonSet') {
      const selector = nodeSelectorOf(o);
      if (selector[QUIESCE_NODE_SELECTOR_KEY] === 'true' && record.nodeSelector?.[QUIESCE_NODE_SELECTOR_KEY] !== 'true') {
        specPatch.template = { spec: { nodeSelector: { [QUIESCE_NODE_SELECTOR_KEY]: null } } };
      } else if (selector[QUIESCE_NODE_SELECTOR_KEY] !== 'true') {
        notes.push(`${what}: nodeSelector ${QUIESCE_NODE_SELECTOR_KEY} was removed by someone else since quiesce; left as is`);
      }
    }
  } else if (kind === 'CronJob' && record.suspend === true) {
    notes.push(`${what}: was suspended before the migration; stays suspended`);
  }
  const patch: Record<string, unknown> = {};
  if (Object.keys(specPatch).length) patch.spec = specPatch;
  // Only the record's own annotation is removed: another migration's (stale) one stays, documented.
  const annotated = o.metadata?.annotations?.[PRE_QUIESCE_ANNOTATION] !== undefined;
  const annotationMigration = anyRecordFromAnnotation(o)?.migrationId;
  if (annotated && annotationMigration === record.migrationId) patch.metadata = { annotations: { [PRE_QUIESCE_ANNOTATION]: null } };
  return { ...(Object.keys(patch).length ? { patch } : {}), notes };
}

/** The live object of a workload reference (Ferry's API version for the kind). */
async function readWorkload(client: KubeClient, ref: WorkloadRef): Promise<KubernetesObject | undefined> {
  if (!isWorkloadKind(ref.kind)) throw new FerryError('config', `${describeWorkload(ref)} is not a workload kind Ferry can quiesce`);
  const kind = WORKLOAD_KINDS[ref.kind];
  if (!(await client.hasApi(kind.apiVersion, kind.kind))) {
    throw new FerryError('config', `${describeWorkload(ref)}: the cluster (context ${client.contextName}) does not serve ${kind.apiVersion} ${kind.kind}`);
  }
  return client.get({ apiVersion: kind.apiVersion, kind: kind.kind, namespace: ref.namespace, name: ref.name });
}

/** Applies `compute(live)` with the live resourceVersion; on 409 re-reads and recomputes (5 tries). */
async function patchWithRetry<T>(
  client: KubeClient,
  ref: WorkloadRef,
  compute: (live: KubernetesObject) => { patch?: Record<string, unknown>; result: T },
  onMissing: () => T,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const live = await readWorkload(client, ref);
    if (!live) return onMissing();
    const { patch, result } = compute(live);
    if (!patch) return result;
    const meta = (patch.metadata ?? {}) as Record<string, unknown>;
    const body = { ...patch, metadata: { ...meta, resourceVersion: live.metadata?.resourceVersion } };
    try {
      await client.patch({ apiVersion: live.apiVersion ?? WORKLOAD_KINDS[ref.kind as WorkloadKind].apiVersion, kind: ref.kind, namespace: ref.namespace, name: ref.name }, body);
      return result;
    } catch (err) {
      if (statusCode(err) !== 409 || attempt >= 5) throw err;
    }
  }
}

/** Options of the quiesce I/O functions. */
export interface QuiesceOptions {
  logger?: Logger;
  /** The migration quiescing (written into the annotation; annotations of others are ignored). */
  migrationId?: string;
}

/**
 * Applies the retention guard of a StatefulSet (policy Retain + annotation) and reads the object back:
 * scaling happens only once the API server holds Retain.
 * @throws FerryError (config) when the policy still deletes PVCs after the patch; API errors (a 403
 * or 422 refusing the change) as they are. Either way nothing was scaled.
 */
async function guardRetention(client: KubeClient, ref: WorkloadRef, migrationId: string | undefined, log: Logger): Promise<void> {
  const guarded = await patchWithRetry(
    client,
    ref,
    (live) => {
      const plan = quiescePatch(live, migrationId);
      return { patch: plan.guard, result: plan.guard !== undefined };
    },
    () => false,
  );
  if (!guarded) return;
  const live = await readWorkload(client, ref);
  if (live && policyDeletesPVCs(retentionPolicyOf(live))) {
    throw new FerryError(
      'config',
      `${describeWorkload(ref)}: its persistentVolumeClaimRetentionPolicy is still ${JSON.stringify(retentionPolicyOf(live))} after Ferry set it to Retain ` +
        '(an admission webhook or a controller changed it back?); scaling it to 0 would delete its PVCs, so it was not scaled. ' +
        'Set whenScaled and whenDeleted to Retain for the migration (kubectl patch statefulset … ), or migrate with quiesce: false after stopping it yourself',
    );
  }
  log.info({ workload: describeWorkload(ref), policy: RETAIN_POLICY }, 'StatefulSet retention policy set to Retain before scaling to 0 (its PVCs are kept)');
}

/**
 * Quiesces the workloads (CronJobs first, so no new Job starts meanwhile) and returns their records
 * in the order given. A workload that no longer exists is recorded `changed: false` and logged.
 * Idempotent: see `quiescePatch`.
 * @throws FerryError (config) for unknown kinds or APIs the cluster lacks; API errors.
 */
export async function quiesceWorkloads(client: KubeClient, workloads: readonly WorkloadRef[], options: QuiesceOptions = {}): Promise<QuiesceRecord[]> {
  const log = options.logger ?? silentLogger;
  const order = [...workloads].sort((a, b) => Number(b.kind === 'CronJob') - Number(a.kind === 'CronJob'));
  // Every StatefulSet's PVCs are safe before any workload is scaled.
  for (const ref of order) if (ref.kind === 'StatefulSet') await guardRetention(client, ref, options.migrationId, log);
  const byKey = new Map<string, QuiesceRecord>();
  for (const ref of order) {
    const record = await patchWithRetry(
      client,
      ref,
      (live) => {
        const plan = quiescePatch(live, options.migrationId);
        if (plan.staleAnnotation) {
          log.warn({ workload: describeWorkload(ref), annotation: PRE_QUIESCE_ANNOTATION, writtenBy: plan.staleAnnotation }, 'ignoring a pre-quiesce annotation of another migration: the current state is recorded instead');
        }
        return { patch: plan.patch, result: plan.record };
      },
      () => {
        log.warn({ workload: describeWorkload(ref) }, 'workload to quiesce no longer exists; skipped');
        return { workload: normalizeRef(ref), changed: false, ...(options.migrationId !== undefined ? { migrationId: options.migrationId } : {}) };
      },
    );
    log.info({ workload: describeWorkload(ref), record }, record.changed ? 'quiesced' : 'already quiesced before the migration; left untouched');
    byKey.set(workloadKey(ref), record);
  }
  return workloads.map((w) => byKey.get(workloadKey(w))!);
}

/** What unquiesce did to one workload. */
export interface UnquiesceOutcome {
  workload: WorkloadRef;
  /** Whether a patch was applied. */
  patched: boolean;
  notes: string[];
}

/**
 * Restores every recorded workload (see `unquiescePatch`), in reverse order of the records, and logs
 * the notes. A workload that no longer exists is noted, not an error.
 */
export async function unquiesceWorkloads(client: KubeClient, records: readonly QuiesceRecord[], options: QuiesceOptions = {}): Promise<UnquiesceOutcome[]> {
  const log = options.logger ?? silentLogger;
  const out: UnquiesceOutcome[] = [];
  for (const record of [...records].reverse()) {
    const ref = record.workload;
    const outcome = await patchWithRetry<UnquiesceOutcome>(
      client,
      ref,
      (live) => {
        const plan = unquiescePatch(live, record);
        return { patch: plan.patch, result: { workload: ref, patched: plan.patch !== undefined, notes: plan.notes } };
      },
      () => ({ workload: ref, patched: false, notes: [`${describeWorkload(ref)} no longer exists; nothing to restore`] }),
    );
    for (const note of outcome.notes) log.warn({ workload: describeWorkload(ref) }, note);
    if (outcome.patched) log.info({ workload: describeWorkload(ref), record }, 'restored');
    out.push(outcome);
  }
  return out.reverse();
}

/**
 * Records for `workloads` that `known` lacks, read from their `ferry.dev/pre-quiesce` annotation:
 * the second copy of the prior state, for a rollback after a quiesce that failed half-way (the
 * workflow then holds no records). Workloads without the annotation (never quiesced) or gone are
 * skipped; with `options.migrationId`, so are annotations of another migration (logged: a migration
 * with keepSourceQuiesced left them, and restoring them would undo that choice with stale values).
 */
export async function recordsFromAnnotations(client: KubeClient, workloads: readonly WorkloadRef[], known: readonly QuiesceRecord[], options: QuiesceOptions = {}): Promise<QuiesceRecord[]> {
  const log = options.logger ?? silentLogger;
  const have = new Set(known.map((r) => workloadKey(normalizeRef(r.workload))));
  const out: QuiesceRecord[] = [];
  for (const w of workloads) {
    if (have.has(workloadKey(normalizeRef(w)))) continue;
    const live = await readWorkload(client, w);
    if (!live) continue;
    const record = recordFromAnnotation(live, options.migrationId);
    if (record) out.push(record);
    else if (options.migrationId !== undefined && staleAnnotationOwner(live, options.migrationId)) {
      log.warn({ workload: describeWorkload(w), writtenBy: staleAnnotationOwner(live, options.migrationId) }, 'pre-quiesce annotation of another migration left alone: not restored');
    }
  }
  return out;
}

/**
 * The active pods (not Succeeded/Failed, including terminating ones) that belong to `workloads`:
 * pods whose controller chain resolves to one of them (a CronJob's pods come through its Jobs).
 */
export async function activePodsOf(client: KubeClient, workloads: readonly WorkloadRef[]): Promise<V1Pod[]> {
  const out: V1Pod[] = [];
  const byNamespace = new Map<string, Set<string>>();
  for (const w of workloads) {
    const set = byNamespace.get(w.namespace) ?? new Set<string>();
    set.add(workloadKey(normalizeRef(w)));
    byNamespace.set(w.namespace, set);
  }
  for (const [namespace, keys] of byNamespace) {
    const pods = (await client.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace)).filter(podIsActive);
    if (pods.length === 0) continue;
    const owners: KubernetesObject[] = [];
    for (const kind of [WORKLOAD_KINDS.ReplicaSet, WORKLOAD_KINDS.ReplicationController, WORKLOAD_KINDS.Job]) {
      if (await client.hasApi(kind.apiVersion, kind.kind)) owners.push(...(await client.list(kind, namespace)));
    }
    const index = ownerIndex(owners);
    for (const pod of pods) {
      const r = resolveController(pod, index);
      if (r.workload && keys.has(workloadKey(r.workload))) out.push(pod);
    }
  }
  return out;
}

/**
 * Pure: why StatefulSet `o` endangers its PVCs while this migration holds it quiesced, or undefined.
 * It does when Ferry quiesced it (the `ferry.dev/pre-quiesce` annotation is `migrationId`'s, with
 * `changed: true`: Ferry set its retention policy to Retain before scaling it to 0) and its
 * `persistentVolumeClaimRetentionPolicy` deletes PVCs again: an operator owning it, a GitOps tool or
 * an admission webhook changed it back after the scale, and the StatefulSet controller may delete the
 * PVCs of the removed pods (whenScaled: Delete) or all of them with the StatefulSet (whenDeleted).
 * Workloads that were already scaled down before the migration (`changed: false`) were not guarded
 * and are not judged here. The message names the StatefulSet and what to do.
 */
export function revertedRetentionProblem(o: KubernetesObject, migrationId: string | undefined): string | undefined {
  if (o.kind !== 'StatefulSet' || recordFromAnnotation(o, migrationId)?.changed !== true) return undefined;
  const policy = retentionPolicyOf(o);
  if (!policyDeletesPVCs(policy)) return undefined;
  const ctrl = o.metadata?.ownerReferences?.find((r) => r.controller === true);
  const who = ctrl ? `its controller ${ctrl.kind} ${ctrl.name}, an admission webhook or a GitOps tool` : 'an operator, an admission webhook or a GitOps tool';
  const namespace = o.metadata?.namespace ?? '?';
  return (
    `StatefulSet ${namespace}/${o.metadata?.name ?? '?'}: its persistentVolumeClaimRetentionPolicy is ${JSON.stringify(policy)} again while Ferry holds it quiesced ` +
    `(Ferry set Retain before scaling it to 0; ${who} changed it back), so the StatefulSet controller may delete its PVCs. ` +
    `The migration stops before the final sync and the StatefulSet is restored. Check that its PVCs still exist (kubectl get pvc -n ${namespace}), ` +
    'make whatever changed the policy keep whenScaled and whenDeleted at Retain during the migration (pause the operator\'s reconciliation, or set the policy in its custom resource), then migrate again'
  );
}

/**
 * Reads the StatefulSets among `workloads` and fails on the first whose retention policy was changed
 * back to Delete while quiesced (see `revertedRetentionProblem`). Other kinds and StatefulSets that
 * no longer exist are skipped.
 * @throws FerryError (config) naming the StatefulSet and what to do; API errors.
 */
export async function assertRetentionHeld(client: KubeClient, workloads: readonly WorkloadRef[], migrationId: string | undefined): Promise<void> {
  for (const ref of workloads) {
    if (ref.kind !== 'StatefulSet') continue;
    const live = await readWorkload(client, ref);
    const problem = live ? revertedRetentionProblem(live, migrationId) : undefined;
    if (problem) throw new FerryError('config', problem, { details: { workload: describeWorkload(ref), policy: retentionPolicyOf(live!) } });
  }
}

/**
 * Seconds between two full checks of `waitForQuiesced` while its pod watches run: a resync that
 * catches anything a watch missed (each check re-lists; the watches wake it as pods end).
 */
export const QUIESCE_RESYNC_SECONDS = 20;
/**
 * Seconds between two checks of `waitForQuiesced` while a pod watch is down (not yet started,
 * failed, refused): the poll of old, also the pause before watching again.
 */
export const QUIESCE_POLL_SECONDS = 5;

/** Options of `waitForQuiesced`. */
export interface WaitQuiescedOptions {
  /** Give up after this many seconds (WaitTimeoutError). Default: wait until aborted. */
  timeoutSeconds?: number;
  /**
   * Seconds between checks while no watch runs (default QUIESCE_POLL_SECONDS), and between
   * attempts to watch again.
   */
  intervalSeconds?: number;
  /** Seconds between checks while the watches run (default QUIESCE_RESYNC_SECONDS). */
  resyncSeconds?: number;
  /** false: poll only, every `intervalSeconds` (no watch). Default true. */
  watch?: boolean;
  /** Called after every check that still found pods (heartbeat here). */
  onTick?: (remaining: string[]) => void;
  signal?: AbortSignal;
  /** The migration that quiesced the workloads: on every check, its StatefulSets' retention policy
   * must still be Retain (see `assertRetentionHeld`). */
  migrationId?: string;
  /** Where watch failures go (debug; a refused watch once at warn). */
  logger?: Logger;
}

const POD_KIND = { apiVersion: 'v1', kind: 'Pod' } as const;

/**
 * Watches the pods of `namespaces` (keepWatching) and rings `wakeup` when one of `awaited()` (keys
 * "namespace/name") ends: deleted, or Succeeded/Failed; and at every gap (a failed attempt or watch,
 * a watch started late: see keepWatching), so while a watch is down the waiter polls every
 * `retryMs`. A watch refused with 403 (the identity may list pods but not watch them) is logged
 * once at warn.
 */
function watchPodEnds(
  client: KubeClient,
  namespaces: readonly string[],
  awaited: () => ReadonlySet<string>,
  wakeup: Wakeup,
  options: { retryMs: number; startBoundMs: number; logger: Logger },
): { started: Promise<void>; stop(): void } {
  let refusedLogged = false;
  const watches = namespaces.map((namespace) =>
    keepWatching<V1Pod>(
      client,
      POD_KIND,
      namespace,
      {
        retryMs: options.retryMs,
        startBoundMs: options.startBoundMs,
        onGap: (err) => {
          if (err !== undefined && statusCode(err) === 403 && !refusedLogged) {
            refusedLogged = true;
            options.logger.warn({ namespace, err: String(err) }, `Ferry may not watch pods in ${namespace}: the quiesce wait polls every ${options.retryMs / 1000} s instead (grant "watch" on pods to start the final sync as soon as the last pod is gone)`);
          } else if (err !== undefined) options.logger.debug({ namespace, err: String(err) }, 'pod watch of the quiesce wait failed; checking now and watching again');
          wakeup.ring();
        },
      },
      (type, pod) => {
        if ((type === 'DELETED' || (type === 'MODIFIED' && !podIsActive(pod))) && awaited().has(`${namespace}/${pod.metadata?.name}`)) wakeup.ring();
      },
    ),
  );
  return {
    started: Promise.all(watches.map((w) => w.started)).then(() => undefined),
    stop: () => {
      for (const w of watches) w.stop();
    },
  };
}

/**
 * Waits until no pod of `workloads` is active. Note: suspending a CronJob does not stop a Job that
 * already runs (Kubernetes CronJob `suspend` only affects future runs), so this also waits for such
 * a Job's pods to finish. Every check first re-reads the quiesced StatefulSets: one whose retention
 * policy deletes PVCs again fails the wait at once (FerryError config, see `assertRetentionHeld`).
 *
 * Watch, not poll: the pods of the workloads' namespaces are watched (`KubeClient.watch`), and the
 * end of a pod still awaited (deleted, or Succeeded/Failed) runs the next check at once, so the wait
 * returns within a check's API round trips of the last pod's deletion (the final syncs start then).
 * Checks still run every `resyncSeconds` while the watches run, and every `intervalSeconds` while
 * one is down (a failed, closed or refused watch: rings, polls, and is watched again), so a watch
 * that misses an event only costs latency. A client without `watch` (or `watch: false`) polls.
 * @throws WaitTimeoutError after `timeoutSeconds`, naming the pods still running; FerryError
 *   (config) for a reverted retention policy; AbortedError on abort; non-transient API errors.
 */
export async function waitForQuiesced(client: KubeClient, workloads: readonly WorkloadRef[], options: WaitQuiescedOptions = {}): Promise<void> {
  let remaining: string[] = [];
  let awaited: ReadonlySet<string> = new Set();
  const pollSeconds = options.intervalSeconds ?? QUIESCE_POLL_SECONDS;
  const canWatch = options.watch !== false && typeof (client as Partial<KubeClient>).watch === 'function';
  const wakeup = new Wakeup();
  const namespaces = [...new Set(workloads.map((w) => w.namespace))];
  const watches = canWatch
    ? watchPodEnds(client, namespaces, () => awaited, wakeup, { retryMs: pollSeconds * 1000, startBoundMs: Math.min(5000, pollSeconds * 1000), logger: options.logger ?? silentLogger })
    : undefined;
  try {
    // The first check lists after the watches started: a pod that ends later is an event.
    await watches?.started;
    await waitFor(
      async () => {
        await assertRetentionHeld(client, workloads, options.migrationId);
        remaining = (await activePodsOf(client, workloads)).map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`);
        awaited = new Set(remaining);
        if (remaining.length === 0) return true;
        options.onTick?.(remaining);
        return false;
      },
      {
        timeoutSeconds: options.timeoutSeconds,
        intervalSeconds: canWatch ? (options.resyncSeconds ?? QUIESCE_RESYNC_SECONDS) : pollSeconds,
        signal: options.signal,
        wakeup,
        description: 'the quiesced workloads\' pods to stop',
        explain: () => (remaining.length ? `still running: ${remaining.slice(0, 10).join(', ')}${remaining.length > 10 ? ` and ${remaining.length - 10} more` : ''}` : undefined),
      },
    );
  } finally {
    watches?.stop();
  }
}

/** A ref with Ferry's API version for its kind (a batch/v1beta1 CronJob ref becomes batch/v1). */
function normalizeRef(ref: WorkloadRef): WorkloadRef {
  return isWorkloadKind(ref.kind) ? workloadRef(ref.kind, ref.namespace, ref.name) : ref;
}
