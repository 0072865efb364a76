/**
 * Timeouts and retry policies of every activity, in one table, and the typed activity stubs the
 * workflows call. Workflow-safe.
 *
 * Rules behind the numbers:
 * - Failure types in NON_RETRYABLE_FAILURES (preflight, auth, no space, config, partial, fatal) are
 *   never retried: retrying "No space left on device" 20 times (MTC) only delays the bad news.
 * - Every activity that heartbeats has a heartbeat timeout (createEndpoint, createServer,
 *   probeConnectivity, runTransfer, waitForQuiesced, cleanup, copyImages,
 *   describeNamespaceWorkflows): a short heartbeat timeout detects a dead worker within a minute,
 *   however long the activity may legitimately run (the activities heartbeat at least every 10 s
 *   while they run, skopeo copies included: activities/index.ts keepAlive).
 *   test/unit/activity-options.test.ts pins this.
 * - Every activity has a start-to-close timeout, and every wait inside an activity has its own,
 *   shorter bound that ends it with an explanation (migration/follow.ts podTrouble for pods that cannot
 *   start or keep crashing, plan timeouts.podStartSeconds; waitForQuiesced: the start-to-close
 *   timeout less a margin).
 * - Every activity that changes a cluster is cancelled with WAIT_CANCELLATION_COMPLETED: a rollback
 *   starts only once the activities it undoes have stopped (no client pod created after cleanup).
 * - Restoring the source (unquiesce) gets the most attempts: leaving applications scaled down is
 *   the failure users fear most.
 */
import { ActivityCancellationType, proxyActivities, type ActivityFunctionWithOptions, type ActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import { type FerryActivities } from '../activities/contract';
import { DEFAULT_VERIFY_DESTINATION_SECONDS, NON_RETRYABLE_FAILURES } from '../core/types';
import type { MigrationPlan } from '../plan/schema';
import type { WorkflowTuning } from '../core/state';
import { activitySummary } from './summaries';

/** Default heartbeat timeout of heartbeating activities, in seconds. */
export const DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 60;
/** Start-to-close limit of one sync when the plan sets none (heartbeats catch hangs): 30 days. */
export const DEFAULT_TRANSFER_SECONDS = 30 * 86400;

/** The options of every activity for this plan. */
export function activityOptions(plan: MigrationPlan, tuning: WorkflowTuning = {}): Record<keyof FerryActivities, ActivityOptions> {
  const heartbeatTimeout = (tuning.heartbeatTimeoutSeconds ?? DEFAULT_HEARTBEAT_TIMEOUT_SECONDS) * 1000;
  const scale = tuning.retryIntervalScale ?? 1;
  /** initial and maximum interval in seconds, exponential backoff. */
  const retry = (initialSeconds: number, maximumSeconds: number, maximumAttempts: number): RetryPolicy => ({
    initialInterval: Math.max(1, Math.round(initialSeconds * 1000 * scale)),
    backoffCoefficient: 2,
    maximumInterval: Math.max(1, Math.round(maximumSeconds * 1000 * scale)),
    maximumAttempts,
    nonRetryableErrorTypes: [...NON_RETRYABLE_FAILURES],
  });
  const s = (seconds: number) => seconds * 1000;
  const waitCancel = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;
  return {
    // Read-only checks: short, a few quick retries.
    discoverNamespace: { startToCloseTimeout: s(120), retry: retry(1, 30, 5) },
    preflight: { startToCloseTimeout: s(300), retry: retry(1, 30, 5) },
    // Object creation: quick API calls, idempotent.
    prepareDestination: { startToCloseTimeout: s(300), retry: retry(2, 60, 10), cancellationType: waitCancel },
    // Waits for the cluster (load balancer address, Route admission, server pod ready).
    createEndpoint: {
      startToCloseTimeout: s(plan.timeouts.endpointReadySeconds + 120),
      heartbeatTimeout,
      retry: retry(5, 120, 5),
      cancellationType: waitCancel,
    },
    createServer: {
      startToCloseTimeout: s(plan.timeouts.serverReadySeconds + 120),
      heartbeatTimeout,
      retry: retry(5, 120, 5),
      cancellationType: waitCancel,
    },
    // A probe pod in the source cluster: pod start plus a TLS handshake.
    probeConnectivity: { startToCloseTimeout: s(600), heartbeatTimeout, retry: retry(5, 60, 5), cancellationType: waitCancel },
    // One sync of one PVC.
    runTransfer: {
      startToCloseTimeout: s(plan.timeouts.transferSeconds ?? DEFAULT_TRANSFER_SECONDS),
      heartbeatTimeout,
      retry: retry(10, 300, 5),
      cancellationType: waitCancel,
    },
    // A VolumeGroupSnapshot per stage pass (plan groupSnapshot): creation and its wait, idempotent.
    prepareGroupSnapshot: { startToCloseTimeout: s(plan.timeouts.podStartSeconds + 300), retry: retry(5, 60, 5), cancellationType: waitCancel },
    // holds the application (background hooks): never retried, as hooks are not
    prepareHeldGroupSnapshot: {
      startToCloseTimeout: s(plan.timeouts.podStartSeconds + 300 + Math.max(0, ...(plan.hooks ?? []).filter((h) => h.background).map((h) => h.timeoutSeconds)) * 2),
      heartbeatTimeout,
      retry: retry(1, 1, 1),
      cancellationType: waitCancel,
    },
    releaseGroupSnapshot: { startToCloseTimeout: s(600), retry: retry(5, 60, 10), cancellationType: waitCancel },
    // A user's command: never retried (it may not be idempotent); onError decides. Heartbeats while it
    // runs; the limit covers its timeout in a few dozen pods.
    runHook: { startToCloseTimeout: s(Math.max(300, ...(plan.hooks ?? []).map((h) => h.timeoutSeconds)) * 20 + 120), heartbeatTimeout, retry: retry(1, 1, 1), cancellationType: waitCancel },
    quiesce: { startToCloseTimeout: s(120), retry: retry(1, 30, 10), cancellationType: waitCancel },
    waitForQuiesced: { startToCloseTimeout: s(900), heartbeatTimeout, retry: retry(5, 60, 3), cancellationType: waitCancel },
    // Lists the pods mounting source PVCs; with unmanagedPods: delete also deletes and waits for them.
    checkSourceWriters: { startToCloseTimeout: s(600), heartbeatTimeout, retry: retry(2, 30, 5), cancellationType: waitCancel },
    // a list and a delete per agent (no wait): retried
    releaseAgents: { startToCloseTimeout: s(120), retry: retry(3, 30, 5), cancellationType: waitCancel },
    // idempotent (every step checks the state first): retried
    rebindPVCs: { startToCloseTimeout: s(1800), heartbeatTimeout, retry: retry(5, 60, 5), cancellationType: waitCancel },
    // read-only: retried; its own limit is the plan's, the activity's a little longer
    checkDestination: { startToCloseTimeout: s((plan.timeouts?.verifyDestinationSeconds ?? DEFAULT_VERIFY_DESTINATION_SECONDS) + 120), heartbeatTimeout, retry: retry(3, 30, 5), cancellationType: waitCancel },
    unquiesce: { startToCloseTimeout: s(120), retry: retry(1, 60, 20), cancellationType: waitCancel },
    cleanup: { startToCloseTimeout: s(600), heartbeatTimeout, retry: retry(2, 60, 10), cancellationType: waitCancel },
    deleteDestinationPVCs: { startToCloseTimeout: s(300), retry: retry(2, 60, 10), cancellationType: waitCancel },
    // Direct Image Migration of a namespace (7 attempts, as MTC).
    copyImages: { startToCloseTimeout: s(6 * 3600), heartbeatTimeout, retry: retry(10, 300, 7), cancellationType: waitCancel },
    // A few Temporal calls per namespace workflow (describe, result or state query bounded by 10 s);
    // read-only. A failure only postpones the migration's check to its next round.
    describeNamespaceWorkflows: { startToCloseTimeout: s(300), heartbeatTimeout, retry: retry(1, 30, 3) },
  };
}

/**
 * Activity stubs with the options of `activityOptions`. Call from workflow code only. Each call carries
 * a summary for the Temporal UI (which PVC or namespace, which cluster: ./summaries.ts activitySummary),
 * made from its argument; a summary is user metadata, not part of the command the replay compares.
 */
export function ferryActivities(plan: MigrationPlan, tuning?: WorkflowTuning): FerryActivities {
  const table = activityOptions(plan, tuning);
  const stubs: Partial<Record<keyof FerryActivities, unknown>> = {};
  for (const name of Object.keys(table) as (keyof FerryActivities)[]) {
    const stub = proxyActivities<FerryActivities>(table[name])[name] as ActivityFunctionWithOptions<(...args: unknown[]) => Promise<unknown>>;
    stubs[name] = (...args: unknown[]) => stub.executeWithOptions({ summary: activitySummary(name, args[0]) }, args);
  }
  return stubs as FerryActivities;
}
