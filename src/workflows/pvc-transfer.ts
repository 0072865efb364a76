/**
 * pvcTransferWorkflow: one sync of one PVC, as a child of namespaceWorkflow.
 *
 * It only runs the runTransfer activity. Live progress does not pass through workflow code at all:
 * the activity heartbeats TransferProgress (bytes, rate, ETA), Temporal keeps the latest heartbeat
 * details on the pending activity, and the client reads them with describe() on this workflow (the
 * namespace state names the running sync's workflow id). Heartbeats write nothing to the history, so
 * a transfer of days costs the same few events as one of seconds, and the workflows stay deterministic
 * and small. The worker sets a short heartbeat throttle so that the figures are fresh (../worker.ts).
 *
 * A child workflow per sync (rather than the activity in the namespace workflow) gives each sync its
 * own id and history, visible and describable on its own in the UI and the CLI: the namespace
 * workflow only sees the sync start and end, however many attempts the transfer took.
 */
import type { TransferRequest } from '../activities/contract';
import type { TransferResult } from '../core/types';
import { ferryActivities } from './activity-options';
import type { WorkflowTuning } from '../core/state';

export async function pvcTransferWorkflow(req: TransferRequest, tuning?: WorkflowTuning): Promise<TransferResult> {
  return ferryActivities(req.plan, tuning).runTransfer(req);
}
