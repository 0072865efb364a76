/**
 * Writers of the source PVCs that quiesce did not stop: pods other than Ferry's own that mount a
 * source PVC (read-write) once the applications are quiesced. The namespace workflow checks right
 * before the final sync (deleting the pods Ferry cannot stop when the plan says `unmanagedPods:
 * delete`) and right after it: a final sync that ran while such a pod could write is not a copy to
 * trust.
 *
 * What counts: every active pod (not Succeeded/Failed, terminating ones included: they may still
 * write) that mounts one of the PVCs without `readOnly: true` and is not labelled
 * app.kubernetes.io/managed-by=ferry. Deletable ("unmanaged"): pods no workload kind Ferry knows
 * controls (bare pods, pods of an operator's custom resource), and pods whose controller chain has
 * such a kind above a known workload. Pods of a known workload that is not quiesced (created after
 * discovery) are reported, never deleted: their controller would recreate them.
 *
 * With `retentionOf` (the call right before the final sync), it also fails when a StatefulSet this
 * migration quiesced holds a retention policy that deletes PVCs again (./quiesce.ts
 * `revertedRetentionProblem`).
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { UnmanagedPod, WriterCheck } from '../core/types';
import { LABELS } from '../statetransfer/names';
import { keepWatching, waitFor, Wakeup, type KubeClient } from '../k8s/client';
import { FerryError } from '../core/errors';
import { silentLogger, type Logger } from '../core/log';
import { revertedRetentionProblem } from './quiesce';
import { describeWorkload, ownerIndex, podIsActive, readInventory, resolveController, writableClaimNamesOf, type WorkloadInventory } from './workloads';

/** A pod found by `sourceWriters`, and whether Ferry may delete it. */
export interface SourceWriter extends UnmanagedPod {
  /** No known workload controls it, or an unknown controller sits above it. */
  unmanaged: boolean;
  uid?: string;
}

/** Pure: the writers among the inventory's pods for `pvcs` (see the module docstring), sorted by name. */
export function sourceWriters(inventory: WorkloadInventory, pvcs: readonly string[]): SourceWriter[] {
  const wanted = new Set(pvcs);
  const index = ownerIndex(inventory.workloads);
  const out: SourceWriter[] = [];
  for (const pod of inventory.pods) {
    if (!podIsActive(pod) || pod.metadata?.labels?.[LABELS.managedBy] === 'ferry') continue;
    const mounted = writableClaimNamesOf(pod.spec).filter((c) => wanted.has(c));
    if (mounted.length === 0) continue;
    const r = resolveController(pod, index);
    const foreign = r.foreignOwner ? `${r.foreignOwner.kind} ${r.foreignOwner.name}${r.workload ? ` (controls ${describeWorkload(r.workload)})` : ''}` : undefined;
    const owner = foreign ?? (r.workload ? `${describeWorkload(r.workload)} (not quiesced)` : undefined);
    out.push({
      name: pod.metadata?.name ?? '?',
      pvcs: mounted,
      ...(owner ? { owner } : {}),
      unmanaged: !r.workload || foreign !== undefined,
      ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Options of `checkSourceWriters`. */
export interface CheckWritersOptions {
  /** Delete the unmanaged writers, wait until they are gone, then check again. */
  deleteUnmanaged: boolean;
  /** How long to wait for deleted pods to terminate, seconds (default 300). */
  timeoutSeconds?: number;
  /** Seconds between checks while the pods are not watched (no watch, or a failed one), and between
   * attempts to watch them again (default 2). While watched: every 10 s, and at each deletion. */
  intervalSeconds?: number;
  onTick?: (remaining: string[]) => void;
  signal?: AbortSignal;
  logger?: Logger;
  /** The migration id whose quiesced StatefulSets must still hold a Retain policy (checked first,
   * before any pod is deleted); absent: not checked (the call after the final sync). */
  retentionOf?: string;
}

const strip = (w: SourceWriter): UnmanagedPod => ({ name: w.name, pvcs: w.pvcs, ...(w.owner ? { owner: w.owner } : {}) });

/**
 * Lists the writers of `pvcs` in `namespace`; with `deleteUnmanaged`, deletes the unmanaged ones
 * (uid precondition: a same-named replacement is never deleted by mistake), waits until they are
 * gone (the namespace's pods are watched: the final sync need not wait for the next poll), and
 * lists again. Returns what is left and what was deleted.
 * @throws FerryError (config) with `retentionOf`, for a quiesced StatefulSet whose retention policy
 * deletes PVCs again; WaitTimeoutError when deleted pods do not terminate in time; API errors.
 */
export async function checkSourceWriters(client: KubeClient, namespace: string, pvcs: readonly string[], options: CheckWritersOptions): Promise<WriterCheck> {
  const log = options.logger ?? silentLogger;
  const inventory = await readInventory(client, namespace);
  if (options.retentionOf !== undefined) {
    for (const w of inventory.workloads) {
      const problem = revertedRetentionProblem(w, options.retentionOf);
      if (problem) throw new FerryError('config', problem, { details: { workload: `StatefulSet ${namespace}/${w.metadata?.name}` } });
    }
  }
  let writers = sourceWriters(inventory, pvcs);
  const deleted: string[] = [];
  const doomed = options.deleteUnmanaged ? writers.filter((w) => w.unmanaged) : [];
  if (doomed.length > 0) {
    for (const w of doomed) {
      if (await client.delete({ apiVersion: 'v1', kind: 'Pod', namespace, name: w.name }, undefined, w.uid)) deleted.push(w.name);
    }
    log.warn({ namespace, pods: doomed.map((w) => w.name) }, 'deleted pods that mount source PVCs and that Ferry cannot quiesce (plan unmanagedPods: delete)');
    const uids = new Map(doomed.map((w) => [w.name, w.uid]));
    let remaining: string[] = [];
    // Watched, not only polled: the deletion of a doomed pod runs the next check at once.
    const wakeup = new Wakeup();
    const watch =
      typeof (client as Partial<KubeClient>).watch === 'function'
        ? keepWatching<V1Pod>(client, { apiVersion: 'v1', kind: 'Pod' }, namespace, { retryMs: (options.intervalSeconds ?? 2) * 1000, startBoundMs: 2000, onGap: () => wakeup.ring() }, (type, pod) => {
            if (type === 'DELETED' && uids.has(pod.metadata?.name ?? '')) wakeup.ring();
          })
        : undefined;
    try {
      await watch?.started;
      await waitFor(
        async () => {
          const pods = await client.list<V1Pod>({ apiVersion: 'v1', kind: 'Pod' }, namespace);
          remaining = pods
            .filter((p) => uids.has(p.metadata?.name ?? '') && [undefined, p.metadata?.uid].includes(uids.get(p.metadata?.name ?? '')))
            .map((p) => p.metadata?.name ?? '');
          if (remaining.length === 0) return true;
          options.onTick?.(remaining);
          return false;
        },
        {
          timeoutSeconds: options.timeoutSeconds ?? 300,
          intervalSeconds: watch ? 10 : (options.intervalSeconds ?? 2),
          ...(options.signal ? { signal: options.signal } : {}),
          wakeup,
          description: 'the deleted unmanaged pods to terminate',
          explain: () => `still terminating: ${remaining.join(', ')}`,
        },
      );
    } finally {
      watch?.stop();
    }
    writers = sourceWriters(await readInventory(client, namespace), pvcs);
  }
  if (writers.length > 0) log.warn({ namespace, pods: writers.map((w) => w.name) }, 'pods other than Ferry\'s mount source PVCs');
  return { pods: writers.map(strip), deleted };
}
