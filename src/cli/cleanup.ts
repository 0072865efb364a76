/**
 * `ferry cleanup`: the cleanup path that does not depend on the migration's workflow — for a
 * migration terminated (by an operator or by Temporal's history limit) or timed out, whose workflow
 * can no longer roll back or clean up.
 *
 * - `ferry cleanup ID`: checks in Temporal that neither the migration workflow nor any of its
 *   namespace workflows runs (refuses otherwise: a running migration cleans up after itself, and
 *   `ferry cancel` rolls it back), then restores the source workloads it left quiesced and deletes
 *   every transfer object labelled with it in both clusters (../migration/leftovers.ts). The plan comes from
 *   `-f` or from the workflow's stored input; keepSourceQuiesced always from the stored input.
 *   Per namespace, its namespace workflow's last state decides (`namespaceVerdict`): one that did not
 *   cut over is treated as its rollback would have (source restored, this migration's cutover marks
 *   removed); one that cut over keeps its marks, and its source stays down under keepSourceQuiesced.
 * - `ferry cleanup --sweep -f plan`: finds every Ferry transfer object in the plan's two clusters,
 *   maps each migration label to a migration known to Temporal, and cleans up those no longer
 *   running; objects of running migrations, or of migrations this Temporal does not know, are listed
 *   and left alone.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { LeftoverCleanupReport, MigrationClusters, RestoreOutcome } from '../migration/leftovers';
import type { MigrationPlan } from '../plan/schema';
import { migrationKey } from '../statetransfer/names';
import type { NamespaceWorkflowStatus } from '../activities/contract';
import { describeNamespaceWorkflow } from '../temporal/namespace-workflows';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { namespaceWorkflowId } from '../workflows/definitions';
import type { MigrationWorkflowInput } from '../workflows/migration';
import { CliError, EXIT } from './exit-codes';
import { cliErrorOf, type TemporalSession } from './operations';

/** Builds the clusters of a plan. */
export type ClustersFor = (plan: MigrationPlan) => MigrationClusters;

/** What `ferry cleanup ID` did. */
export interface CleanupOutcome {
  id: string;
  /** Temporal's status of the migration workflow (COMPLETED, FAILED, TERMINATED, ...). */
  workflowStatus: string;
  /** Where the plan came from. */
  planFrom: 'file' | 'workflow';
  restore: RestoreOutcome;
  /** Undefined with --dry-run. */
  cleanup?: LeftoverCleanupReport;
}

/** Status of a workflow id's latest run and its FerryNamespaces, or undefined when Temporal does not know it. */
async function describeRun(session: TemporalSession, workflowId: string): Promise<{ status: string; namespaces: string[] } | undefined> {
  try {
    const d = await session.client.workflow.getHandle(workflowId).describe();
    return { status: d.status.name, namespaces: d.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryNamespaces) ?? [] };
  } catch (e) {
    const mapped = cliErrorOf(e, workflowId);
    if (e instanceof WorkflowNotFoundError || (mapped instanceof CliError && mapped.exitCode === EXIT.NOT_FOUND)) return undefined;
    throw mapped;
  }
}

/** The plan in the input of the latest run of the migration workflow `id`. */
export async function storedPlan(session: TemporalSession, id: string): Promise<MigrationPlan> {
  const history = await session.client.workflow.getHandle(id).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new CliError(`migration ${id}: its workflow history holds no input; pass the plan with -f`, EXIT.INVALID_INPUT);
  return session.client.options.loadedDataConverter.payloadConverter.fromPayload<MigrationWorkflowInput>(payload).plan;
}

/** Source namespaces of the migrations running now, other than `except`. */
async function namespacesOfRunningMigrations(session: TemporalSession, except: string): Promise<Set<string>> {
  const out = new Set<string>();
  try {
    for await (const w of session.client.workflow.list({ query: 'WorkflowType = "migrationWorkflow" AND ExecutionStatus = "Running"' })) {
      if (w.workflowId === except) continue;
      for (const ns of w.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryNamespaces) ?? []) out.add(ns);
    }
  } catch (e) {
    throw cliErrorOf(e, 'listing running migrations');
  }
  return out;
}

/** What `ferry cleanup` does in one namespace (see `namespaceVerdict`). */
export interface NamespaceVerdict {
  /** Restore the source workloads this migration left quiesced. */
  restore: boolean;
  /** Remove this migration's cutover marks in the destination namespace. */
  clearCutoverMarks: boolean;
  /** Why the source is left as it is (when `restore` is false). */
  why?: string;
}

/**
 * What `ferry cleanup ID` does in a namespace, from its namespace workflow's last state (Temporal):
 * - never started (NOT_FOUND): restore (only annotations naming this migration are restored, and a
 *   namespace workflow that never ran wrote none);
 * - did not cut over (final sync incomplete): what its rollback would have done: restore the source,
 *   remove this migration's cutover marks (so that a new run under the id is not refused);
 * - cut over (final sync complete, or succeeded): marks kept; the source stays down unless the stored
 *   plan says keepSourceQuiesced: false (`keepSourceQuiesced` undefined: the stored plan is unreadable,
 *   the source stays down) — restoring it would run the application in both clusters;
 * - last state unreadable, or still running: nothing touched, with the reason.
 */
export function namespaceVerdict(ns: NamespaceWorkflowStatus, keepSourceQuiesced: boolean | undefined, id: string): NamespaceVerdict {
  if (ns.status === 'NOT_FOUND') return { restore: true, clearCutoverMarks: false };
  const st = ns.lastState;
  if (ns.status === 'RUNNING' || ns.status === 'OTHER' || !st) {
    return {
      restore: false,
      clearCutoverMarks: false,
      why:
        `whether it cut over is unknown (its namespace workflow ${ns.workflowId} is ${ns.status.toLowerCase()}${ns.stateError ? `; its last state cannot be read: ${ns.stateError}` : ''}), ` +
        `so its source workloads and cutover marks are left as they are; with \`ferry worker\` running, run \`ferry cleanup ${id}\` again`,
    };
  }
  if (st.finalSynced || st.status === 'succeeded') {
    if (keepSourceQuiesced === false) return { restore: true, clearCutoverMarks: false };
    return {
      restore: false,
      clearCutoverMarks: false,
      why:
        keepSourceQuiesced === true
          ? 'cut over with keepSourceQuiesced: true; its source workloads stay down'
          : "cut over, and the migration's stored plan cannot be read to tell whether it kept the source quiesced; its source workloads stay down",
    };
  }
  return { restore: true, clearCutoverMarks: true };
}

/**
 * Cleans up after migration `id` (see module docstring).
 * @throws CliError exit 3 when Temporal does not know `id` (it cannot tell whether it runs); exit 2
 *   when the migration or one of its namespace workflows still runs
 */
export async function cleanupMigrationById(
  session: TemporalSession,
  id: string,
  opts: { plan?: MigrationPlan; clustersFor: ClustersFor; dryRun?: boolean },
): Promise<CleanupOutcome> {
  const run = await describeRun(session, id);
  const status = run?.status;
  if (run === undefined || status === undefined) {
    throw new CliError(`migration ${id}: not found in Temporal, so Ferry cannot tell whether it still runs; nothing was touched`, EXIT.NOT_FOUND);
  }
  if (status === 'RUNNING') {
    throw new CliError(`migration ${id} is running and cleans up after itself: \`ferry cancel ${id}\` rolls it back; nothing was touched`, EXIT.INVALID_INPUT);
  }
  const stored = opts.plan ? await storedPlan(session, id).catch(() => undefined) : await storedPlan(session, id);
  const plan = opts.plan ?? stored!;
  // keepSourceQuiesced is what the migration ran with, whatever a plan given with -f says.
  const keepSourceQuiesced = stored ? stored.keepSourceQuiesced === true : undefined;
  const states = new Map<string, NamespaceWorkflowStatus>();
  // The plan's namespaces and those the migration recorded (a plan given with -f may differ).
  for (const source of new Set([...plan.namespaces.map((n) => n.source), ...run.namespaces])) {
    try {
      states.set(source, await describeNamespaceWorkflow(session.client, namespaceWorkflowId(id, source)));
    } catch (e) {
      throw cliErrorOf(e, `namespace workflow ${namespaceWorkflowId(id, source)}`);
    }
  }
  const runningChildren = [...states.values()].filter((s) => s.status === 'RUNNING').map((s) => s.workflowId);
  if (runningChildren.length > 0) {
    throw new CliError(
      `migration ${id} ended (${status.toLowerCase()}), but its namespace workflow${runningChildren.length === 1 ? '' : 's'} ${runningChildren.join(', ')} still run${runningChildren.length === 1 ? 's' : ''} ` +
        `and clean${runningChildren.length === 1 ? 's' : ''} up after ${runningChildren.length === 1 ? 'itself' : 'themselves'}: \`ferry cancel ${id}\` rolls them back; nothing was touched`,
      EXIT.INVALID_INPUT,
    );
  }
  const clusters = opts.clustersFor(plan);
  const skip = await namespacesOfRunningMigrations(session, id);
  const leave = new Map<string, string>();
  const clearCutoverMarksIn: string[] = [];
  for (const mapping of plan.namespaces) {
    const verdict = namespaceVerdict(states.get(mapping.source)!, keepSourceQuiesced, id);
    if (verdict.clearCutoverMarks) clearCutoverMarksIn.push(mapping.destination);
    if (skip.has(mapping.source)) leave.set(mapping.source, 'another running migration uses it; its workloads are left as they are');
    else if (!verdict.restore) leave.set(mapping.source, verdict.why ?? 'left as it is');
  }
  const planFrom = opts.plan ? 'file' : 'workflow';
  if (opts.dryRun) {
    return { id, workflowStatus: status, planFrom, restore: { restored: [], notes: ['dry run: nothing changed', ...[...leave].map(([ns, why]) => `namespace ${ns}: ${why}`)] } };
  }
  // Restore first: the source applications matter more than the transfer objects.
  const restore = await clusters.restoreQuiesced(id, plan, leave);
  const cleanup = await clusters.cleanup(id, plan, clearCutoverMarksIn);
  return { id, workflowStatus: status, planFrom, restore, cleanup };
}

/** One migration label found by the sweep, and what became of it. */
export interface SweepEntry {
  /** The `ferry.dev/migration` label value. */
  key: string;
  /** The migration id, when Temporal knows it. */
  id?: string;
  /** "source/ns (n objects)" per place found. */
  found: string[];
  action: 'cleaned' | 'would-clean' | 'left-running' | 'left-unknown' | 'failed';
  message?: string;
  outcome?: CleanupOutcome;
}

/**
 * Sweeps the clusters of `plan` for transfer objects of migrations that no longer run.
 * Never touches objects of a running migration, nor of a migration this Temporal does not know.
 */
export async function sweep(session: TemporalSession, plan: MigrationPlan, opts: { clustersFor: ClustersFor; dryRun?: boolean }): Promise<SweepEntry[]> {
  const groups = await opts.clustersFor(plan).ferryObjects();
  const byKey = new Map<string, string[]>();
  for (const g of groups) byKey.set(g.key, [...(byKey.get(g.key) ?? []), `${g.side}/${g.namespace} (${g.count})`]);
  if (byKey.size === 0) return [];
  const ids = new Map<string, string>();
  try {
    for await (const w of session.client.workflow.list({ query: 'WorkflowType = "migrationWorkflow"' })) ids.set(migrationKey(w.workflowId), w.workflowId);
  } catch (e) {
    throw cliErrorOf(e, 'listing migrations');
  }
  const out: SweepEntry[] = [];
  for (const [key, found] of byKey) {
    const id = ids.get(key);
    if (id === undefined) {
      out.push({ key, found, action: 'left-unknown', message: 'no migration with this label in this Temporal: left alone (clean it with `ferry cleanup ID -f plan` once you know its id)' });
      continue;
    }
    try {
      const outcome = await cleanupMigrationById(session, id, { clustersFor: opts.clustersFor, ...(opts.dryRun ? { dryRun: true } : {}) });
      out.push({ key, id, found, action: opts.dryRun ? 'would-clean' : 'cleaned', outcome });
    } catch (e) {
      const running = e instanceof CliError && e.exitCode === EXIT.INVALID_INPUT;
      out.push({ key, id, found, action: running ? 'left-running' : 'failed', message: (e as Error).message });
    }
  }
  return out;
}

/** Human text of a cleanup outcome. */
export function renderCleanup(o: CleanupOutcome): string {
  const lines = [`Migration ${o.id} (${o.workflowStatus.toLowerCase()}; plan from the ${o.planFrom === 'file' ? 'plan file' : "workflow's input"}):`];
  for (const w of o.restore.restored) lines.push(`  restored ${w}`);
  for (const n of o.restore.notes) lines.push(`  note: ${n}`);
  if (o.cleanup) {
    lines.push(`  deleted ${o.cleanup.source} transfer object(s) in the source cluster, ${o.cleanup.destination} in the destination cluster`);
    if (o.cleanup.cutoverMarksCleared?.length) lines.push(`  removed its cutover marks (the namespace did not cut over) from ${o.cleanup.cutoverMarksCleared.join(', ')}`);
    if (o.cleanup.remaining > 0) lines.push(`  WARNING: ${o.cleanup.remaining} object(s) still present (finalizers?): run \`ferry cleanup ${o.id}\` again`);
  }
  return lines.join('\n');
}

/** Human text of a sweep. */
export function renderSweep(entries: SweepEntry[]): string {
  if (entries.length === 0) return 'No Ferry transfer objects found.';
  return entries
    .map((e) => {
      const head = `${e.id ?? `unknown migration (label ${e.key})`}: ${e.action} — found in ${e.found.join(', ')}`;
      return [head, ...(e.message ? [`  ${e.message}`] : []), ...(e.outcome ? renderCleanup(e.outcome).split('\n').slice(1) : [])].join('\n');
    })
    .join('\n');
}
