/**
 * Which plan hooks run where and when (the plan's `hooks`; migration/hooks.ts runs them, the namespace
 * workflow calls them at their phase). Pure.
 */
import type { HookPhase, HookSpec } from './schema';

/** The cluster a hook runs in: its own `cluster`, else destination for postCutover and source otherwise. */
export function hookCluster(hook: Pick<HookSpec, 'cluster' | 'phase'>): 'source' | 'destination' {
  return hook.cluster ?? (hook.phase === 'postCutover' ? 'destination' : 'source');
}

/** The hooks of `phase`, in plan order (none for a plan of an older Ferry without `hooks`). */
export function hooksOf(hooks: readonly HookSpec[] | undefined, phase: HookPhase): HookSpec[] {
  return (hooks ?? []).filter((h) => h.phase === phase);
}
