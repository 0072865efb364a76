/**
 * The message definitions (queries, updates, signals), workflow ids and failure types shared by the
 * workflows, the worker and the client. Workflow-safe.
 *
 * Who handles what:
 * - migrationWorkflow: query `state` (MigrationState), update `rollback` (aborts every namespace),
 *   internal signal `namespaceReport` (from its namespace workflows).
 * - namespaceWorkflow (id: namespaceWorkflowId): query `state` (NamespaceState, per PVC),
 *   update `decide` (retry / skip / abort a failed PVC), update `cutover` (manual cutover).
 *
 * Operator commands are Workflow Updates rather than signals: the caller learns at once whether the
 * command was accepted, and a validator rejects nonsense (unknown PVC, PVC not failed, cutover of an
 * automatic migration) without writing anything to the history.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Decision, MigrationState, NamespaceReport, NamespaceState } from '../core/state';

/** Task queue used when FERRY_TASK_QUEUE is not set. */
export const DEFAULT_TASK_QUEUE = 'ferry';

/** Full state of a migration (namespace level). Every Ferry workflow with state answers `state`. */
export const migrationStateQuery = defineQuery<MigrationState>('state');
/** Full state of one namespace (PVC level). */
export const namespaceStateQuery = defineQuery<NamespaceState>('state');

/** The operator's decision for a failed PVC. */
export const decideUpdate = defineUpdate<DecideResult, [Decision]>('decide');
export interface DecideResult {
  namespace: string;
  pvc: string;
  action: Decision['action'];
}

/** Manual cutover of one namespace: finish the stage pass running, then quiesce and final sync. */
export const cutoverUpdate = defineUpdate<CutoverResult, []>('cutover');
/** The same update (same name) with its optional request, e.g. `{ force: true }`; the workflow
 * handles both forms (no argument = no options). */
export const cutoverWithRequestUpdate = defineUpdate<CutoverResult, [CutoverRequest]>('cutover');
export interface CutoverRequest {
  /** Cut over although the last stage pass of some PVC was partial (its final sync will fail unless
   * the cause was fixed); also releases an automatic cutover held back for that reason. */
  force?: boolean;
}
export interface CutoverResult {
  namespace: string;
  stagePassesDone: number;
  /** Stage passes the plan requires before cutover (cutover waits for them). */
  minimumStagePasses: number;
}

/** Abort the whole migration: every namespace rolls back. */
export const rollbackUpdate = defineUpdate<RollbackResult, [RollbackRequest]>('rollback');
export interface RollbackRequest {
  /** Why (recorded in the summary). */
  reason?: string;
}
export interface RollbackResult {
  /** Namespaces that were still running and now roll back. */
  namespaces: string[];
}

/** Internal: a namespace workflow reports its progress to its migration workflow. */
export const namespaceReportSignal = defineSignal<[NamespaceReport]>('namespaceReport');

/** ApplicationFailure types the workflows themselves throw. */
export const WorkflowFailureType = {
  /** A namespace (or the whole migration) was rolled back; details[0] holds the final state. */
  RolledBack: 'FerryRolledBack',
  /** Some namespace did not succeed; details[0] holds the MigrationSummary. */
  MigrationFailed: 'FerryMigrationFailed',
} as const;

/** Workflow id of the namespace workflow of `sourceNamespace` in the migration `migrationWorkflowId`. */
export function namespaceWorkflowId(migrationWorkflowId: string, sourceNamespace: string): string {
  return `${migrationWorkflowId}/ns/${sourceNamespace}`;
}

/** Workflow id of sync number `pass` of one PVC. */
export function pvcWorkflowId(namespaceWorkflowId: string, pvc: string, pass: number): string {
  return `${namespaceWorkflowId}/pvc/${pvc}/${pass}`;
}
