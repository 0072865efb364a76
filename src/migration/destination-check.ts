/**
 * Post-cutover verification of the destination (plan `verifyDestination`, MTC's `verify`): after the
 * final sync and cleanup (the transfer server no longer holds the volumes), wait until the destination
 * pods that mount the migrated PVCs are Ready. The workloads themselves are the operator's to bring
 * (GitOps, Velero, or a postCutover job hook): Ferry does not create them. A PVC is expected to be
 * mounted when a running workload (core/types.ts RUNNING_WORKLOAD_KINDS) mounted it at the source;
 * the namespace workflow says which. The result is a
 * report, never an error: the copy is committed, and a failed check is a warning, not a rollback.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { AbortedError, WaitTimeoutError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import type { DestinationCheck, DestinationPVCCheck } from '../core/types';
import { waitFor, type KubeClient } from '../k8s/client';
import { describeContainerStatus } from './follow';

/** A PVC the check looks at. */
export interface DestinationClaim {
  /** Destination PVC name. */
  name: string;
  /** Pods must mount it (a running workload did at the source). */
  expected: boolean;
}

/** Pure: an application pod's state in words ("phase Running; container app: waiting (CrashLoopBackOff), restarted 4 times"). */
function appPodState(p: V1Pod): string {
  const parts = [`phase ${p.status?.phase ?? 'Pending'}`];
  for (const cs of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) if (!cs.ready) parts.push(`container ${cs.name}: ${describeContainerStatus(cs)}${cs.state?.running ? ', not Ready (readiness probe)' : ''}`);
  const sched = p.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (sched) parts.push(`not scheduled: ${sched.message ?? sched.reason ?? 'no reason given'}`);
  return parts.join('; ');
}

function podReady(p: V1Pod): boolean {
  return p.status?.phase === 'Running' && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Pure: the state of each claim given the namespace's pods (terminating and finished pods do not count). */
export function claimStates(claims: readonly DestinationClaim[], pods: readonly V1Pod[]): DestinationPVCCheck[] {
  const live = pods.filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
  return claims.map((c) => {
    const mounting = live
      .filter((p) => (p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === c.name))
      .map((p) => ({ name: p.metadata?.name ?? '?', ready: podReady(p), state: podReady(p) ? 'Ready' : appPodState(p) }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    return { pvc: c.name, expected: c.expected, pods: mounting, ready: mounting.length > 0 && mounting.every((m) => m.ready) };
  });
}

/**
 * Waits up to `timeoutSeconds` until every expected claim is mounted by Ready pods only, polling the
 * namespace's pods every 2 s; returns the last state seen.
 * @throws AbortedError when `signal` aborts.
 */
export async function checkDestination(
  client: KubeClient,
  namespace: string,
  claims: readonly DestinationClaim[],
  o: { timeoutSeconds: number; signal?: AbortSignal; onTick?: (waitingFor: string) => void; logger?: Logger },
): Promise<DestinationCheck> {
  const log = o.logger ?? silentLogger;
  const started = Date.now();
  const expected = claims.filter((c) => c.expected);
  const result = (ok: boolean, pvcs: DestinationPVCCheck[], message?: string): DestinationCheck => {
    const r: DestinationCheck = { namespace, ok, pvcs, ...(message ? { message } : {}), seconds: (Date.now() - started) / 1000 };
    log[ok ? 'info' : 'warn']({ namespace, ok, message }, 'destination check');
    return r;
  };
  if (expected.length === 0) {
    return result(true, claimStates(claims, []), 'no migrated PVC was mounted by a running workload at the source: no pod to wait for');
  }
  let last: DestinationPVCCheck[] = claimStates(claims, []);
  const waiting = () =>
    last
      .filter((c) => c.expected && !c.ready)
      .map((c) => (c.pods.length === 0 ? `${c.pvc}: no pod mounts it` : `${c.pvc}: ${c.pods.filter((p) => !p.ready).map((p) => `${p.name} ${p.state}`).join(', ')}`))
      .join(' | ');
  try {
    await waitFor(
      async () => {
        let pods: V1Pod[];
        try {
          pods = await client.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace);
        } catch (err) {
          // an API blip: keep waiting (the limit still holds)
          log.warn({ namespace, error: err instanceof Error ? err.message : String(err) }, 'listing the destination pods failed');
          return undefined;
        }
        last = claimStates(claims, pods);
        return last.every((c) => !c.expected || c.ready) ? true : undefined;
      },
      { timeoutSeconds: o.timeoutSeconds, intervalSeconds: 2, description: `the pods of the migrated PVCs in ${namespace} to be Ready`, onTick: () => o.onTick?.(waiting()), ...(o.signal ? { signal: o.signal } : {}) },
    );
  } catch (err) {
    if (err instanceof AbortedError) throw err;
    if (!(err instanceof WaitTimeoutError)) throw err;
    return result(false, last, `not Ready after ${o.timeoutSeconds} s: ${waiting()}`);
  }
  return result(true, last, `${expected.length} PVC(s) mounted by Ready pods`);
}
