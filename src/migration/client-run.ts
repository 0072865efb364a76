/**
 * One sync of one PVC in a client pod (the per-sync mode, and PVCs beyond the plan's maxAgents): the
 * pod is created (or re-attached to, on a retry of the same sync), followed until its transfer
 * container ends (follow.ts), and its verdict returned. Warm agents run their syncs instead (agent.ts).
 */
import { ensureOwned } from './server';

import type { V1Pod } from '@kubernetes/client-node';
import type { EndpointAddress, PVCInfo, TransferProgress, TransferResult } from '../core/types';
import { type NamespaceTransfer, type TransferCredentials } from '../statetransfer/namespace-transfer';
import { waitFor, type KubeClient } from '../k8s/client';
import { FerryError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { describePodState, followTransferPod, transferVerdict, type PendingLimits } from './follow';

/** Label on client pods: the sync number (TransferRequest.pass) the pod performs. */
export const PASS_LABEL = 'ferry.dev/pass';
/** Annotation on client pods: 'final' or 'stage' (set by namespace-transfer.ts). */
export const SYNC_ANNOTATION = 'ferry.dev/sync';

function podRef(namespace: string, name: string) {
  return { apiVersion: 'v1', kind: 'Pod', namespace, name };
}

/** One sync of one PVC. */
export interface ClientTransferRequest {
  pvc: PVCInfo;
  address: EndpointAddress;
  final: boolean;
  pass: number;
  /** The claim to read instead of the source PVC (a snapshot's or clone's PVC). */
  readFrom?: string;
}

/** Options of `runClientTransfer`. */
export interface ClientTransferOptions {
  /** Heartbeat: latest progress (undefined before the first progress line) and the pod phase. */
  onProgress?: (progress: TransferProgress | undefined, phase: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
  /** Limit for the sync in seconds (plan timeouts.transferSeconds); default none. */
  timeoutSeconds?: number;
  /** Seconds between progress polls (default 5). */
  intervalSeconds?: number;
  /** Asked when `signal` aborts: true leaves the client pod running (the worker is shutting down, and
   * the next attempt of the sync re-attaches to the pod, which copies on meanwhile); false or absent
   * deletes it (a real cancellation: rollback). */
  keepPodOnAbort?: () => boolean;
  /** Bounds of a client pod that cannot start or keeps crashing (default DEFAULT_PENDING_LIMITS;
   * pendingSeconds from plan timeouts.podStartSeconds). */
  pendingLimits?: PendingLimits;
}

/** Deletes a pod and waits (up to 180 s) until it is gone, explaining what holds it. */
export async function deletePodAndWait(client: KubeClient, namespace: string, name: string, signal?: AbortSignal): Promise<void> {
  const ref = podRef(namespace, name);
  if (!(await client.delete(ref))) return;
  let seen: V1Pod | undefined;
  await waitFor(
    async () => {
      seen = await client.get<V1Pod>(ref);
      return !seen;
    },
    {
      timeoutSeconds: 180,
      intervalSeconds: 2,
      signal,
      description: `pod ${namespace}/${name} to be deleted`,
      explain: () => (seen ? `still there: ${describePodState(seen)}${seen.metadata?.finalizers?.length ? `; finalizers ${seen.metadata.finalizers.join(', ')}` : ''}${seen.spec?.nodeName ? `; on node ${seen.spec.nodeName} (is its kubelet down?)` : ''}` : undefined),
    },
  );
}

/**
 * Runs (or re-attaches to) the client pod of one sync of one PVC, follows it, deletes it and returns
 * the result.
 *
 * The client pod's name is per PVC (names.ts); its label `ferry.dev/pass` and annotation
 * `ferry.dev/sync` say which sync it performs. An existing pod for the same pass and kind of sync is
 * followed (a retried activity re-attaches instead of starting a second writer; a pod that already
 * finished yields its result); a pod of another pass is deleted first.
 * @throws FerryError classified by `transferVerdict` (transient, noSpace, auth, config, partial,
 *   fatal); AbortedError when cancelled (the pod is deleted first, unless `keepPodOnAbort` says the
 *   worker is shutting down).
 */
export async function runClientTransfer(
  source: KubeClient,
  nt: NamespaceTransfer,
  credentials: TransferCredentials,
  req: ClientTransferRequest,
  options: ClientTransferOptions = {},
): Promise<TransferResult> {
  const log = options.logger ?? silentLogger;
  const ns = nt.sourceNamespace;
  const name = nt.clientPodName(req.pvc.name);
  const sync = req.final ? 'final' : 'stage';
  const objects = nt.sourceObjects(req.pvc.name, req.address, credentials, { final: req.final, ...(req.readFrom !== undefined ? { readFrom: req.readFrom } : {}) });
  const pod = structuredClone(objects.find((o) => o.kind === 'Pod')) as V1Pod;
  pod.metadata!.labels = { ...pod.metadata!.labels, [PASS_LABEL]: String(req.pass) };

  const existing = await source.get<V1Pod>(podRef(ns, name));
  let reattached = false;
  if (existing) {
    const samePass = existing.metadata?.labels?.[PASS_LABEL] === String(req.pass) && existing.metadata?.annotations?.[SYNC_ANNOTATION] === sync && !existing.metadata?.deletionTimestamp;
    if (samePass) {
      reattached = true;
      log.info({ pod: `${ns}/${name}`, pass: req.pass, phase: existing.status?.phase }, 're-attaching to the client pod of this sync');
    } else {
      log.info({ pod: `${ns}/${name}`, pass: existing.metadata?.labels?.[PASS_LABEL] }, 'deleting the client pod of an earlier sync');
      await deletePodAndWait(source, ns, name, options.signal);
    }
  }
  let uid = existing?.metadata?.uid;
  if (!reattached) {
    for (const o of objects) if (o.kind !== 'Pod') await ensureOwned(source, o);
    const { object, created } = await source.createOrAdopt(pod);
    uid = object.metadata?.uid;
    log.info({ pod: `${ns}/${name}`, pass: req.pass, sync, created }, created ? 'client pod created' : 'client pod of this migration already exists (created concurrently); following it');
  }

  const started = existing && reattached && existing.metadata?.creationTimestamp ? new Date(existing.metadata.creationTimestamp as unknown as string | Date).getTime() : Date.now();
  const limit = options.timeoutSeconds !== undefined ? new AbortController() : undefined;
  const timer = limit ? setTimeout(() => limit.abort(), Math.max(0, options.timeoutSeconds! * 1000 - (Date.now() - started))) : undefined;
  const signal = limit && options.signal ? AbortSignal.any([options.signal, limit.signal]) : (limit?.signal ?? options.signal);
  try {
    const finished = await followTransferPod(source, {
      namespace: ns,
      name,
      engine: nt.transfer.type,
      intervalSeconds: options.intervalSeconds,
      onProgress: options.onProgress,
      signal,
      ...(options.pendingLimits ? { pendingLimits: options.pendingLimits } : {}),
      ...(uid ? { uid } : {}),
    });
    const durationSeconds = Math.round((Date.now() - started) / 1000);
    log.info({ pod: `${ns}/${name}`, exitCode: finished.exitCode, durationSeconds }, 'client transfer ended');
    await source.delete(podRef(ns, name), undefined, uid).catch(() => undefined);
    const sc = pod.spec?.securityContext;
    return transferVerdict(finished, {
      engine: nt.transfer.type,
      final: req.final,
      durationSeconds,
      client: { root: sc?.runAsUser === 0, ...(sc?.runAsUser !== undefined ? { uid: sc.runAsUser } : {}), ...(sc?.runAsGroup !== undefined ? { gid: sc.runAsGroup } : {}) },
    });
  } catch (err) {
    const timedOut = limit?.signal.aborted && !options.signal?.aborted;
    if (options.signal?.aborted && options.keepPodOnAbort?.()) {
      log.info({ pod: `${ns}/${name}`, pass: req.pass }, 'worker shutting down: leaving the client pod running for the next attempt to re-attach to');
      throw err;
    }
    // Whatever else ended the follow (cancel, stuck pod, time limit), this attempt's pod goes; the
    // uid precondition keeps a replacement made by another attempt.
    await source.delete(podRef(ns, name), undefined, uid).catch(() => undefined);
    if (timedOut) throw new FerryError('transient', `the sync of PVC ${ns}/${req.pvc.name} exceeded the plan's transferSeconds (${options.timeoutSeconds} s); the next attempt resumes from what was copied`);
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
  }
}
