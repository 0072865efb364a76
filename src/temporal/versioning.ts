/**
 * Worker Versioning of Ferry's workers (Temporal worker deployments): every worker belongs to the
 * deployment "ferry" with a build id derived from the Ferry version and the code it runs, and its
 * workflows are PINNED to the build that started them. A running migration therefore keeps running
 * on the workers of its build (workflow tasks, activities and its child workflows), while new
 * migrations start on the deployment's current version. `wf.patched()` remains for changes made
 * within one build line (a workflow that must move to a new build).
 *
 * A new build becomes current when a worker of it sets it current (policy FERRY_SET_CURRENT, see
 * setCurrentPolicyFromEnv) or when the operator does (`temporal worker deployment
 * set-current-version --deployment-name ferry --build-id <id>`). Until then its workers only serve
 * the workflows pinned to it (none).
 *
 * Server side: Temporal ≥ 1.28 with system.enableDeploymentVersions and
 * frontend.workerVersioningWorkflowAPIs (on by default in 1.29.1; hack/temporal/dynamicconfig.yaml
 * states them); the temporal CLI's dev server 1.5.1 has them on.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowService } from '@temporalio/client';

/** The deployment of Ferry's workers on the default task queue "ferry" (override: FERRY_DEPLOYMENT_NAME). */
export const DEFAULT_DEPLOYMENT_NAME = 'ferry';

/**
 * The default deployment of the workers of a task queue: "ferry" for the default queue "ferry",
 * else "ferry-<task queue>" (characters other than letters, digits, '_' and '-' become '-'). A
 * deployment's current version applies to every task queue its workers poll: two Ferry
 * installations sharing a Temporal namespace on different task queues must not share one, or a build
 * of the one made current would take the new migrations of the other's queue, where it has no worker.
 */
export function deploymentNameFor(taskQueue: string): string {
  return taskQueue === DEFAULT_DEPLOYMENT_NAME ? DEFAULT_DEPLOYMENT_NAME : `ferry-${taskQueue.replace(/[^A-Za-z0-9_-]/g, '-')}`.slice(0, 100);
}

/**
 * When a worker sets its own build current:
 * - `always`: once it polls (a rollout: each new build takes the new migrations at once);
 * - `if-none`: only when the deployment has no current version yet (first start of a fresh
 *   Temporal); a later build waits for the operator's `set-current-version`;
 * - `never`: the operator (or a deploy pipeline) does it.
 */
export type SetCurrentPolicy = 'always' | 'if-none' | 'never';
const POLICIES: readonly SetCurrentPolicy[] = ['always', 'if-none', 'never'];

/** The versioning identity of one worker. */
export interface FerryDeployment {
  /** Worker deployment name (no '.'), default "ferry". */
  deploymentName: string;
  /** Build id: `<ferry version>-<16 hex of the code>` or $FERRY_BUILD_ID. */
  buildId: string;
  setCurrent: SetCurrentPolicy;
}

/** Ferry's version from package.json ("0.0.0" when it cannot be read). */
export function ferryVersion(): string {
  try {
    // src/temporal or dist/temporal: package.json is two levels up (the image copies it to /app).
    return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Build ids Temporal accepts and that read well in `temporal worker deployment` output. */
const BUILD_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$/;
const DEPLOYMENT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

/**
 * The worker's deployment from the environment, or undefined when FERRY_WORKER_VERSIONING is "off"
 * (an unversioned worker: it takes the tasks of unversioned workflows only).
 *   FERRY_BUILD_ID          the build id (default `<ferry version>-<codeKey>`)
 *   FERRY_DEPLOYMENT_NAME   the deployment (default deploymentNameFor(taskQueue): "ferry" on the
 *                           default task queue)
 *   FERRY_SET_CURRENT       always | if-none | never (default: `always` on the embedded dev server,
 *                           where one machine runs one build; `if-none` on an external Temporal)
 * @param codeKey a hash of the code the worker runs (worker.ts workflowBundleKey)
 * @throws Error naming the variable when one is invalid
 */
export function deploymentFromEnv(env: NodeJS.ProcessEnv, codeKey: string, opts: { embedded: boolean; taskQueue: string }): FerryDeployment | undefined {
  const mode = (env.FERRY_WORKER_VERSIONING ?? 'on').toLowerCase();
  if (mode === 'off' || mode === 'false' || mode === '0') return undefined;
  if (!['on', 'true', '1'].includes(mode)) throw new Error(`FERRY_WORKER_VERSIONING=${env.FERRY_WORKER_VERSIONING}: use on or off`);
  const buildId = env.FERRY_BUILD_ID || `${ferryVersion()}-${codeKey}`;
  if (!BUILD_ID_PATTERN.test(buildId)) throw new Error(`FERRY_BUILD_ID=${JSON.stringify(buildId)}: use 1-200 letters, digits, '.', '_', '+' or '-'`);
  const deploymentName = env.FERRY_DEPLOYMENT_NAME || deploymentNameFor(opts.taskQueue);
  if (!DEPLOYMENT_NAME_PATTERN.test(deploymentName)) throw new Error(`FERRY_DEPLOYMENT_NAME=${JSON.stringify(deploymentName)}: use 1-100 letters, digits, '_' or '-' (no '.')`);
  return { deploymentName, buildId, setCurrent: setCurrentPolicyFromEnv(env, opts.embedded) };
}

/** FERRY_SET_CURRENT, else the default of the server kind. @throws Error for an unknown value */
export function setCurrentPolicyFromEnv(env: NodeJS.ProcessEnv, embedded: boolean): SetCurrentPolicy {
  const v = env.FERRY_SET_CURRENT;
  if (!v) return embedded ? 'always' : 'if-none';
  if (!(POLICIES as readonly string[]).includes(v)) throw new Error(`FERRY_SET_CURRENT=${v}: use ${POLICIES.join(', ')}`);
  return v as SetCurrentPolicy;
}

/** The worker options of a deployment: versioned, workflows PINNED by default. */
export function workerDeploymentOptions(d: FerryDeployment): {
  version: { deploymentName: string; buildId: string };
  useWorkerVersioning: true;
  defaultVersioningBehavior: 'PINNED';
} {
  return { version: { deploymentName: d.deploymentName, buildId: d.buildId }, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' };
}

/** What Temporal knows of a deployment. */
export interface DeploymentView {
  /** Build id of the current version (undefined: unversioned workers take new workflows). */
  current?: string;
  /** Build ids of the versions the server has seen pollers of. */
  versions: string[];
  conflictToken?: Uint8Array;
}

const GRPC_NOT_FOUND = 5;

/** Describes a worker deployment; undefined when the server has none of that name yet. */
export async function describeDeployment(service: WorkflowService, namespace: string, deploymentName: string): Promise<DeploymentView | undefined> {
  try {
    const r = await service.describeWorkerDeployment({ namespace, deploymentName });
    const info = r.workerDeploymentInfo;
    const current = info?.routingConfig?.currentDeploymentVersion?.buildId || undefined;
    return {
      ...(current ? { current } : {}),
      versions: (info?.versionSummaries ?? []).map((s) => s.deploymentVersion?.buildId ?? '').filter(Boolean),
      ...(r.conflictToken?.length ? { conflictToken: r.conflictToken } : {}),
    };
  } catch (e) {
    if ((e as { code?: number }).code === GRPC_NOT_FOUND) return undefined;
    throw e;
  }
}

/** How often ensureCurrent re-reads the deployment while the server has not seen the build (ms). */
export const ENSURE_CURRENT_INTERVAL_MS = 250;

/** Outcome of ensureCurrent. */
export type SetCurrentOutcome =
  | { action: 'set'; previous?: string }
  | { action: 'already-current' }
  | { action: 'kept'; current: string }
  | { action: 'skipped' };

/**
 * Applies the worker's set-current policy once the server has seen its pollers (a version the server
 * has no poller of cannot become current). Retries every `intervalMs` (default 0.25 s) until `timeoutMs`
 * (default 60 s): pollers register a moment after the worker starts (0.5–2 s on the lab's dev
 * server), and a migration started on a freshly started worker waits until its build is current, so
 * the check is frequent; a describe is one cheap read. Concurrent workers of one build race (the
 * conflict token makes the loser re-read, then find its build current).
 * @throws the last error when the version could not be set in time
 */
export async function ensureCurrent(
  service: WorkflowService,
  namespace: string,
  d: FerryDeployment,
  opts: { timeoutMs?: number; intervalMs?: number; identity?: string; signal?: AbortSignal } = {},
): Promise<SetCurrentOutcome> {
  if (d.setCurrent === 'never') return { action: 'skipped' };
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastError: unknown;
  for (;;) {
    try {
      const view = await describeDeployment(service, namespace, d.deploymentName);
      if (view?.current === d.buildId) return { action: 'already-current' };
      if (view?.current && d.setCurrent === 'if-none') return { action: 'kept', current: view.current };
      if (view?.versions.includes(d.buildId)) {
        await service.setWorkerDeploymentCurrentVersion({
          namespace,
          deploymentName: d.deploymentName,
          buildId: d.buildId,
          ...(view.conflictToken ? { conflictToken: view.conflictToken } : {}),
          ...(opts.identity ? { identity: opts.identity } : {}),
        });
        return { action: 'set', ...(view.current ? { previous: view.current } : {}) };
      }
      lastError = new Error(`the server has seen no poller of build ${d.buildId} yet`);
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline || opts.signal?.aborted) throw lastError;
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? ENSURE_CURRENT_INTERVAL_MS));
  }
}

/** The command an operator runs to make `buildId` current (printed in logs). */
export function setCurrentCommand(d: Pick<FerryDeployment, 'deploymentName' | 'buildId'>): string {
  return `temporal worker deployment set-current-version --deployment-name ${d.deploymentName} --build-id ${d.buildId}`;
}

/**
 * Running workflows of `taskQueue` pinned to other builds of the deployment, counted by build id
 * (from the TemporalWorkerDeploymentVersion search attribute, "<deployment>:<build id>"; at most
 * `limit` workflows are read). They run only on workers of their build: when none is left, they wait.
 */
export async function pinnedToOtherBuilds(service: WorkflowService, namespace: string, d: FerryDeployment, taskQueue: string, limit = 1000): Promise<Record<string, number>> {
  const query = `ExecutionStatus = "Running" AND TaskQueue = "${taskQueue}" AND TemporalWorkerDeploymentVersion STARTS_WITH "${d.deploymentName}:"`;
  const counts: Record<string, number> = {};
  let seen = 0;
  let nextPageToken: Uint8Array | undefined;
  do {
    const res = await service.listWorkflowExecutions({ namespace, query, pageSize: Math.min(limit, 1000), ...(nextPageToken ? { nextPageToken } : {}) });
    for (const w of res.executions ?? []) {
      const payload = w.searchAttributes?.indexedFields?.TemporalWorkerDeploymentVersion;
      const version = payload?.data ? (JSON.parse(Buffer.from(payload.data).toString('utf8')) as unknown) : undefined;
      const build = typeof version === 'string' ? version.slice(d.deploymentName.length + 1) : undefined;
      if (build && build !== d.buildId) counts[build] = (counts[build] ?? 0) + 1;
    }
    seen += res.executions?.length ?? 0;
    nextPageToken = res.nextPageToken?.length ? res.nextPageToken : undefined;
  } while (nextPageToken && seen < limit);
  return counts;
}
