/**
 * Source writers around quiesce (patch `q-writers`): the workloads quiesce stops (discovery's plus those
 * found again right before quiesce) and the failures that stop a namespace when pods other than
 * Ferry's mount its source PVCs or when PVCs appeared that the migration did not discover.
 */
import * as wf from '@temporalio/workflow';
import { FailureType, type UnmanagedPod, type WorkloadRef } from '../../core/types';
import type { NamespaceRun } from './run';

/** "pod a (mounts x; controlled by K n)", for messages. */
function describePods(pods: readonly UnmanagedPod[]): string {
  return pods.map((p) => `pod ${p.name} (mounts ${p.pvcs.join(', ')}${p.owner ? `; controlled by ${p.owner}` : '; no controller'})`).join(', ');
}

/** `a` plus the workloads of `b` it lacks, in order. */
export function mergeWorkloads(a: readonly WorkloadRef[], b: readonly WorkloadRef[]): WorkloadRef[] {
  const key = (w: WorkloadRef) => `${w.kind}/${w.namespace}/${w.name}`;
  const have = new Set(a.map(key));
  return [...a, ...b.filter((w) => !have.has(key(w)))];
}

/** The failure that stops the namespace when pods other than Ferry's mount source PVCs (`when`: the moment they were seen). */
export function writersFailure(run: NamespaceRun, when: string, pods: UnmanagedPod[]): wf.ApplicationFailure {
  const { namespace, plan } = run;
  return wf.ApplicationFailure.create({
    type: FailureType.Preflight,
    nonRetryable: true,
    message:
      `${when}, ${pods.length} pod${pods.length === 1 ? '' : 's'} other than Ferry's mount${pods.length === 1 ? 's' : ''} source PVCs of ${namespace.source} and could write: ${describePods(pods)}. ` +
      `Stop them (or their controller)${plan.unmanagedPods === 'delete' ? '' : ', or set unmanagedPods: delete for pods Ferry cannot quiesce'}, then migrate again`,
  });
}

/** The failure that stops the namespace before quiesce when the selection now matches PVCs the migration did not discover. */
export function newPVCsFailure(run: NamespaceRun, added: string[]): wf.ApplicationFailure {
  const { namespace } = run;
  return wf.ApplicationFailure.create({
    type: FailureType.Preflight,
    nonRetryable: true,
    message:
      `before quiesce, ${added.length} PVC${added.length === 1 ? '' : 's'} of ${namespace.source} that the selection matches appeared since the migration discovered its PVCs: ${added.join(', ')}. ` +
      'They are not migrated, and the final sync would leave them behind; nothing was quiesced, the source applications still run. ' +
      `Migrate them too (a new migration whose plan selects them, once this one is rolled back), or narrow this namespace's selection (pvcs.names or a labelSelector) so that it excludes them, then migrate again`,
  });
}
