/**
 * The destination's transfer server pod, kept alive for the whole migration by Ferry itself: the
 * server is a bare pod with a deterministic name (no controller-manager needed), so Ferry ensures it
 * before every sync (`ensureServerPod`, called by the runTransfer activity through
 * server-sync.ts) and recreates it when it was deleted, evicted, or ended.
 *
 * The pod cannot be rebuilt from a single sync's request (it mounts every destination PVC of the
 * namespace and runs with an identity chosen from all of them), so createServer stores the exact pod
 * manifest in the destination, in the ConfigMap `ferry-<key>-srv-pod` (role server: cleanup and a
 * credentials reset delete it with the other server objects). The pod's Secrets and ConfigMaps stay
 * in the cluster when the pod goes, so a recreated pod is the same server with the same credentials.
 */
import type { KubernetesObject, V1ConfigMap, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { NamespaceTransfer, TransferCredentials } from '../statetransfer/namespace-transfer';
import { objectLabels, objectName } from '../statetransfer/names';
import { configMap } from '../statetransfer/objects';
import { describeRef, refOf, ringOnChange, waitFor, Wakeup, type KubeClient, type ObjectRef } from '../k8s/client';
import { FerryError, WaitTimeoutError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { DEFAULT_PENDING_LIMITS, describePodState, diagnosePod } from './follow';

/** Key of the pod manifest (JSON) in the server template ConfigMap. */
export const SERVER_TEMPLATE_KEY = 'pod.json';

/** Name of the ConfigMap that holds the server pod's manifest. */
export function serverTemplateName(migrationId: string): string {
  return objectName(migrationId, 'srv-pod');
}

/** The ConfigMap holding the server pod's manifest (metadata reduced to name, namespace, labels,
 * annotations). Pure. */
export function serverTemplateConfigMap(migrationId: string, pod: V1Pod): V1ConfigMap {
  const manifest: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: pod.metadata!.name!,
      namespace: pod.metadata!.namespace!,
      labels: { ...(pod.metadata?.labels ?? {}) },
      ...(pod.metadata?.annotations ? { annotations: { ...pod.metadata.annotations } } : {}),
    },
    spec: pod.spec!,
  };
  return configMap(serverTemplateName(migrationId), pod.metadata!.namespace!, objectLabels(migrationId, 'server'), { [SERVER_TEMPLATE_KEY]: JSON.stringify(manifest) });
}

/** The pod manifest stored in a server template ConfigMap, or undefined when it holds none. */
export function podFromTemplate(cm: V1ConfigMap | undefined): V1Pod | undefined {
  const text = cm?.data?.[SERVER_TEMPLATE_KEY];
  if (!text) return undefined;
  try {
    const pod = JSON.parse(text) as V1Pod;
    return pod.kind === 'Pod' && pod.metadata?.name && pod.spec ? pod : undefined;
  } catch {
    return undefined;
  }
}

function time(t: unknown): number | undefined {
  if (t === undefined || t === null) return undefined;
  const ms = new Date(t as string | Date).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

function iso(ms: number | undefined): string {
  return ms === undefined ? 'an unknown time' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Whether a pod is Running and Ready. */
export function podReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** What to do with the live server pod before a sync. */
export interface ServerPodDecision {
  /**
   * keep: Running and Ready; wait: starting, or restarting its containers (the kubelet brings it back);
   * recreate: missing; replace: ended (Failed/Succeeded, e.g. evicted), being deleted, or older than
   * its configuration: delete (or let the deletion finish), then create.
   */
  action: 'keep' | 'wait' | 'recreate' | 'replace';
  /** What happened to the pod, for logs and error messages ("was deleted", "was evicted: …"). */
  reason: string;
}

/**
 * Pure: the decision for the live server pod `live` (undefined: it does not exist).
 * `configSince` (ms): when the pod's Secrets were last replaced (e.g. renewed certificates); a pod
 * created before that still serves the old ones and is replaced.
 */
export function serverPodDecision(live: V1Pod | undefined, name: string, options: { configSince?: number } = {}): ServerPodDecision {
  const what = `the transfer server pod ${name}`;
  if (!live) return { action: 'recreate', reason: `${what} does not exist (not made yet, or deleted)` };
  const created = time(live.metadata?.creationTimestamp);
  const deleting = time(live.metadata?.deletionTimestamp);
  if (live.metadata?.deletionTimestamp) return { action: 'replace', reason: `${what} is being deleted (since ${iso(deleting !== undefined ? deleting - (live.metadata.deletionGracePeriodSeconds ?? 0) * 1000 : undefined)})` };
  const phase = live.status?.phase;
  if (phase === 'Failed' || phase === 'Succeeded') {
    const why = live.status?.reason ? `${live.status.reason}${live.status.message ? `: ${live.status.message}` : ''}` : `phase ${phase}`;
    return { action: 'replace', reason: live.status?.reason === 'Evicted' ? `${what} was evicted (${why})` : `${what} ended (${why})` };
  }
  if (options.configSince !== undefined && created !== undefined && created < Math.floor(options.configSince / 1000) * 1000) {
    return { action: 'replace', reason: `${what} (created ${iso(created)}) still serves the credentials replaced at ${iso(options.configSince)}` };
  }
  if (podReady(live)) return { action: 'keep', reason: `${what} is running and Ready` };
  const restarts = restartSummary(live);
  return { action: 'wait', reason: `${what} is not Ready (phase ${phase ?? 'Pending'}${restarts ? `; ${restarts}` : ''})` };
}

function lastTermination(cs: V1ContainerStatus): string | undefined {
  const t = cs.lastState?.terminated;
  if (!t) return undefined;
  return `container ${cs.name} last exited with code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''} at ${iso(time(t.finishedAt))}`;
}

/** "restarted N times; container X last exited …", or '' when no container restarted. Pure. */
export function restartSummary(pod: V1Pod): string {
  const statuses = pod.status?.containerStatuses ?? [];
  const n = statuses.reduce((a, c) => a + (c.restartCount ?? 0), 0);
  if (n === 0) return '';
  const last = statuses.filter((c) => (c.restartCount ?? 0) > 0).map(lastTermination).filter((x): x is string => !!x);
  return `its containers restarted ${n} time${n === 1 ? '' : 's'}${last.length ? `; ${last.join('; ')}` : ''}`;
}

/** What identifies one incarnation of the server pod (taken before a sync, compared after it). */
export interface ServerSnapshot {
  uid?: string;
  created?: number;
  restarts: number;
}

/** Pure: the snapshot of a live server pod. */
export function serverSnapshot(pod: V1Pod | undefined): ServerSnapshot | undefined {
  if (!pod) return undefined;
  return {
    ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}),
    ...(time(pod.metadata?.creationTimestamp) !== undefined ? { created: time(pod.metadata?.creationTimestamp)! } : {}),
    restarts: (pod.status?.containerStatuses ?? []).reduce((a, c) => a + (c.restartCount ?? 0), 0),
  };
}

/**
 * Pure: what happened to the server between `before` (the pod the sync used) and `now` (the live pod
 * after the sync failed), in one sentence; undefined when nothing did (same pod, no restart, Ready).
 */
export function serverChange(before: ServerSnapshot | undefined, now: V1Pod | undefined, name: string, at = Date.now()): string | undefined {
  const what = `the transfer server pod ${name}`;
  const since = before?.created !== undefined ? ` (it had run since ${iso(before.created)})` : '';
  if (!now) return `${what} was deleted during the sync${since}; it was gone at ${iso(at)}`;
  const d = serverPodDecision(now, name);
  if (before?.uid && now.metadata?.uid && now.metadata.uid !== before.uid) return `${what} was replaced during the sync by a new pod created at ${iso(time(now.metadata?.creationTimestamp))}${since}`;
  if (d.action === 'replace') return `${d.reason}${since}`;
  const restarts = serverSnapshot(now)!.restarts - (before?.restarts ?? 0);
  if (restarts > 0) return `${what} restarted ${restarts} time${restarts === 1 ? '' : 's'} during the sync (${restartSummary(now)})`;
  if (d.action === 'wait') return d.reason;
  return undefined;
}

/** Options of `ensureServerPod`. */
export interface EnsureServerPodOptions {
  /** Seconds to wait for the pod to be Ready (plan timeouts.serverReadySeconds). */
  timeoutSeconds: number;
  /** Replace the pod whatever its state (its configuration changed). */
  replace?: boolean;
  /** See `serverPodDecision`. */
  configSince?: number;
  onTick?: (reason: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

/** What `ensureServerPod` found and did. */
export interface EnsureServerPodResult {
  decision: ServerPodDecision;
  /** The pod was (re)created by this call. */
  created: boolean;
  /** The Ready pod. */
  pod: V1Pod;
}

/**
 * Makes sure the server pod of `template` runs and is Ready: keeps a Ready pod, waits for one that is
 * starting or restarting, deletes one that ended or is outdated (waiting for a deletion in progress
 * to finish), creates a missing one from `template`, then waits until it is Ready.
 * @throws FerryError (config) for a pod that cannot start (image, configuration) or is not Ready in
 *   time; the FerryError of `diagnosePod` (bad image, crash loop, container that cannot be created); AbortedError when `signal` aborts.
 */
export async function ensureServerPod(destination: KubeClient, template: V1Pod, options: EnsureServerPodOptions): Promise<EnsureServerPodResult> {
  const log = options.logger ?? silentLogger;
  const ref: ObjectRef = refOf(template);
  const name = describeRef(ref).replace(/^Pod /, '');
  const live = await destination.get<V1Pod>(ref);
  let decision = serverPodDecision(live, name, options.configSince !== undefined ? { configSince: options.configSince } : {});
  if (options.replace && live && decision.action !== 'replace') decision = { action: 'replace', reason: `the configuration of the transfer server pod ${name} changed` };
  if (decision.action === 'keep') return { decision, created: false, pod: live! };
  let created = false;
  if (decision.action === 'replace') {
    log.warn({ pod: name, reason: decision.reason }, 'replacing the transfer server pod');
    const uid = live!.metadata?.uid;
    if (!live!.metadata?.deletionTimestamp) await destination.delete(ref, 0, uid);
    // gone, or already replaced by a concurrent sync of another PVC (another uid)
    await waitFor(async () => (await destination.get(ref))?.metadata?.uid !== uid, { timeoutSeconds: 180, intervalSeconds: 2, signal: options.signal, onTick: () => options.onTick?.(`${name} to be deleted`), description: `${describeRef(ref)} to be deleted` });
  } else if (decision.action === 'recreate') {
    // No pod at all is also the first creation (createServer): not worth a warning then.
    if (live) log.warn({ pod: name, reason: decision.reason }, 'recreating the transfer server pod');
    else log.info({ pod: name, reason: decision.reason }, 'creating the transfer server pod');
  }
  if (decision.action !== 'wait') created = (await destination.createOrAdopt(structuredClone(template))).created;
  let reason = 'not created yet';
  // Watched: Ready is seen when the kubelet reports it, not at the end of the 2 s interval.
  const wakeup = new Wakeup();
  // By the pod's own name: `name` above is "namespace/name", for messages.
  const watch = ringOnChange(destination, { apiVersion: 'v1', kind: 'Pod' }, ref.namespace, ref.name, wakeup);
  try {
    await watch.started;
    const pod = await waitFor(
      async () => {
        const p = await destination.get<V1Pod>(ref);
        if (!p) throw new FerryError('transient', `server pod ${name} disappeared while starting`);
        if (podReady(p)) return p;
        const since = time(p.metadata?.creationTimestamp) ?? Date.now();
        // The overall bound is timeoutSeconds (its expiry below explains the last state); diagnosePod
        // ends it sooner for a bad image, a container that cannot be created or keeps crashing.
        const trouble = await diagnosePod(destination, p, (Date.now() - since) / 1000, { ...DEFAULT_PENDING_LIMITS, pendingSeconds: Number.POSITIVE_INFINITY });
        if (trouble) throw trouble;
        const notReady = p.status?.conditions?.find((c) => c.status !== 'True' && c.message)?.message;
        reason = `${describePodState(p)}${notReady ? `; ${notReady}` : ''}`;
        return undefined;
      },
      {
        timeoutSeconds: options.timeoutSeconds,
        intervalSeconds: 2,
        signal: options.signal,
        onTick: () => options.onTick?.(reason),
        description: `server pod ${name} to be Ready`,
        explain: () => reason,
        wakeup,
      },
    );
    log.info({ pod: name, action: decision.action, created }, 'transfer server pod ready');
    return { decision, created, pod };
  } catch (err) {
    if (err instanceof WaitTimeoutError) throw new FerryError('config', `${err.message}; check the destination namespace's events and the pod's logs`, { cause: err });
    throw err;
  } finally {
    watch.stop();
  }
}

/** What `ensureOwned` did. */
export type EnsureAction = 'created' | 'adopted' | 'replaced';

/** The `data` map of a Secret/ConfigMap as a canonical string (the API server returns keys sorted). */
function dataOf(o: KubernetesObject): string {
  const data = (o as { data?: Record<string, string> }).data ?? {};
  return JSON.stringify(Object.keys(data).sort().map((k) => [k, data[k]]));
}

/**
 * createOrAdopt, plus: an adopted Ferry Secret or ConfigMap whose `data` differs from `obj` (e.g.
 * a stunnel config for an endpoint address that changed) is deleted and created again.
 */
export async function ensureOwned(client: KubeClient, obj: KubernetesObject): Promise<EnsureAction> {
  const { object, created } = await client.createOrAdopt(obj);
  if (created) return 'created';
  if ((obj.kind === 'Secret' || obj.kind === 'ConfigMap') && dataOf(object) !== dataOf(obj)) {
    await client.delete(object);
    await waitFor(async () => !(await client.get(refOf(obj))), { timeoutSeconds: 60, intervalSeconds: 1, description: `${describeRef(obj)} to be deleted` });
    await client.createOrAdopt(obj);
    return 'replaced';
  }
  return 'adopted';
}

/** Options of `ensureServer`. */
export interface EnsureServerOptions {
  /** Seconds to wait for the server pod to be Ready (plan timeouts.serverReadySeconds). */
  timeoutSeconds: number;
  onTick?: (reason: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

/**
 * Creates (or adopts) the destination's Secrets, ConfigMaps, PodDisruptionBudget, the server pod's
 * template (server.ts) and the server pod, in order, and waits until the server pod is Ready. A server
 * pod that is missing, ended (Failed/Succeeded, e.g. evicted), or was made before one of its
 * Secrets/ConfigMaps changed is (re)created (server.ts `ensureServerPod`).
 * @throws FerryError (config) for a pod that cannot start (image, configuration) or is not Ready in
 *   time; ConflictError when a foreign object holds a name.
 */
export async function ensureServer(destination: KubeClient, nt: NamespaceTransfer, credentials: TransferCredentials, options: EnsureServerOptions): Promise<void> {
  const objects = nt.destinationObjects(credentials);
  const pod = objects.find((o) => o.kind === 'Pod') as V1Pod;
  let changed = false;
  for (const o of [...objects.filter((x) => x.kind !== 'Pod'), serverTemplateConfigMap(nt.migrationId, pod)]) {
    const action = await ensureOwned(destination, o);
    if (action === 'replaced') changed = true;
  }
  await ensureServerPod(destination, pod, {
    timeoutSeconds: options.timeoutSeconds,
    replace: changed,
    ...(options.onTick ? { onTick: options.onTick } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
}
