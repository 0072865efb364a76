/**
 * The namespace workflow (one per namespace of a migration): prepare, stage passes, cutover, final
 * sync, cleanup, rollback. Only the workflow function and its input type are exported (the worker
 * registers every export of src/workflows/index.ts as a workflow type).
 *
 * - workflow.ts: namespaceWorkflow, its phases in order
 * - run.ts: NamespaceRun, the state of one run (input, NamespaceState, activity proxies, decisions)
 * - handlers.ts: the state query and the operator's decide and cutover updates
 * - syncs.ts: one sync of one PVC, sync until settled, sync of every PVC, stage passes
 * - writers.ts: quiesce targets and the failures of the source-writer checks (patch q-writers)
 * - rollback.ts: the rollback
 * - reporter.ts: ParentReporter (reports to the migration workflow); slots.ts: Slots (sync concurrency)
 */
export { namespaceWorkflow } from './workflow';
export type { NamespaceWorkflowInput } from './run';
