/**
 * What the `ferry` CLI does, as functions over a Temporal client (usable without the CLI): start a
 * migration, read its whole state, take the operator's decisions, list migrations.
 *
 * Where the state lives: the migration workflow knows its namespaces (phase, counts, final results);
 * each namespace workflow knows its PVCs; the bytes, rate and ETA of a running sync are in the
 * heartbeat details of its runTransfer activity, read with describe() on the sync's workflow.
 * getMigration() puts the three together.
 *
 * Operator commands go to the workflow that owns the state: decide and cutover to the namespace
 * workflow (its id is derived from the migration id and the namespace), rollback to the migration.
 */
import { randomUUID } from 'node:crypto';
import {
  Client,
  Connection,
  isGrpcServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { ApplicationFailure, type QueryDefinition } from '@temporalio/common';
import type { TransferProgress } from '../core/types';
import type { MigrationPlan } from '../plan/schema';
import { resolveTemporal } from '../temporal/devserver';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import type { migrationWorkflow } from '../workflows';
import {
  cutoverWithRequestUpdate,
  DEFAULT_TASK_QUEUE,
  decideUpdate,
  migrationStateQuery,
  namespaceStateQuery,
  namespaceWorkflowId,
  rollbackUpdate,
  type CutoverResult,
  type DecideResult,
  type RollbackResult,
} from '../workflows/definitions';
import { failureMessage } from '../workflows/failures';
import { migrationStaticDetails, migrationSummary } from '../workflows/summaries';
import { MIGRATION_PHASES, type DecisionAction, type MigrationState, type NamespaceState, type WorkflowTuning } from '../core/state';
import { CliError, EXIT } from './exit-codes';

/** How long a query may wait for a worker to answer. */
const QUERY_TIMEOUT_MS = 5000;
/** gRPC status codes. */
const GRPC_NOT_FOUND = 5;
const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;

/** A connection to Ferry's Temporal. */
export interface TemporalSession {
  client: Client;
  address: string;
  namespace: string;
  taskQueue: string;
  uiUrl?: string;
  /** Closes the connection (an embedded dev server keeps running). */
  close(): Promise<void>;
}

/**
 * Connects to Temporal: TEMPORAL_ADDRESS, else the embedded dev server (reused when running, started
 * otherwise; see ../temporal/devserver.ts).
 * @throws CliError (exit 4) when Temporal cannot be reached or started
 */
export async function openSession(env: NodeJS.ProcessEnv = process.env, log: (message: string) => void = () => undefined): Promise<TemporalSession> {
  let temporal;
  try {
    temporal = await resolveTemporal({ env, log });
  } catch (e) {
    throw new CliError(`cannot reach or start Temporal: ${(e as Error).message}`, EXIT.TEMPORAL_UNREACHABLE);
  }
  if (temporal.origin === 'started') {
    log(`started the Temporal dev server (pid ${temporal.pid}, ${temporal.address}); it keeps running for the worker and later commands: \`ferry server stop\` stops it.`);
  }
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: temporal.address, connectTimeout: 5000 });
  } catch (e) {
    throw new CliError(`cannot reach Temporal at ${temporal.address}: ${(e as Error).message}`, EXIT.TEMPORAL_UNREACHABLE);
  }
  return {
    client: new Client({ connection, namespace: temporal.namespace }),
    address: temporal.address,
    namespace: temporal.namespace,
    taskQueue: env.FERRY_TASK_QUEUE || DEFAULT_TASK_QUEUE,
    ...(temporal.uiUrl ? { uiUrl: temporal.uiUrl } : {}),
    close: async () => {
      // The embedded dev server, if any, keeps running: it is shared with the worker.
      await connection.close();
    },
  };
}

/** Maps Temporal client errors to CliErrors with the right exit code; other errors pass through. */
export function cliErrorOf(err: unknown, what: string): unknown {
  if (err instanceof CliError) return err;
  if (err instanceof WorkflowNotFoundError || (isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND)) {
    return new CliError(`${what}: not found`, EXIT.NOT_FOUND);
  }
  if (err instanceof WorkflowUpdateFailedError) return new CliError(`${what}: rejected: ${err.cause?.message ?? err.message}`, EXIT.INVALID_INPUT);
  const grpc = isGrpcServiceError(err) ? err : isGrpcServiceError((err as Error)?.cause) ? ((err as Error).cause as { code: number; message: string }) : undefined;
  if (grpc && (grpc.code === GRPC_UNAVAILABLE || grpc.code === GRPC_DEADLINE_EXCEEDED)) {
    return new CliError(`${what}: Temporal did not answer: ${grpc.message}`, EXIT.TEMPORAL_UNREACHABLE);
  }
  return err;
}

/** Migration ids: workflow ids and object labels derive from them. */
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** The migration id: the one given, else the plan's name, else "ferry-<UTC date-time>". */
export function migrationIdFor(plan: MigrationPlan, id?: string, now: Date = new Date()): string {
  const chosen = id ?? plan.name ?? `ferry-${now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15).toLowerCase()}`;
  if (!ID_PATTERN.test(chosen)) {
    throw new CliError(`invalid migration id ${JSON.stringify(chosen)}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit`, EXIT.INVALID_INPUT);
  }
  return chosen;
}

/** A migration started, or attached to, by startMigration. */
export type StartedMigration = WorkflowHandleWithFirstExecutionRunId<typeof migrationWorkflow> & {
  /** true: a migration with this id and the same plan was already running, and no second one was started. */
  attached: boolean;
  /** When the running migration's run started (attached only). */
  startedAt?: Date;
};

/**
 * Starts a migration, or attaches to the one already running under its id with the same plan: a
 * retried `ferry migrate` (a lost answer, a second terminal, a restarted pipeline step) never
 * starts a second migration. Temporal decides atomically: the start carries
 * workflowIdConflictPolicy USE_EXISTING, so of concurrent starts one creates the run and the others
 * get its run id. (Update-with-Start would need an update handler on the migration workflow that
 * does nothing but answer; it has none, and the workflows are not changed for this.) Which call
 * created the run is read from its first history event, whose identity is this call's own
 * (identity `<client identity> start <uuid>`); the other calls report `attached`.
 *
 * The id may be reused only when its last run did not succeed
 * (ALLOW_DUPLICATE_FAILED_ONLY): a rolled-back, cancelled, failed or terminated migration can be run
 * again under its id, a finished one cannot — its new run would adopt the destination PVCs and its
 * final sync (with --delete) overwrite what the cut-over application wrote since. (Destination PVCs
 * a namespace already cut over also carry a cutover mark that preflight checks, for the namespaces
 * that succeeded in a migration that failed elsewhere.)
 * @throws CliError (exit 2) when a migration with this id runs with another plan or has finished
 *   successfully, or when it ended but namespace workflows of it still run (`ferry cancel ID` first)
 */
export async function startMigration(session: TemporalSession, plan: MigrationPlan, id: string, tuning?: WorkflowTuning): Promise<StartedMigration> {
  // An ended migration's namespace workflows may still run (parentClosePolicy ABANDON: e.g. after the
  // migration workflow was terminated). Temporal would accept the id again, and the new run's
  // namespace workflows would then fail with an opaque "already started".
  let previous;
  try {
    previous = await session.client.workflow.getHandle(id).describe();
  } catch (e) {
    const mapped = cliErrorOf(e, `migration ${id}`);
    if (!(e instanceof WorkflowNotFoundError || (mapped instanceof CliError && mapped.exitCode === EXIT.NOT_FOUND))) throw mapped;
  }
  if (previous && previous.status.name !== 'RUNNING') {
    const sources = [...plan.namespaces.map((n) => n.source), ...(previous.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryNamespaces) ?? [])];
    const running = await runningNamespaceWorkflows(session, id, sources);
    if (running.length > 0) {
      throw new CliError(
        `migration ${id} ended (${previous.status.name.toLowerCase()}), but its namespace workflow${running.length === 1 ? '' : 's'} ${running.join(', ')} still run${running.length === 1 ? 's' : ''}: ` +
          `\`ferry cancel ${id}\` rolls ${running.length === 1 ? 'it' : 'them'} back; once ${running.length === 1 ? 'it has' : 'they have'} ended (\`ferry status ${id}\`), start the migration again`,
        EXIT.INVALID_INPUT,
      );
    }
  }
  // A client of this call's own identity (same connection): the run's first event tells whether this
  // call started it.
  const identity = `${session.client.options.identity} start ${randomUUID()}`;
  const client = new Client({ connection: session.client.connection, namespace: session.namespace, identity, dataConverter: session.client.options.dataConverter });
  let handle: WorkflowHandleWithFirstExecutionRunId<typeof migrationWorkflow>;
  try {
    handle = await client.workflow.start<typeof migrationWorkflow>('migrationWorkflow', {
      taskQueue: session.taskQueue,
      workflowId: id,
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      workflowIdConflictPolicy: 'USE_EXISTING',
      args: [{ migrationId: id, plan, ...(tuning ? { tuning } : {}) }],
      // What the Temporal UI shows of it, and the id to filter on (FerryMigration="ID").
      staticSummary: migrationSummary(id, plan),
      staticDetails: migrationStaticDetails(id, plan),
      typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.FerryMigration, value: id }],
    });
  } catch (e) {
    if (e instanceof WorkflowExecutionAlreadyStartedError) {
      let desc;
      try {
        desc = await session.client.workflow.getHandle(id).describe();
      } catch {
        desc = undefined;
      }
      if (desc && desc.status.name !== 'RUNNING') {
        const at = desc.closeTime ? ` at ${desc.closeTime.toISOString()}` : '';
        throw new CliError(
          `migration ${id} already finished${at} (${desc.status.name.toLowerCase()}): its destination PVCs belong to the cut-over applications now, ` +
            `and running it again would overwrite what they wrote since. Use another --id (see \`ferry status ${id}\`)`,
          EXIT.INVALID_INPUT,
        );
      }
      throw new CliError(`a migration with id ${id} is already running: follow it with \`ferry status ${id} --follow\`, or choose another --id`, EXIT.INVALID_INPUT);
    }
    throw cliErrorOf(e, `starting migration ${id}`);
  }
  let first;
  try {
    first = await runStart(session, id, handle.firstExecutionRunId);
  } catch (e) {
    throw cliErrorOf(e, `reading migration ${id}`);
  }
  if (first.identity === identity) return Object.assign(handle, { attached: false });
  const differs = planDifferences(first.plan, plan);
  if (differs.length > 0) {
    throw new CliError(
      `a migration with id ${id} is already running with another plan (${differs.join(', ')} differ${differs.length === 1 ? 's' : ''}): ` +
        `follow it with \`ferry status ${id} --follow\`, or give this plan another --id`,
      EXIT.INVALID_INPUT,
    );
  }
  return Object.assign(handle, { attached: true, ...(first.time ? { startedAt: first.time } : {}) });
}

/** The identity, time and plan of the first event of a run (its start, or its continue-as-new). */
async function runStart(session: TemporalSession, workflowId: string, runId: string): Promise<{ identity?: string; time?: Date; plan?: unknown }> {
  const res = await session.client.workflowService.getWorkflowExecutionHistory({ namespace: session.namespace, execution: { workflowId, runId }, maximumPageSize: 1 });
  const event = res.history?.events?.[0];
  const attrs = event?.workflowExecutionStartedEventAttributes;
  const payload = attrs?.input?.payloads?.[0];
  const input = payload ? session.client.options.loadedDataConverter.payloadConverter.fromPayload<{ plan?: unknown }>(payload) : undefined;
  const seconds = event?.eventTime?.seconds;
  return {
    ...(attrs?.identity ? { identity: attrs.identity } : {}),
    ...(seconds != null ? { time: new Date(Number(seconds) * 1000 + Math.floor((event?.eventTime?.nanos ?? 0) / 1e6)) } : {}),
    ...(input?.plan !== undefined ? { plan: input.plan } : {}),
  };
}

/** JSON with object keys sorted (plans compared by value, whatever their key order). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The top-level fields in which two plans differ (["plan"] when the running one is unreadable). */
export function planDifferences(running: unknown, wanted: MigrationPlan): string[] {
  if (!running || typeof running !== 'object') return ['plan'];
  const a = running as Record<string, unknown>;
  const b = wanted as unknown as Record<string, unknown>;
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => canonical(a[k]) !== canonical(b[k])).sort();
}

/**
 * The ids of the namespace workflows of migration `id` that run now, among those of the source
 * namespaces `sources` (duplicates ignored). A namespace workflow Temporal does not know is not running.
 * @throws CliError exit 4 when Temporal does not answer
 */
export async function runningNamespaceWorkflows(session: TemporalSession, id: string, sources: Iterable<string>): Promise<string[]> {
  const out: string[] = [];
  for (const source of new Set(sources)) {
    const wid = namespaceWorkflowId(id, source);
    try {
      if ((await session.client.workflow.getHandle(wid).describe()).status.name === 'RUNNING') out.push(wid);
    } catch (e) {
      const mapped = cliErrorOf(e, wid);
      if (e instanceof WorkflowNotFoundError || (mapped instanceof CliError && mapped.exitCode === EXIT.NOT_FOUND)) continue;
      throw mapped;
    }
  }
  return out;
}

/** Whether some worker polls the task queue (a migration without one waits). */
export async function workerPolling(session: TemporalSession): Promise<boolean> {
  const res = await session.client.workflowService.describeTaskQueue({
    namespace: session.namespace,
    taskQueue: { name: session.taskQueue },
    taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
  });
  return (res.pollers ?? []).length > 0;
}

/** Live figures of one running sync, from its transfer activity's heartbeat. */
export interface LiveProgress {
  progress?: TransferProgress;
  /** Attempt of the transfer activity (> 1: retried). */
  attempt: number;
  /** Why the previous attempt failed, when retried. */
  lastFailure?: string;
}

/** Everything known about a migration. */
export interface MigrationView {
  id: string;
  /** Temporal's status of the migration workflow: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED... */
  workflowStatus: string;
  /** The migration state (undefined when no worker answered and the workflow left no summary). */
  state?: MigrationState;
  /** Per source namespace: its final state, or its live state when running. */
  namespaces: Record<string, NamespaceState>;
  /** Live progress by PVC sync workflow id. */
  live: Record<string, LiveProgress>;
  /** The search attributes (known even when no worker answers). */
  searchAttributes: { phase?: string; namespaces?: string[]; failedPVCs?: number };
  /** The workflow's failure, when it failed. */
  failure?: string;
  /** Why part of the view is missing. */
  warnings: string[];
}

async function queryWithin<T>(session: TemporalSession, handle: WorkflowHandle, def: QueryDefinition<T, []>): Promise<T> {
  return session.client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => handle.query(def));
}

/** Live progress of one sync workflow (its pending transfer activity), if it runs. */
export async function liveProgress(session: TemporalSession, syncWorkflowId: string): Promise<LiveProgress | undefined> {
  const d = await session.client.workflow.getHandle(syncWorkflowId).describe();
  const pending = d.raw.pendingActivities?.[0];
  if (!pending) return undefined;
  const payload = pending.heartbeatDetails?.payloads?.[0];
  const progress = payload ? session.client.options.loadedDataConverter.payloadConverter.fromPayload<TransferProgress>(payload) : undefined;
  return {
    attempt: pending.attempt ?? 1,
    ...(progress ? { progress } : {}),
    ...(pending.lastFailure?.message ? { lastFailure: pending.lastFailure.message } : {}),
  };
}

/**
 * Reads the whole state of a migration: the migration workflow's state (its query while it runs, its
 * summary once it ended), each namespace's state, and the live progress of running syncs.
 * @throws CliError (exit 3) when there is no such migration
 */
export async function getMigration(session: TemporalSession, id: string, opts: { live?: boolean } = {}): Promise<MigrationView> {
  const handle = session.client.workflow.getHandle<typeof migrationWorkflow>(id);
  let desc;
  try {
    desc = await handle.describe();
  } catch (e) {
    throw cliErrorOf(e, `migration ${id}`);
  }
  if (desc.type !== 'migrationWorkflow') throw new CliError(`${id} is a ${desc.type}, not a migration`, EXIT.NOT_FOUND);
  const view: MigrationView = {
    id,
    workflowStatus: desc.status.name,
    namespaces: {},
    live: {},
    searchAttributes: {
      phase: desc.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryPhase),
      namespaces: desc.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryNamespaces),
      failedPVCs: desc.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryFailedPVCs),
    },
    warnings: [],
  };
  if (desc.status.name !== 'RUNNING') {
    try {
      view.state = await handle.result();
    } catch (e) {
      if (!(e instanceof WorkflowFailedError)) throw cliErrorOf(e, `migration ${id}`);
      view.failure = failureMessage(e);
      const details = e.cause instanceof ApplicationFailure ? e.cause.details?.[0] : undefined;
      if (details) view.state = details as MigrationState;
    }
  }
  if (!view.state) {
    try {
      view.state = await queryWithin(session, handle, migrationStateQuery);
    } catch (e) {
      view.warnings.push(`no worker answered for migration ${id} (is \`ferry worker\` running?): ${(e as Error).message}`);
      return view;
    }
  }
  for (const ns of view.state.namespaces) {
    if (ns.result) {
      view.namespaces[ns.source] = ns.result;
      continue;
    }
    if (ns.status !== 'running') continue;
    try {
      view.namespaces[ns.source] = await queryWithin(session, session.client.workflow.getHandle(ns.workflowId), namespaceStateQuery);
    } catch (e) {
      view.warnings.push(`namespace ${ns.source}: ${(e as Error).message}`);
    }
  }
  if (opts.live !== false) {
    const running = Object.values(view.namespaces).flatMap((ns) => ns.pvcs.filter((p) => p.running).map((p) => p.running!.workflowId));
    await Promise.all(
      running.map(async (wid) => {
        try {
          const lp = await liveProgress(session, wid);
          if (lp) view.live[wid] = lp;
        } catch {
          // Finished between the query and the describe.
        }
      }),
    );
  }
  return view;
}

/** The namespace of `pvc` when the operator did not name it: the one where it waits for a decision. */
async function namespaceOfPVC(session: TemporalSession, id: string, pvc: string): Promise<string> {
  const view = await getMigration(session, id, { live: false });
  if (!view.state) throw new CliError(`cannot find which namespace PVC ${pvc} belongs to (${view.warnings.join('; ')}); pass --namespace`, EXIT.TEMPORAL_UNREACHABLE);
  const waiting = view.state.namespaces.filter((n) => n.awaitingDecision.includes(pvc)).map((n) => n.source);
  const holding = Object.values(view.namespaces).filter((n) => n.pvcs.some((p) => p.name === pvc)).map((n) => n.source);
  const candidates = waiting.length > 0 ? waiting : holding;
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.length === 0) {
    if (view.state.namespaces.length === 1) return view.state.namespaces[0]!.source;
    throw new CliError(`migration ${id} has no PVC ${pvc} in a running namespace`, EXIT.INVALID_INPUT);
  }
  throw new CliError(`PVC ${pvc} is in several namespaces (${candidates.join(', ')}): pass --namespace`, EXIT.INVALID_INPUT);
}

/**
 * The operator's decision for a failed PVC (retry, skip, abort).
 * @throws CliError exit 2 when rejected (unknown PVC, PVC not failed), exit 3 when not found
 */
export async function decide(session: TemporalSession, id: string, req: { namespace?: string; pvc: string; action: DecisionAction }): Promise<DecideResult> {
  const namespace = req.namespace ?? (await namespaceOfPVC(session, id, req.pvc));
  const handle = session.client.workflow.getHandle(namespaceWorkflowId(id, namespace));
  try {
    return await handle.executeUpdate(decideUpdate, { args: [{ pvc: req.pvc, action: req.action }] });
  } catch (e) {
    throw cliErrorOf(e, `${req.action} of PVC ${namespace}/${req.pvc} in migration ${id}`);
  }
}

/**
 * Manual cutover of one namespace, or of every running namespace. `force`: cut over although the
 * last stage pass of some PVC was partial (also releases an automatic cutover held back for that).
 * @returns one result per namespace that accepted
 * @throws CliError when a named namespace rejects, or when every namespace rejects
 */
export async function cutover(session: TemporalSession, id: string, namespace?: string, opts: { force?: boolean } = {}): Promise<CutoverResult[]> {
  let targets: string[];
  if (namespace !== undefined) targets = [namespace];
  else {
    const view = await getMigration(session, id, { live: false });
    if (!view.state) throw new CliError(`cannot list the namespaces of migration ${id}: ${view.warnings.join('; ')}`, EXIT.TEMPORAL_UNREACHABLE);
    targets = view.state.namespaces.filter((n) => n.status === 'running').map((n) => n.source);
    if (targets.length === 0) throw new CliError(`migration ${id} has no running namespace to cut over`, EXIT.INVALID_INPUT);
  }
  const results: CutoverResult[] = [];
  const errors: unknown[] = [];
  for (const ns of targets) {
    try {
      results.push(await session.client.workflow.getHandle(namespaceWorkflowId(id, ns)).executeUpdate(cutoverWithRequestUpdate, { args: [opts.force ? { force: true } : {}] }));
    } catch (e) {
      errors.push(cliErrorOf(e, `cutover of namespace ${ns} in migration ${id}`));
    }
  }
  if (results.length === 0 && errors.length > 0) throw errors[0];
  return results;
}

/** Rolls the whole migration back (every running namespace). */
export async function rollback(session: TemporalSession, id: string, reason?: string): Promise<RollbackResult> {
  try {
    return await session.client.workflow.getHandle(id).executeUpdate(rollbackUpdate, { args: [reason ? { reason } : {}] });
  } catch (e) {
    throw cliErrorOf(e, `rollback of migration ${id}`);
  }
}

/**
 * Cancels the migration: every namespace rolls back, and the workflow ends cancelled. When the
 * migration workflow has already ended (e.g. terminated) while namespace workflows of it still run
 * (they outlive it: parentClosePolicy ABANDON), those are cancelled instead.
 * @returns the workflow ids asked to cancel
 * @throws CliError exit 2 when nothing of the migration runs, exit 3 when not found
 */
export async function cancel(session: TemporalSession, id: string): Promise<string[]> {
  try {
    const handle = session.client.workflow.getHandle(id);
    const desc = await handle.describe();
    if (desc.status.name === 'RUNNING') {
      await handle.cancel();
      return [id];
    }
    const cancelled: string[] = [];
    for (const ns of desc.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryNamespaces) ?? []) {
      const child = session.client.workflow.getHandle(namespaceWorkflowId(id, ns));
      const status = await child.describe().then(
        (d) => d.status.name,
        () => undefined,
      );
      if (status !== 'RUNNING') continue;
      await child.cancel();
      cancelled.push(child.workflowId);
    }
    if (cancelled.length === 0) throw new CliError(`migration ${id} has already ended (${desc.status.name.toLowerCase()}): nothing to cancel; \`ferry cleanup ${id}\` removes what it left`, EXIT.INVALID_INPUT);
    return cancelled;
  } catch (e) {
    throw cliErrorOf(e, `cancelling migration ${id}`);
  }
}

/** One row of `ferry list`. */
export interface MigrationRow {
  id: string;
  status: string;
  phase?: string;
  namespaces?: string[];
  failedPVCs?: number;
  startTime: string;
  closeTime?: string;
}

/**
 * Lists migrations (newest first), optionally only those in one phase (the FerryPhase search attribute).
 * @throws CliError (exit 2) for an unknown phase
 */
export async function listMigrations(session: TemporalSession, opts: { phase?: string; limit?: number } = {}): Promise<MigrationRow[]> {
  // One row per migration: the runs a migration closed by continuing as new are not migrations.
  let query = 'WorkflowType = "migrationWorkflow" AND ExecutionStatus != "ContinuedAsNew"';
  if (opts.phase !== undefined) {
    if (!(MIGRATION_PHASES as readonly string[]).includes(opts.phase)) {
      throw new CliError(`unknown phase ${JSON.stringify(opts.phase)}: one of ${MIGRATION_PHASES.join(', ')}`, EXIT.INVALID_INPUT);
    }
    query += ` AND FerryPhase = "${opts.phase}"`;
  }
  const rows: MigrationRow[] = [];
  try {
    for await (const w of session.client.workflow.list({ query })) {
      rows.push({
        id: w.workflowId,
        status: w.status.name,
        phase: w.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryPhase),
        namespaces: w.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryNamespaces),
        failedPVCs: w.typedSearchAttributes.get(SEARCH_ATTRIBUTES.FerryFailedPVCs),
        startTime: w.startTime.toISOString(),
        ...(w.closeTime ? { closeTime: w.closeTime.toISOString() } : {}),
      });
      if (rows.length >= (opts.limit ?? 100)) break;
    }
  } catch (e) {
    throw cliErrorOf(e, 'listing migrations');
  }
  return rows;
}
