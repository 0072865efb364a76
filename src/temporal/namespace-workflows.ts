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
import type { NamespaceWorkflowInput } from '../workflows/namespace';
import type { NamespaceState } from '../core/state';

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
 * answer of its `state` query (bounded by `queryTimeoutMs`), else the state the run started from
 * (its input's `resume`, for a continued run closed before its first workflow task); when none is
 * obtainable, `stateError` says what was tried.
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
  const tried: string[] = [];
  try {
    if (status === 'COMPLETED') return { ...out, lastState: (await run.result()) as NamespaceState, lastStateFrom: 'result' };
    if (status === 'FAILED') {
      const state = await run.result().then(
        () => undefined,
        (err: unknown) => rolledBackState(err),
      );
      if (state) return { ...out, lastState: state, lastStateFrom: 'failure' };
    }
  } catch (err) {
    tried.push(`its result: ${errorText(err)}`);
  }
  const timeoutMs = opts.queryTimeoutMs ?? DEFAULT_STATE_QUERY_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    return { ...out, lastState: await Promise.race([run.query(namespaceStateQuery), timeout]), lastStateFrom: 'query' };
  } catch (err) {
    // E.g. "Workflow execution closed before WorkflowTaskStarted event": a run closed before its
    // first workflow task ran cannot be queried.
    tried.push(`its state query: ${errorText(err)}`);
  } finally {
    clearTimeout(timer);
  }
  try {
    const history = await run.fetchHistory();
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const payload = started?.input?.payloads?.[0];
    const input = payload ? client.options.loadedDataConverter.payloadConverter.fromPayload<NamespaceWorkflowInput>(payload) : undefined;
    if (input?.resume) return { ...out, lastState: input.resume, lastStateFrom: 'run-input' };
    tried.push('its run input: the first run carries no state');
  } catch (err) {
    tried.push(`its run input: ${errorText(err)}`);
  }
  return { ...out, stateError: tried.join('; ') };
}

/** The NamespaceState a namespace workflow's FerryRolledBack failure carries (details[0]). */
function rolledBackState(err: unknown): NamespaceState | undefined {
  const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
  if (cause instanceof ApplicationFailure && cause.type === WorkflowFailureType.RolledBack) return cause.details?.[0] as NamespaceState | undefined;
  return undefined;
}

/** An error's message with its causes' ("Failed to query Workflow: …"). */
function errorText(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let i = 0; i < 5 && e !== undefined; i++, e = e instanceof Error ? e.cause : undefined) parts.push(e instanceof Error ? e.message : String(e));
  return parts.filter((p) => p).join(': ');
}
