/**
 * How many final syncs a namespace workflow runs at once (a workflow decision from the plan).
 */
import { DEFAULT_MAX_AGENTS } from '../activities/contract';

/** Final syncs run at once with warm agents when the plan sets no finalConcurrency (≤ the schema's MAX_CONCURRENCY). */
export const DEFAULT_FINAL_CONCURRENCY = 20;


/**
 * PVCs synced at once in the final sync: the plan's `finalConcurrency`; else, with warm agents (each
 * final sync is a delta started by an exec), as many as the namespace may have agents (at most
 * DEFAULT_FINAL_CONCURRENCY), at least `concurrency`; with per-sync pods, `concurrency`.
 */
export function finalSyncConcurrency(plan: { concurrency: number; finalConcurrency?: number | undefined; agents?: string | undefined; maxAgents?: number | undefined }): number {
  if (plan.finalConcurrency !== undefined) return plan.finalConcurrency;
  // Beyond the PVCs with an agent, a final sync is a client pod: no more at once than the plan allows.
  return plan.agents === 'per-sync' ? plan.concurrency : Math.max(plan.concurrency, Math.min(DEFAULT_FINAL_CONCURRENCY, plan.maxAgents ?? DEFAULT_MAX_AGENTS));
}
