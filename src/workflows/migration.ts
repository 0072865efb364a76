/**
 * migrationWorkflow: one migration of one plan.
 *
 *   discover every namespace → preflight (every problem at once; nothing touched when any is found)
 *   → one namespaceWorkflow child per namespace (all at once) and, when images are enabled, the image
 *     copy of each namespace alongside it → summary.
 *
 * Namespaces are independent: one rolling back does not roll the others back (their copies are not
 * wrong). The `rollback` update aborts everything: every namespace still running is cancelled and
 * rolls back. The workflow's result is the MigrationSummary; when a namespace did not succeed it fails
 * with FerryMigrationFailed (or FerryRolledBack after the `rollback` update) and the summary as
 * details[0], and it ends cancelled when cancelled.
 *
 * Search attributes FerryPhase, FerryNamespaces and FerryFailedPVCs follow the state (see
 * ../temporal/search-attributes.ts), so `ferry list --phase awaiting-decision` finds the migrations
 * that wait for an operator.
 */
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import * as wf from '@temporalio/workflow';
import { DEFAULT_MAX_AGENTS, DEFAULT_MAX_CONCURRENT_SYNCS, type NamespaceWorkflowStatus } from '../activities/contract';
import { FailureType, type NamespaceDiscovery, type PreflightProblem } from '../core/types';
import type { MigrationPlan, NamespaceMapping } from '../plan/schema';
import { SEARCH_ATTRIBUTES } from './search-attributes';
import { ferryActivities } from './activity-options';
import { migrationStateQuery, namespaceReportSignal, namespaceWorkflowId, rollbackUpdate, WorkflowFailureType } from './definitions';
import { failureMessage } from './failures';
import { namespaceWorkflow } from './namespace';
import { migrationPhase, migrationTotals, switchPhase, type MigrationState, type MigrationStatus, type MigrationSummary, type NamespaceEntry, type NamespaceState, type WorkflowTuning } from '../core/state';
import { finalSyncConcurrency } from './concurrency';
import { migrationDetails, namespaceStaticDetails, namespaceSummary } from './summaries';

export interface MigrationWorkflowInput {
  /** Identifies the migration in every object it creates (labels) and in the child workflow ids. */
  migrationId: string;
  plan: MigrationPlan;
  tuning?: WorkflowTuning;
  /** State carried over continue-as-new (internal): discovery and preflight are done, every
   * namespace workflow has started and reports to the new run. */
  resume?: MigrationState;
}

const now = () => new Date().toISOString();

/**
 * Patch of the bounded-history migration (issue 8 item 9): namespace workflows are started with
 * parentClosePolicy ABANDON, so that they survive this workflow's continue-as-new and keep reporting
 * to the new run, and the workflow continues as new when its history grows long.
 */
export const PATCH_MIGRATION_CONTINUE_AS_NEW = 'w-migration-can';

/**
 * Patch of the namespace watch (issue 8 item 9): a continued migration run learns a namespace's end
 * only from its final report, which a terminated or timed-out namespace workflow never sends. While
 * it waits, the run asks Temporal every `namespaceWatchSeconds` (describeNamespaceWorkflows) and
 * marks a namespace whose workflow closed without a final report as failed, so that the migration
 * ends instead of waiting for ever.
 */
export const PATCH_NAMESPACE_WATCH = 'n-namespace-watch';

/** Seconds between two namespace checks of a continued run when the tuning sets none: 5 minutes. */
export const DEFAULT_NAMESPACE_WATCH_SECONDS = 300;

/**
 * What the migration records for a namespace whose workflow closed without its final report: what
 * happened, when, and what the operator must do (nothing cleaned up after it: `ferry cleanup` restores
 * the source workloads and deletes the transfer objects, see ../cli/cleanup.ts).
 * @param how how the workflow closed, e.g. "terminated", "timed out"
 * @param at when (ISO 8601), when known
 */
export function closedWithoutReport(migrationId: string, workflowId: string, how: string, at?: string): string {
  return (
    `namespace workflow ${workflowId} was ${how}${at ? ` at ${at}` : ''} without reporting; ` +
    `its transfer objects and quiesced workloads may remain: run \`ferry cleanup ${migrationId}\``
  );
}

/** How a namespace workflow's status reads in closedWithoutReport, for statuses other than RUNNING. */
const CLOSED_HOW: Record<Exclude<NamespaceWorkflowStatus['status'], 'RUNNING'>, string> = {
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed out',
  NOT_FOUND: 'not found in Temporal (never started, or deleted)',
  OTHER: 'closed',
};

/**
 * The plan as one namespace's workflow and activities need it: the same plan with only that
 * namespace in `namespaces`, so that their inputs (and histories) do not grow with the number of
 * namespaces (issue 8 item 9).
 */
export function planFor(plan: MigrationPlan, namespace: NamespaceMapping): MigrationPlan {
  const slice: MigrationPlan = { ...plan, namespaces: [namespace] };
  // A namespace's own sourceCopyMethod is what its activities read as the plan's.
  if (namespace.sourceCopyMethod !== undefined) slice.sourceCopyMethod = namespace.sourceCopyMethod;
  // maxAgents is plan-wide: each namespace gets an equal share (at least 1), so that a plan of many
  // namespaces does not start maxAgents warm agents in each (issue 9: pods per node are bounded).
  if (plan.namespaces.length > 1) slice.maxAgents = agentShare(plan);
  if (plan.maxSyncsPerNode !== undefined && plan.namespaces.length > 1) slice.maxSyncsPerNode = Math.max(1, Math.floor(plan.maxSyncsPerNode / plan.namespaces.length));
  // maxConcurrentSyncs is plan-wide too: no namespace syncs more PVCs at once than its share.
  if (plan.namespaces.length > 1 || plan.maxConcurrentSyncs !== undefined) {
    const syncs = syncShare(plan);
    slice.concurrency = Math.min(plan.concurrency, syncs);
    slice.finalConcurrency = Math.min(finalSyncConcurrency(slice), syncs);
  }
  return slice;
}

/** One namespace's share of the plan-wide limit on syncs at once (plan maxConcurrentSyncs). */
export function syncShare(plan: Pick<MigrationPlan, 'maxConcurrentSyncs' | 'namespaces'>): number {
  return Math.max(1, Math.floor((plan.maxConcurrentSyncs ?? DEFAULT_MAX_CONCURRENT_SYNCS) / Math.max(1, plan.namespaces.length)));
}

/** One namespace's share of the plan-wide warm-agent limit (plan maxAgents, default DEFAULT_MAX_AGENTS). */
export function agentShare(plan: Pick<MigrationPlan, 'maxAgents' | 'namespaces'>): number {
  return Math.max(1, Math.floor((plan.maxAgents ?? DEFAULT_MAX_AGENTS) / Math.max(1, plan.namespaces.length)));
}

/** Whether this run should continue as new: Temporal suggests it, or the tuning's event bound is reached. */
export function historyLong(tuning: WorkflowTuning | undefined): boolean {
  const info = wf.workflowInfo();
  return info.continueAsNewSuggested || (tuning?.continueAsNewAfterEvents !== undefined && info.historyLength >= tuning.continueAsNewAfterEvents);
}

/** The migration's own steps; while namespaces run, the phase is derived from theirs. */
type OwnStep = 'discover' | 'preflight' | 'migrate';

/** The NamespaceState a failed namespace workflow carries in its failure (FerryRolledBack details[0]). */
function stateFromFailure(err: unknown): NamespaceState | undefined {
  let e: unknown = err;
  for (let i = 0; i < 5 && e instanceof Error; i++) {
    if (e instanceof wf.ApplicationFailure && e.type === WorkflowFailureType.RolledBack) return e.details?.[0] as NamespaceState | undefined;
    e = e.cause;
  }
  return undefined;
}

export async function migrationWorkflow(input: MigrationWorkflowInput): Promise<MigrationSummary> {
  const { migrationId, plan, tuning } = input;
  const info = wf.workflowInfo();
  const acts = ferryActivities(plan, tuning);
  const main = new wf.CancellationScope();
  const bounded = input.resume !== undefined || wf.patched(PATCH_MIGRATION_CONTINUE_AS_NEW);
  let step: OwnStep = input.resume ? 'migrate' : 'discover';
  const st: MigrationState = input.resume ?? {
    migrationId,
    workflowId: info.workflowId,
    ...(plan.name !== undefined ? { name: plan.name } : {}),
    phase: 'discover',
    status: 'running',
    startedAt: now(),
    phases: [],
    namespaces: plan.namespaces.map(
      (ns): NamespaceEntry => ({
        source: ns.source,
        destination: ns.destination,
        workflowId: namespaceWorkflowId(info.workflowId, ns.source),
        phase: 'pending',
        status: 'pending',
        stagePassesDone: 0,
        pvcs: 0,
        failedPVCs: 0,
        awaitingDecision: [],
        images: { status: plan.images.enabled ? 'pending' : 'disabled' },
      }),
    ),
    problems: [],
    totals: migrationTotals([]),
  };

  // Search attributes: upserted only when their value changes.
  let shown: { phase?: string; failed?: number } = {};
  wf.upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.FerryNamespaces, value: plan.namespaces.map((n) => n.source) }]);
  /** Recomputes the derived fields (phase, totals) and the search attributes. */
  const refresh = (): void => {
    st.phase = st.status !== 'running' ? st.status : step === 'migrate' ? migrationPhase(st.namespaces) : step;
    st.totals = migrationTotals(st.namespaces);
    const failed = st.namespaces.reduce((n, e) => n + e.failedPVCs, 0);
    const pairs: SearchAttributeUpdatePair[] = [];
    if (st.phase !== shown.phase) pairs.push({ key: SEARCH_ATTRIBUTES.FerryPhase, value: st.phase });
    if (failed !== shown.failed) pairs.push({ key: SEARCH_ATTRIBUTES.FerryFailedPVCs, value: failed });
    if (pairs.length > 0) wf.upsertSearchAttributes(pairs);
    shown = { phase: st.phase, failed };
    // The Temporal UI's "current details" (user metadata: no command).
    wf.setCurrentDetails(migrationDetails(st, now()));
  };
  const enter = (s: OwnStep): void => {
    switchPhase(st.phases, now(), s);
    step = s;
    refresh();
  };
  const finish = (status: Exclude<MigrationStatus, 'running'>, error?: string): MigrationSummary => {
    st.endedAt = now();
    switchPhase(st.phases, st.endedAt);
    st.status = status;
    if (error !== undefined) st.error = error;
    for (const e of st.namespaces) e.awaitingDecision = [];
    refresh();
    return st;
  };
  const running = () => st.namespaces.filter((e) => e.status === 'pending' || e.status === 'running');

  wf.setHandler(migrationStateQuery, () => st);

  wf.setHandler(namespaceReportSignal, (r) => {
    const e = st.namespaces.find((x) => x.source === r.source);
    if (!e) return;
    e.phase = r.phase;
    e.stagePassesDone = r.stagePassesDone;
    e.failedPVCs = r.failedPVCs;
    e.awaitingDecision = r.awaitingDecision;
    if (r.pvcsSynced !== undefined) e.pvcsSynced = r.pvcsSynced;
    if (r.bytesSent !== undefined) e.bytesSent = r.bytesSent;
    if (r.status !== 'running') e.status = r.status;
    if (r.final) e.result = r.final;
    refresh();
  });

  wf.setHandler(
    rollbackUpdate,
    (req) => {
      const namespaces = running().map((e) => e.source);
      st.rollbackRequested = { at: now(), ...(req?.reason ? { reason: req.reason } : {}) };
      main.cancel();
      return { namespaces };
    },
    {
      validator: (_req) => {
        if (st.status !== 'running') throw new Error(`migration ${migrationId} has already ${st.status === 'cancelled' ? 'been cancelled' : st.status}`);
        if (st.rollbackRequested) throw new Error(`rollback of migration ${migrationId} was already requested at ${st.rollbackRequested.at}`);
        if (step === 'migrate' && running().length === 0) throw new Error(`every namespace of migration ${migrationId} has already finished: nothing to roll back`);
      },
    },
  );

  async function runNamespace(e: NamespaceEntry, namespace: NamespaceMapping, discovery: NamespaceDiscovery): Promise<void> {
    e.status = 'running';
    e.pvcs = discovery.pvcs.length;
    refresh();
    try {
      const args: Parameters<typeof namespaceWorkflow> = [{ migrationId, plan: planFor(plan, namespace), namespace, discovery, ...(tuning ? { tuning } : {}) }];
      // For the Temporal UI: a summary, and the migration's id to filter on (FerryMigration="ID").
      const shown = {
        staticSummary: namespaceSummary(migrationId, namespace, discovery.pvcs.length),
        staticDetails: namespaceStaticDetails(migrationId, plan, namespace, discovery),
        typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.FerryMigration, value: migrationId }],
      };
      if (bounded) {
        // ABANDON: the namespace workflow outlives this run's continue-as-new (its reports reach the
        // new run). Cancelling `main` still cancels it while this run waits on it.
        const child = await wf.startChild(namespaceWorkflow, { workflowId: e.workflowId, args, parentClosePolicy: 'ABANDON', ...shown });
        startedChildren++;
        e.result = await child.result();
      } else {
        e.result = await wf.executeChild(namespaceWorkflow, { workflowId: e.workflowId, args, ...shown });
      }
      e.status = 'succeeded';
    } catch (err) {
      const final = stateFromFailure(err) ?? e.result;
      if (final) e.result = final;
      e.status = final?.status === 'rolled-back' ? 'rolled-back' : 'failed';
      e.error = failureMessage(err);
      // Terminated or timed out: no rollback ran and nothing reported; say what is left and the way out.
      if (err instanceof wf.ChildWorkflowFailure && (err.cause instanceof wf.TerminatedFailure || err.cause instanceof wf.TimeoutFailure)) {
        e.error = closedWithoutReport(migrationId, e.workflowId, err.cause instanceof wf.TerminatedFailure ? 'terminated' : 'timed out', now());
      }
    }
    if (e.result) e.phase = e.result.phase;
    e.awaitingDecision = [];
    refresh();
  }

  async function copyImages(e: NamespaceEntry, namespace: NamespaceMapping): Promise<void> {
    e.images = { status: 'running' };
    refresh();
    try {
      e.images = { status: 'succeeded', report: await acts.copyImages({ migrationId, plan: planFor(plan, namespace), namespace }) };
    } catch (err) {
      e.images = { status: 'failed', error: failureMessage(err) };
    }
    refresh();
  }

  /**
   * The namespace watch of a continued run: asks Temporal how the namespace workflows that have not
   * reported their end stand, and marks each one that closed without a final report as ended (its
   * last known state kept when Temporal could give it). A failing check is logged and retried at the
   * next round.
   */
  async function checkNamespaces(): Promise<void> {
    const waiting = running();
    if (waiting.length === 0) return;
    let statuses: NamespaceWorkflowStatus[];
    try {
      statuses = await acts.describeNamespaceWorkflows({ migrationId, workflowIds: waiting.map((e) => e.workflowId) });
    } catch (err) {
      if (wf.isCancellation(err)) throw err;
      wf.log.warn('cannot check the namespace workflows; checking again later', { error: failureMessage(err) });
      return;
    }
    for (const s of statuses) {
      const e = st.namespaces.find((x) => x.workflowId === s.workflowId);
      // Still running, or its final report arrived meanwhile.
      if (!e || s.status === 'RUNNING' || !(e.status === 'pending' || e.status === 'running')) continue;
      if (s.lastState) {
        e.result = s.lastState;
        e.phase = s.lastState.phase;
      }
      e.awaitingDecision = [];
      if (s.lastState && s.lastState.status !== 'running') {
        // It ran to its end (succeeded or rolled back); only its final report did not arrive.
        e.status = s.lastState.status;
        if (s.lastState.error) e.error = s.lastState.error;
        continue;
      }
      e.status = 'failed';
      e.error = closedWithoutReport(migrationId, s.workflowId, CLOSED_HOW[s.status], s.closedAt) + (s.stateError ? ` (its last state is unknown: ${s.stateError})` : '');
    }
    refresh();
  }

  /** Namespace workflows this run started (bounded mode). */
  let startedChildren = 0;
  const ended = () => running().length === 0 && !st.namespaces.some((e) => e.images.status === 'pending' || e.images.status === 'running');
  /**
   * Bounded mode: waits until every namespace and image copy ended; continues as new when the
   * history grew long and the new run can take over (every namespace workflow started — they report
   * to whichever run is current —, no image copy in flight, no rollback under way).
   */
  async function awaitNamespaces(work: Promise<void>[], expectedChildren: number): Promise<void> {
    // A continued run does not own the namespace workflows: it watches them (the first run learns a
    // terminated or timed-out child from its result).
    const watch = input.resume !== undefined && wf.patched(PATCH_NAMESPACE_WATCH);
    try {
      for (;;) {
        const canHandOver = () =>
          startedChildren >= expectedChildren && !st.namespaces.some((e) => e.images.status === 'pending' || e.images.status === 'running') && !st.rollbackRequested;
        const done = () => ended() || (canHandOver() && historyLong(tuning));
        if (watch) {
          if (!(await wf.condition(done, (tuning?.namespaceWatchSeconds ?? DEFAULT_NAMESPACE_WATCH_SECONDS) * 1000))) {
            await checkNamespaces();
            continue;
          }
        } else await wf.condition(done);
        if (ended()) break;
        await wf.condition(wf.allHandlersFinished);
        await wf.continueAsNew<typeof migrationWorkflow>({ migrationId, plan, ...(tuning ? { tuning } : {}), resume: st });
      }
    } catch (err) {
      if (!wf.isCancellation(err)) throw err;
      // Rollback or cancellation. This run's own children are cancelled with its scope; a continued
      // run does not own the namespace workflows: it asks each one still running to roll back. Then
      // wait for every final report, as the first run waits for its children.
      await wf.CancellationScope.nonCancellable(async () => {
        if (input.resume) await Promise.allSettled(running().map((e) => wf.getExternalWorkflowHandle(e.workflowId).cancel()));
        await Promise.allSettled(work);
        await wf.condition(() => running().length === 0);
      });
    }
    await Promise.allSettled(work);
  }

  try {
    await main.run(async () => {
      if (input.resume) {
        // A continued run: the namespace workflows run on and report here.
        refresh();
        await awaitNamespaces([], 0);
        return;
      }
      enter('discover');
      const problems: PreflightProblem[] = [];
      const found = await Promise.allSettled(plan.namespaces.map((namespace) => acts.discoverNamespace({ migrationId, plan: planFor(plan, namespace), namespace })));
      const discoveries: NamespaceDiscovery[] = [];
      found.forEach((r, i) => {
        if (r.status === 'fulfilled') {
          discoveries.push(r.value);
          st.namespaces[i]!.pvcs = r.value.pvcs.length;
        } else {
          if (wf.isCancellation(r.reason)) throw r.reason;
          problems.push({ subject: `namespace ${plan.namespaces[i]!.source}`, message: failureMessage(r.reason) });
        }
      });

      enter('preflight');
      if (discoveries.length > 0) problems.push(...(await acts.preflight({ migrationId, plan, discoveries })));
      if (problems.length > 0) {
        st.problems = problems;
        const message =
          `preflight found ${problems.length} problem${problems.length === 1 ? '' : 's'}; nothing was changed:\n` +
          problems.map((p) => `  ${p.subject}: ${p.message}`).join('\n');
        throw wf.ApplicationFailure.create({ type: FailureType.Preflight, nonRetryable: true, message, details: [finish('failed', message)] });
      }

      enter('migrate');
      const work = plan.namespaces.flatMap((namespace, i) => {
        const e = st.namespaces[i]!;
        const discovery = discoveries[i]!;
        return plan.images.enabled ? [runNamespace(e, namespace, discovery), copyImages(e, namespace)] : [runNamespace(e, namespace, discovery)];
      });
      if (bounded) await awaitNamespaces(work, plan.namespaces.length);
      else await Promise.allSettled(work);
    });
  } catch (err) {
    if (err instanceof wf.ContinueAsNew) throw err;
    if (wf.isCancellation(err)) {
      if (st.rollbackRequested) {
        const message = `migration ${migrationId} rolled back by the operator before anything was changed`;
        throw wf.ApplicationFailure.create({ type: WorkflowFailureType.RolledBack, nonRetryable: true, message, details: [finish('rolled-back', message)] });
      }
      finish('cancelled', 'cancelled before anything was changed');
      throw err;
    }
    if (st.status !== 'running') throw err; // preflight: already summarised
    const message = `migration ${migrationId} failed in phase ${st.phase}: ${failureMessage(err)}`;
    throw wf.ApplicationFailure.create({ type: WorkflowFailureType.MigrationFailed, nonRetryable: true, message, details: [finish('failed', message)] });
  }

  const unsuccessful = st.namespaces.filter((e) => e.status !== 'succeeded');
  const imageFailures = st.namespaces.filter((e) => e.images.status === 'failed');
  if (st.rollbackRequested) {
    const message =
      `migration ${migrationId} rolled back by the operator${st.rollbackRequested.reason ? ` (${st.rollbackRequested.reason})` : ''}: ` +
      (unsuccessful.map((e) => `${e.source} ${e.status}`).join(', ') || 'every namespace had finished');
    throw wf.ApplicationFailure.create({ type: WorkflowFailureType.RolledBack, nonRetryable: true, message, details: [finish('rolled-back', message)] });
  }
  if (wf.CancellationScope.current().consideredCancelled) {
    finish('cancelled', `migration ${migrationId} cancelled; namespaces rolled back: ${unsuccessful.map((e) => e.source).join(', ') || 'none'}`);
    throw new wf.CancelledFailure(st.error);
  }
  if (unsuccessful.length > 0 || imageFailures.length > 0) {
    const message =
      `migration ${migrationId} failed: ` +
      [
        ...unsuccessful.map((e) => `namespace ${e.source} ${e.status}${e.error ? ` (${e.error})` : ''}`),
        ...imageFailures.map((e) => `images of ${e.source} failed (${e.images.error})`),
      ].join('; ');
    throw wf.ApplicationFailure.create({ type: WorkflowFailureType.MigrationFailed, nonRetryable: true, message, details: [finish('failed', message)] });
  }
  return finish('succeeded');
}
