/**
 * Ferry's workflows (the worker's `workflowsPath`). Only workflow functions are exported here: every
 * export of this module is registered as a workflow type.
 *
 * - migrationWorkflow (./migration.ts): discovery, preflight, one namespaceWorkflow per namespace, images.
 * - namespaceWorkflow (./namespace/): prepare, stage passes, cutover, final sync, cleanup, rollback.
 * - pvcTransferWorkflow (./pvc-transfer.ts): one sync of one PVC.
 *
 * Messages and ids: ./definitions.ts. State and summary shapes: ../core/state.ts. Activity options: ./activity-options.ts.
 */
export { migrationWorkflow } from './migration';
export { namespaceWorkflow } from './namespace';
export { pvcTransferWorkflow } from './pvc-transfer';
