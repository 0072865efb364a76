/**
 * Application hooks in the namespace workflow: the plan's hooks of one phase, in order, each one
 * runHook activity (never retried). A failed hook with `onError: fail` fails the namespace (it rolls
 * back: before the final sync the source applications are restored); with `continue`, and always after
 * the final sync (postCutover: the copy is committed), it is a warning. Every result is kept in
 * st.hooks.
 */
import * as wf from '@temporalio/workflow';
import { FailureType, type HookResult } from '../../core/types';
import { MAX_HOOK_RESULTS } from '../../core/state';
import { hookCluster, hooksOf } from '../../plan/hooks';
import type { HookPhase } from '../../plan/schema';
import { failureMessage } from '../failures';
import { now, type NamespaceRun } from './run';

/** Whether the plan has hooks at `phase` (call runHooks only then: no extra await otherwise). */
export function hasHooks(run: NamespaceRun, phase: HookPhase): boolean {
  return hooksOf(run.plan.hooks, phase).length > 0;
}

/**
 * Runs the hooks of `phase` one after another.
 * @throws ApplicationFailure (FerryConfig, non-retryable) for a failed hook with onError fail before
 *   postCutover; the cancellation of the namespace.
 */
export async function runHooks(run: NamespaceRun, phase: HookPhase): Promise<void> {
  const { st, acts, ctx } = run;
  for (const hook of hooksOf(run.plan.hooks, phase)) {
    let r: HookResult;
    try {
      r = await acts.runHook({ ...ctx, hook: hook.name });
    } catch (err) {
      if (wf.isCancellation(err)) throw err;
      // The activity itself failed (its worker was lost, its time ran out): the hook did not succeed.
      const where = hookCluster(hook);
      r = { name: hook.name, phase, cluster: where, namespace: where === 'source' ? st.source : st.destination, ok: false, message: failureMessage(err), pods: [], seconds: 0 };
    }
    st.hooks = [...(st.hooks ?? []), { ...r, pods: r.pods.slice(0, 5), at: now() }].slice(-MAX_HOOK_RESULTS);
    run.reporter.touch();
    if (r.ok) continue;
    const what = `hook ${hook.name} (${phase}, ${r.cluster} namespace ${r.namespace}) failed: ${r.message ?? 'no reason given'}`;
    if (hook.onError === 'continue' || phase === 'postCutover') {
      st.warnings.push(phase === 'postCutover' && hook.onError === 'fail' ? `${what} (after the final sync: the copy is kept)` : what);
      continue;
    }
    throw wf.ApplicationFailure.create({ type: FailureType.Config, nonRetryable: true, message: `${what}; fix it or set onError: continue, then migrate again` });
  }
}
