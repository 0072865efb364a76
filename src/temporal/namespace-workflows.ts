/**
 * How a migration's namespace workflows stand, read from Temporal with a Client: the adapter behind the
 * describeNamespaceWorkflows activity (../activities/index.ts). A continued migration run learns each
 * namespace's end only from the namespace workflow's final report; a namespace workflow that was
 * terminated or timed out never sends one, and this is how the migration finds out (issue 8 item 9).
 */
import { WorkflowFailedError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import type { NamespaceWorkflowStatus } from '../activities/contract';
import { namespaceStateQuery, WorkflowFailureType } from '../workflows/definitions';
import type { NamespaceState } from '../workflows/state';

/** Options of describeNamespaceWorkflow. */
export interface DescribeOptions {
  /** Bound of the `state` query of a closed workflow (Temporal replays its history on a worker), ms.
   * Default 10,000. */
  queryTimeoutMs?: number;
}

/** Default bound of the `state` query of a closed workflow, ms. */
export const DEFAULT_STATE_QUERY_TIMEOUT_MS = 10_000;

/**
 * Describes the latest run of `workflowId` (Temporal's describe without a run id returns the latest
 * run, so a namespace workflow that continued as new is followed to its current run; a latest run
 * still marked CONTINUED_AS_NEW is described once more). For a closed run, also reads its last state:
 * the result (COMPLETED), the NamespaceState a FerryRolledBack failure carries (FAILED), else the
 * answer of its `state` query, bounded by `queryTimeoutMs`; when none is obtainable, `stateError` says why.
 * @throws the Client's errors other than "not found" (Temporal unreachable: the activity retries).
 */
export async function describeNamespaceWorkflow(client: Client, workflowId: string, opts: DescribeOptions = {}): Promise<NamespaceWorkflowStatus> {
  const handle = client.workflow.getHandle(workflowId);
  let d: WorkflowExecutionDescription | undefined;
  for (let i = 0; i < 3; i++) {
    try {
      d = await handle.describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { workflowId, status: 'NOT_FOUND' };
      throw err;
    }
    if (d.status.name !== 'CONTINUED_AS_NEW') break;
  }
  const name = d!.status.name;
  const status: NamespaceWorkflowStatus['status'] =
    name === 'CONTINUED_AS_NEW' || name === 'PAUSED'
      ? 'RUNNING'
      : name === 'RUNNING' || name === 'COMPLETED' || name === 'FAILED' || name === 'CANCELLED' || name === 'TERMINATED' || name === 'TIMED_OUT'
        ? name
        : 'OTHER';
  const out: NamespaceWorkflowStatus = { workflowId, status, runId: d!.runId };
  if (status === 'RUNNING' || status === 'OTHER') return out;
  if (d!.closeTime) out.closedAt = d!.closeTime.toISOString();
  const run = client.workflow.getHandle(workflowId, d!.runId);
  try {
    if (status === 'COMPLETED') {
      out.lastState = (await run.result()) as NamespaceState;
      return out;
    }
    if (status === 'FAILED') {
      const state = await run.result().then(
        () => undefined,
        (err: unknown) => rolledBackState(err),
      );
      if (state) {
        out.lastState = state;
        return out;
      }
    }
    const timeoutMs = opts.queryTimeoutMs ?? DEFAULT_STATE_QUERY_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`its state query did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      out.lastState = await Promise.race([run.query(namespaceStateQuery), timeout]);
    } finally {
      clearTimeout(timer);
    }
  } catch (err) {
    out.stateError = err instanceof Error ? err.message : String(err);
  }
  return out;
}

/** The NamespaceState a namespace workflow's FerryRolledBack failure carries (details[0]). */
function rolledBackState(err: unknown): NamespaceState | undefined {
  const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
  if (cause instanceof ApplicationFailure && cause.type === WorkflowFailureType.RolledBack) return cause.details?.[0] as NamespaceState | undefined;
  return undefined;
}
