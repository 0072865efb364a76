/**
 * Telling a worker's shutdown from a real cancellation inside an activity (no Kubernetes import, so
 * that simulated activities in tests use it too).
 */
import type { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';

/**
 * Whether the running activity was cancelled because its worker is shutting down (SIGTERM/SIGINT of
 * `ferry worker`, after shutdownGraceTime), not because the workflow cancelled it. The Temporal TS SDK
 * (1.24, @temporalio/worker lib/worker.js) cancels running activities at shutdown with reason
 * 'WORKER_SHUTDOWN' (the CancelledFailure's message) and cancellationDetails.workerShutdown. The
 * attempt then fails and is retried by the next worker, which must find the transfer's client pod.
 * @param ctx the activity's context (undefined outside an activity: false)
 */
export function isWorkerShutdown(ctx: Context | undefined): boolean {
  if (!ctx?.cancellationSignal.aborted) return false;
  if (ctx.cancellationDetails?.workerShutdown) return true;
  const reason: unknown = ctx.cancellationSignal.reason;
  return reason instanceof CancelledFailure && reason.message === 'WORKER_SHUTDOWN';
}
