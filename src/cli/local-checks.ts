/**
 * Checks `ferry migrate` makes on this machine before it contacts Temporal: the plan's kubeconfig
 * files exist and load, and the contexts it names exist in them. A plan that names a missing context
 * would otherwise be accepted, started, and fail in the worker's preflight (or look like a Temporal
 * problem when no worker runs).
 *
 * The worker resolves kubeconfigs the same way (src/k8s/client.ts loadKubeConfig, kubectl's order:
 * the plan's file, else $KUBECONFIG merged, else ~/.kube/config). When the worker runs on another
 * machine with another kubeconfig (docker-compose.yml mounts $FERRY_KUBECONFIG), skip the check with
 * `--skip-kubeconfig-check`.
 */
import { PlanValidationError } from '../plan/load';
import { type Problem } from '../core/errors';
import type { MigrationPlan } from '../plan/schema';

/**
 * Loads the kubeconfig of each side of `plan` and selects its context, as the worker will.
 * @param origin the plan's origin for the error message (its file, or "command-line flags")
 * @throws PlanValidationError (exit 2) with one issue per side whose kubeconfig is missing or
 *   unreadable, or whose context does not exist (the message lists the available contexts)
 */
export async function checkPlanKubeconfigs(plan: MigrationPlan, origin: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  // Loaded here only: the Kubernetes client is heavy, and other commands do not need it.
  const { loadKubeConfig } = await import('../k8s/client');
  const issues: Problem[] = [];
  for (const side of ['source', 'destination'] as const) {
    const ref = plan[side];
    try {
      loadKubeConfig({ ...(ref.kubeconfig !== undefined ? { kubeconfig: ref.kubeconfig } : {}), ...(ref.context !== undefined ? { context: ref.context } : {}) }, env);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const path = /context/.test(message) && !/does not exist|cannot load/.test(message) ? `${side}.context` : `${side}.kubeconfig`;
      issues.push({ path, message: `${message} (checked on this machine before starting; --skip-kubeconfig-check if the worker has another kubeconfig)` });
    }
  }
  if (issues.length > 0) throw new PlanValidationError(origin, issues);
}
