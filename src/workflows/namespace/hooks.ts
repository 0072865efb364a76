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
import type { HookPhase, HookSpec } from '../../plan/schema';
import { failureMessage } from '../failures';
import { now, type NamespaceRun } from './run';

/** The hooks of `phase` that run on their own (background hooks run inside the group snapshot). */
function ownHooks(run: NamespaceRun, phase: HookPhase): HookSpec[] {
  return hooksOf(run.plan.hooks, phase).filter((h) => !h.background);
}

/** Whether the plan has hooks at `phase` (call runHooks only then: no extra await otherwise). */
export function hasHooks(run: NamespaceRun, phase: HookPhase): boolean {
  return ownHooks(run, phase).length > 0;
}

/** The plan's background hooks (held over each stage pass's group snapshot). */
export function backgroundHooks(run: NamespaceRun): HookSpec[] {
  return hooksOf(run.plan.hooks, 'preStage').filter((h) => h.background === true);
}

/**
 * Runs the hooks of `phase` one after another (background hooks excepted).
 * @throws ApplicationFailure (FerryConfig, non-retryable) for a failed hook with onError fail before
 *   postCutover; the cancellation of the namespace.
 */
export async function runHooks(run: NamespaceRun, phase: HookPhase): Promise<void> {
  const { acts, ctx } = run;
  for (const hook of ownHooks(run, phase)) {
    let r: HookResult;
    try {
      r = await acts.runHook({ ...ctx, hook: hook.name });
    } catch (err) {
      if (wf.isCancellation(err)) throw err;
      // The activity itself failed (its worker was lost, its time ran out): the hook did not succeed.
      r = activityFailed(run, hook, err);
    }
    recordHookResult(run, hook, r);
  }
}

/** The result of a hook whose activity itself failed (its worker was lost, its time ran out). */
export function activityFailed(run: NamespaceRun, hook: HookSpec, err: unknown): HookResult {
  const where = hookCluster(hook);
  return { name: hook.name, phase: hook.phase, cluster: where, namespace: where === 'source' ? run.st.source : run.st.destination, ok: false, message: failureMessage(err), pods: [], seconds: 0 };
}

/**
 * Keeps a hook's result in st.hooks and applies its onError.
 * @throws ApplicationFailure (FerryConfig, non-retryable) for a failed hook with onError fail before postCutover.
 */
export function recordHookResult(run: NamespaceRun, hook: HookSpec, r: HookResult): void {
  const { st } = run;
  const phase = hook.phase;
  st.hooks = [...(st.hooks ?? []), { ...r, pods: r.pods.slice(0, 5), at: now() }].slice(-MAX_HOOK_RESULTS);
  run.reporter.touch();
  if (r.ok) return;
  const what = `hook ${hook.name} (${phase}, ${r.cluster} namespace ${r.namespace}) failed: ${r.message ?? 'no reason given'}`;
  if (hook.onError === 'continue' || phase === 'postCutover') {
    st.warnings.push(phase === 'postCutover' && hook.onError === 'fail' ? `${what} (after the final sync: the copy is kept)` : what);
    return;
  }
  throw wf.ApplicationFailure.create({ type: FailureType.Config, nonRetryable: true, message: `${what}; fix it or set onError: continue, then migrate again` });
}
