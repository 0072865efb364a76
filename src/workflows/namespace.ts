/**
 * namespaceWorkflow: the migration of one namespace's PVCs.
 *
 *   prepareDestination ∥ createEndpoint → createServer → probeConnectivity
 *   → stage passes (every PVC synced while the applications run; at most plan.concurrency at once;
 *     plan.stageIntervalSeconds between passes; with cutover 'manual' the passes go on until the
 *     operator's `cutover` update)
 *   → quiesce → waitForQuiesced → final sync of every PVC → unquiesce (unless keepSourceQuiesced)
 *   → cleanup.
 *
 * With quiesce (patch `q-writers`): discoverNamespace again right before quiesce (workloads created
 * during a long warm migration are quiesced too; pods Ferry cannot stop fail the namespace unless the
 * plan says `unmanagedPods: delete`; PVCs the selection matches that the migration did not discover
 * fail it too, before quiesce), and checkSourceWriters right before the final sync (deleting
 * those pods with `unmanagedPods: delete`) and right after it: while any pod other than Ferry's mounts
 * a source PVC the final sync does not start, and a final sync such a pod overlapped is not trusted;
 * either way the namespace rolls back (source restored) with the pods' names. waitForQuiesced and the
 * check before the final sync also fail when a quiesced StatefulSet's retention policy deletes PVCs
 * again.
 *
 * A PVC whose sync still fails after the activity's retries does not stop the others: it is marked
 * `failed` and waits for the operator's `decide` update — retry (sync it again), skip (leave it out of
 * the rest of the migration) or abort (roll the namespace back).
 *
 * Rollback (abort, cancellation, any other failure before the copy is complete) runs in a
 * non-cancellable scope, after every running activity and sync has stopped: unquiesce what was
 * quiesced (from this workflow's records), cleanup (every transfer object), and, when the plan asks,
 * delete the destination PVCs Ferry created. The workflow then fails with FerryRolledBack (details[0]:
 * the final NamespaceState), or ends cancelled when it was cancelled.
 *
 * Once the final sync is complete the copy is committed: later failures (unquiesce, cleanup) become
 * warnings instead of a rollback that would throw a finished copy away.
 */
import * as wf from '@temporalio/workflow';
import { type NamespaceContext } from '../activities/contract';
import { FailureType, type NamespaceDiscovery, type PVCInfo, type UnmanagedPod, type WorkloadRef } from '../core/types';
import type { MigrationPlan, NamespaceMapping } from '../plan/schema';
import { ferryActivities } from './activity-options';
import {
  cutoverWithRequestUpdate,
  decideUpdate,
  namespaceStateQuery,
  pvcWorkflowId,
  WorkflowFailureType,
  type CutoverRequest,
} from './definitions';
import { describeFailure, failureMessage } from './failures';
import { pvcTransferWorkflow } from './pvc-transfer';
import { DECISION_ACTIONS, MAX_PVC_ERRORS, secondsBetween, switchPhase, type Decision, type NamespacePhase, type NamespaceState, type PVCState, type SyncFailure, type WorkflowTuning } from '../core/state';
import { finalSyncConcurrency } from './concurrency';
import { ParentReporter } from './namespace/reporter';
import { Slots } from './namespace/slots';

export interface NamespaceWorkflowInput {
  migrationId: string;
  plan: MigrationPlan;
  namespace: NamespaceMapping;
  /** What the migration's discovery found in this namespace. */
  discovery: NamespaceDiscovery;
  tuning?: WorkflowTuning;
  /** State carried over continue-as-new (internal). */
  resume?: NamespaceState;
}

const now = () => new Date().toISOString();

/** Seconds between stage passes while cutover is held back by a partial pass (at least). */
const PARTIAL_RETRY_SECONDS = 60;

/** Phases during which the operator may still ask for cutover. */
const BEFORE_CUTOVER: readonly NamespacePhase[] = ['pending', 'prepare', 'stage', 'ready-for-cutover'];

function initialState(input: NamespaceWorkflowInput, workflowId: string): NamespaceState {
  return {
    migrationId: input.migrationId,
    source: input.namespace.source,
    destination: input.namespace.destination,
    workflowId,
    phase: 'pending',
    status: 'running',
    startedAt: now(),
    phases: [],
    cutover: input.plan.cutover,
    cutoverRequested: false,
    stagePassesDone: 0,
    pvcs: input.discovery.pvcs.map((p) => ({
      name: p.name,
      destinationName: p.destinationName,
      capacityBytes: p.capacityBytes,
      status: 'pending',
      syncs: 0,
      stageSyncsDone: 0,
      bytesSent: 0,
      errors: [],
      decisions: [],
    })),
    workloads: input.discovery.workloads.length,
    ...(input.discovery.unmanagedPods?.length ? { unmanagedPods: input.discovery.unmanagedPods } : {}),
    touched: false,
    prepared: false,
    createdPVCs: [],
    quiesceStarted: false,
    quiesced: [],
    unquiesced: false,
    finalSynced: false,
    warnings: [],
    runs: 0,
  };
}

/** "pod a (mounts x; controlled by K n)", for messages. */
function describePods(pods: readonly UnmanagedPod[]): string {
  return pods.map((p) => `pod ${p.name} (mounts ${p.pvcs.join(', ')}${p.owner ? `; controlled by ${p.owner}` : '; no controller'})`).join(', ');
}

/** `a` plus the workloads of `b` it lacks, in order. */
function mergeWorkloads(a: readonly WorkloadRef[], b: readonly WorkloadRef[]): WorkloadRef[] {
  const key = (w: WorkloadRef) => `${w.kind}/${w.namespace}/${w.name}`;
  const have = new Set(a.map(key));
  return [...a, ...b.filter((w) => !have.has(key(w)))];
}

export async function namespaceWorkflow(input: NamespaceWorkflowInput): Promise<NamespaceState> {
  const { migrationId, plan, namespace, discovery, tuning } = input;
  const info = wf.workflowInfo();
  const acts = ferryActivities(plan, tuning);
  const ctx: NamespaceContext = { migrationId, plan, namespace };
  const st: NamespaceState = input.resume ?? initialState(input, info.workflowId);
  st.runs++;
  const pvcInfo = new Map<string, PVCInfo>(discovery.pvcs.map((p) => [p.name, p]));
  const decisions = new Map<string, Decision>();
  let abortedBy: Decision | undefined;
  const main = new wf.CancellationScope();
  const reporter = new ParentReporter(st);
  /** What quiesce stops: discovery's workloads, plus those re-discovery finds before quiesce. */
  let quiesceTargets: WorkloadRef[] = discovery.workloads;
  if (st.runs === 1 && plan.quiesce && plan.acceptRevisionChange) {
    for (const r of discovery.pendingRollouts ?? []) {
      st.warnings.push(`${r.workload.kind} ${r.workload.namespace}/${r.workload.name} is in the middle of a rollout (${r.detail}); accepted by acceptRevisionChange`);
    }
  }

  // Issue 8 item 4: a partial stage pass holds cutover back (new commands: behind a patch).
  const gatePartial = wf.patched('d-partial-stage');

  /** PVCs whose last stage pass was partial for a reason other than vanished files (exit 24 is a
   * success in the activity's result). */
  const partialPVCs = (): PVCState[] =>
    gatePartial ? st.pvcs.filter((p) => p.status !== 'skipped' && p.lastSync && !p.lastSync.final && p.lastSync.outcome === 'partial' && p.lastSync.exitCode !== 24) : [];
  const partialReason = (ps: PVCState[]): string =>
    ps.map((p) => `${p.name} (pass ${p.lastSync!.pass}, rsync exit ${p.lastSync!.exitCode}): ${p.lastSync!.message}`).join('; ');

  const enter = (phase: NamespacePhase): void => {
    st.phase = phase;
    // Terminal phases only close the last one.
    switchPhase(st.phases, now(), phase === 'succeeded' || phase === 'rolled-back' ? undefined : phase);
    reporter.touch();
  };

  wf.setHandler(namespaceStateQuery, () => st);

  wf.setHandler(
    decideUpdate,
    (d) => {
      if (d.action === 'abort') {
        abortedBy = d;
        st.pvcs.find((x) => x.name === d.pvc)!.decisions.push({ action: 'abort', at: now() });
        main.cancel();
      } else {
        decisions.set(d.pvc, d);
      }
      return { namespace: st.source, pvc: d.pvc, action: d.action };
    },
    {
      validator: (d) => {
        if (!d || typeof d !== 'object') throw new Error('expected { pvc, action }');
        if (!DECISION_ACTIONS.includes(d.action)) {
          throw new Error(`unknown action ${JSON.stringify(d.action)}: use ${DECISION_ACTIONS.join(', ')}`);
        }
        const p = st.pvcs.find((x) => x.name === d.pvc);
        if (!p) {
          throw new Error(`namespace ${st.source} has no PVC ${JSON.stringify(d.pvc)} in this migration (PVCs: ${st.pvcs.map((x) => x.name).join(', ') || 'none'})`);
        }
        if (st.status !== 'running' || st.phase === 'rollback') throw new Error(`namespace ${st.source} is ${st.phase}: nothing to decide`);
        if (p.status !== 'failed') throw new Error(`PVC ${d.pvc} is ${p.status}, not failed: only a failed PVC waits for a decision`);
        if (decisions.has(d.pvc) || abortedBy) throw new Error(`PVC ${d.pvc} already has a decision being carried out`);
      },
    },
  );

  wf.setHandler(
    cutoverWithRequestUpdate,
    (req: CutoverRequest | undefined) => {
      if (req?.force && partialPVCs().length > 0) st.cutoverForcedAt = now();
      if (plan.cutover === 'manual') st.cutoverRequested = true;
      reporter.touch();
      return { namespace: st.source, stagePassesDone: st.stagePassesDone, minimumStagePasses: plan.stagePasses };
    },
    {
      validator: (req: CutoverRequest | undefined) => {
        const partial = partialPVCs();
        const releasesAuto = plan.cutover !== 'manual' && req?.force === true && partial.length > 0 && st.cutoverForcedAt === undefined;
        if (plan.cutover !== 'manual' && !releasesAuto) {
          throw new Error(
            `namespace ${st.source} cuts over automatically (plan cutover: auto): nothing to trigger` +
              (partial.length > 0 ? ' (a cutover held back by partial stage passes is released with --force)' : ''),
          );
        }
        if (plan.cutover === 'manual' && st.cutoverRequested) throw new Error(`cutover of namespace ${st.source} was already requested`);
        if (st.status !== 'running' || !BEFORE_CUTOVER.includes(st.phase)) throw new Error(`namespace ${st.source} is past cutover (phase ${st.phase})`);
        if (partial.length > 0 && !req?.force) {
          throw new Error(
            `cutover of namespace ${st.source} refused: the last stage pass was partial for ${partial.map((p) => p.name).join(', ')} — ` +
              `${partialReason(partial)}. The final sync would fail the same way after the applications went down. ` +
              'Fix the cause and wait for the next stage pass, or cut over anyway with --force.',
          );
        }
      },
    },
  );

  /** One sync of one PVC; returns the failure when it failed (after the activity's retries). */
  async function syncOnce(p: PVCState, final: boolean): Promise<SyncFailure | undefined> {
    const pass = ++p.syncs;
    const workflowId = pvcWorkflowId(info.workflowId, p.name, pass);
    p.status = 'syncing';
    p.running = { workflowId, pass, final, startedAt: now() };
    try {
      const r = await wf.executeChild(pvcTransferWorkflow, {
        workflowId,
        args: [{ ...ctx, pvc: pvcInfo.get(p.name)!, address: st.address!, final, pass }, tuning],
      });
      p.lastSync = {
        pass,
        final,
        outcome: r.outcome,
        exitCode: r.exitCode,
        bytesSent: r.bytesSent ?? 0,
        ...(r.totalFileSize !== undefined ? { totalFileSize: r.totalFileSize } : {}),
        ...(r.filesTransferred !== undefined ? { filesTransferred: r.filesTransferred } : {}),
        ...(r.numberOfFiles !== undefined ? { numberOfFiles: r.numberOfFiles } : {}),
        ...(r.failedFiles?.length ? { failedFiles: r.failedFiles } : {}),
        message: r.message,
        durationSeconds: r.durationSeconds,
        finishedAt: now(),
      };
      p.bytesSent += r.bytesSent ?? 0;
      if (final) p.status = 'done';
      else {
        p.status = 'synced';
        p.stageSyncsDone++;
      }
      return undefined;
    } catch (err) {
      // Our own cancellation (abort, workflow cancelled): stop. A sync cancelled by someone else
      // (e.g. from the UI) is just a failed sync.
      if (wf.isCancellation(err) && wf.CancellationScope.current().consideredCancelled) {
        p.status = 'cancelled';
        throw err;
      }
      const failure: SyncFailure = { pass, final, ...describeFailure(err), at: now() };
      p.errors.push(failure);
      if (p.errors.length > MAX_PVC_ERRORS) p.errors.splice(0, p.errors.length - MAX_PVC_ERRORS);
      return failure;
    } finally {
      delete p.running;
    }
  }

  /** Syncs one PVC until it succeeds or the operator skips it (abort cancels the main scope). */
  async function syncUntilSettled(p: PVCState, final: boolean, slots: Slots): Promise<void> {
    for (;;) {
      await slots.acquire();
      let failure: SyncFailure | undefined;
      try {
        failure = await syncOnce(p, final);
      } finally {
        slots.release();
      }
      if (!failure) return;
      p.status = 'failed';
      wf.log.warn('PVC sync failed; waiting for the operator', { namespace: st.source, pvc: p.name, pass: failure.pass, error: failure.message });
      reporter.touch();
      await wf.condition(() => decisions.has(p.name));
      const d = decisions.get(p.name)!;
      decisions.delete(p.name);
      p.decisions.push({ action: d.action, at: now() });
      reporter.touch();
      if (d.action === 'skip') {
        p.status = 'skipped';
        return;
      }
      p.status = 'pending'; // retry: waits for a slot like any other sync
    }
  }

  /** One sync of every PVC not skipped: at most plan.concurrency at once, or finalSyncConcurrency(plan) for the final sync. */
  async function syncAll(final: boolean): Promise<void> {
    // The final sync runs more PVCs at once (plan finalConcurrency): each is only a delta by then.
    const slots = new Slots(final && wf.patched('final-concurrency') ? finalSyncConcurrency(plan) : plan.concurrency);
    const targets = st.pvcs.filter((p) => p.status !== 'skipped');
    // allSettled, not all: on abort every running sync must have stopped before rollback starts.
    const results = await Promise.allSettled(targets.map((p) => syncUntilSettled(p, final, slots)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async function stagePasses(): Promise<void> {
    const manual = plan.cutover === 'manual';
    const minimumDone = () => st.stagePassesDone >= plan.stagePasses;
    const wouldCut = () => minimumDone() && (!manual || st.cutoverRequested);
    // A partial last pass holds cutover back unless the operator forced it.
    const heldBack = () => st.cutoverForcedAt === undefined && partialPVCs().length > 0;
    const cutNow = () => wouldCut() && !heldBack();
    let passesThisRun = 0;
    if (st.phase !== 'stage' && st.phase !== 'ready-for-cutover') enter('stage');
    for (;;) {
      if (manual && minimumDone() && st.phase === 'stage' && partialPVCs().length === 0) enter('ready-for-cutover');
      if (cutNow()) {
        if (st.cutoverBlocked) {
          delete st.cutoverBlocked;
          reporter.touch();
        }
        return;
      }
      let pause = plan.stageIntervalSeconds;
      if (gatePartial && wouldCut() && heldBack()) {
        // Cutover is due but would take the applications down for a final sync that fails: wait for
        // a clean pass (another stage pass after a pause, so the operator can fix the cause) or for
        // `ferry cutover --force`.
        const partial = partialPVCs();
        const reason =
          `cutover held back: the last stage pass was partial for ${partial.map((p) => p.name).join(', ')} — ${partialReason(partial)}. ` +
          `Fix the cause (another stage pass runs every ${Math.max(plan.stageIntervalSeconds, PARTIAL_RETRY_SECONDS)} s and cutover follows a clean one), or force it: ferry cutover ${migrationId} --namespace ${st.source} --force`;
        if (st.cutoverBlocked?.reason !== reason) {
          st.cutoverBlocked = { pvcs: partial.map((p) => p.name), reason, since: st.cutoverBlocked?.since ?? now() };
          wf.log.warn('cutover held back by a partial stage pass', { namespace: st.source, pvcs: st.cutoverBlocked.pvcs });
          reporter.touch();
        }
        pause = Math.max(plan.stageIntervalSeconds, PARTIAL_RETRY_SECONDS);
      }
      if (st.stagePassesDone > 0 && pause > 0) {
        // The pause between passes; in manual mode the operator's cutover ends it early.
        if (await wf.condition(cutNow, pause * 1000)) continue;
      }
      await syncAll(false);
      st.stagePassesDone++;
      passesThisRun++;
      reporter.touch();
      const perRun = tuning?.stagePassesPerRun;
      const eventBound = tuning?.continueAsNewAfterEvents;
      const longHistory = wf.workflowInfo().continueAsNewSuggested || (eventBound !== undefined && wf.workflowInfo().historyLength >= eventBound);
      if (!cutNow() && ((perRun !== undefined && passesThisRun >= perRun) || longHistory)) {
        await reporter.drained();
        await wf.condition(wf.allHandlersFinished);
        await wf.continueAsNew<typeof namespaceWorkflow>({ ...input, resume: st });
      }
    }
  }

  async function migrate(): Promise<void> {
    if (!st.prepared) {
      enter('prepare');
      st.touched = true;
      if (wf.patched('setup-concurrent')) {
        // The destination namespace and PVCs, and the endpoint (createEndpoint ensures the namespace
        // itself), at the same time. Both settle before anything is thrown, so the PVCs
        // prepareDestination reports are recorded (rollback deletes only those); a failed
        // prepareDestination cancels the endpoint's wait.
        const endpointScope = new wf.CancellationScope();
        const [prepared, endpoint] = await Promise.allSettled([
          acts.prepareDestination({ ...ctx, discovery }).then(
            (created) => {
              st.createdNamespace = created.createdNamespace;
              st.createdPVCs = created.createdPVCs;
            },
            (err: unknown) => {
              endpointScope.cancel();
              throw err;
            },
          ),
          endpointScope.run(() => acts.createEndpoint(ctx)),
        ]);
        if (prepared.status === 'rejected') throw prepared.reason;
        if (endpoint.status === 'rejected') throw endpoint.reason;
        st.address = endpoint.value;
      } else {
        const created = await acts.prepareDestination({ ...ctx, discovery });
        st.createdNamespace = created.createdNamespace;
        st.createdPVCs = created.createdPVCs;
        st.address = await acts.createEndpoint(ctx);
      }
      await acts.createServer({ ...ctx, discovery, address: st.address });
      await acts.probeConnectivity({ ...ctx, address: st.address });
      st.prepared = true;
    }

    await stagePasses();

    const checkWriters = plan.quiesce && wf.patched('q-writers');
    const migrated = () => st.pvcs.filter((p) => p.status !== 'skipped').map((p) => p.name);
    const writersFailure = (when: string, pods: UnmanagedPod[]) =>
      wf.ApplicationFailure.create({
        type: FailureType.Preflight,
        nonRetryable: true,
        message:
          `${when}, ${pods.length} pod${pods.length === 1 ? '' : 's'} other than Ferry's mount${pods.length === 1 ? 's' : ''} source PVCs of ${namespace.source} and could write: ${describePods(pods)}. ` +
          `Stop them (or their controller)${plan.unmanagedPods === 'delete' ? '' : ', or set unmanagedPods: delete for pods Ferry cannot quiesce'}, then migrate again`,
      });
    const newPVCsFailure = (added: string[]) =>
      wf.ApplicationFailure.create({
        type: FailureType.Preflight,
        nonRetryable: true,
        message:
          `before quiesce, ${added.length} PVC${added.length === 1 ? '' : 's'} of ${namespace.source} that the selection matches appeared since the migration discovered its PVCs: ${added.join(', ')}. ` +
          'They are not migrated, and the final sync would leave them behind; nothing was quiesced, the source applications still run. ' +
          `Migrate them too (a new migration whose plan selects them, once this one is rolled back), or narrow this namespace's selection (pvcs.names or a labelSelector) so that it excludes them, then migrate again`,
      });
    if (plan.quiesce) {
      if (checkWriters) {
        // Workloads created since discovery (a long warm migration) are quiesced too. Still in the
        // stage phase: the applications are not touched yet (downtime starts with quiesce).
        const again = await acts.discoverNamespace(ctx);
        // A PVC the selection matches now but the migration did not discover (a StatefulSet scaled up
        // during a warm migration) would be quiesced but never copied: stop before touching anything.
        const added = again.pvcs.map((p) => p.name).filter((n) => !pvcInfo.has(n));
        if (added.length > 0) throw newPVCsFailure(added);
        quiesceTargets = mergeWorkloads(discovery.workloads, again.workloads);
        st.workloads = quiesceTargets.length;
        const unmanaged = (again.unmanagedPods ?? []).filter((u) => u.pvcs.some((c) => pvcInfo.has(c)));
        if (unmanaged.length > 0) st.unmanagedPods = unmanaged;
        else delete st.unmanagedPods;
        reporter.touch();
        if (unmanaged.length > 0 && plan.unmanagedPods !== 'delete') throw writersFailure('before quiesce', unmanaged);
      }
      enter('quiesce');
      st.downtime = { startedAt: now() };
      if (quiesceTargets.length > 0) {
        // In a cancelled scope the call below schedules nothing: then the source was not touched.
        st.quiesceStarted = !wf.CancellationScope.current().consideredCancelled;
        st.quiesced = await acts.quiesce({ migrationId, plan, workloads: quiesceTargets });
        await acts.waitForQuiesced({ migrationId, plan, workloads: quiesceTargets });
      }
      if (checkWriters) {
        const before = await acts.checkSourceWriters({ ...ctx, pvcs: migrated(), deleteUnmanaged: plan.unmanagedPods === 'delete', retentionGuard: true });
        if (before.deleted.length > 0) st.warnings.push(`deleted pods Ferry cannot quiesce before the final sync (unmanagedPods: delete): ${before.deleted.join(', ')}`);
        if (before.pods.length > 0) {
          st.unmanagedPods = before.pods;
          throw writersFailure('after quiesce, before the final sync', before.pods);
        }
        delete st.unmanagedPods; // deleted ones are in the warnings
      }
    }
    enter('final-sync');
    await syncAll(true);
    if (checkWriters) {
      const after = await acts.checkSourceWriters({ ...ctx, pvcs: migrated(), deleteUnmanaged: false });
      if (after.pods.length > 0) {
        st.unmanagedPods = after.pods;
        throw writersFailure('the final sync is not trusted: right after it', after.pods);
      }
    }
    st.finalSynced = true;
    if (st.downtime) {
      st.downtime.endedAt = now();
      st.downtime.seconds = secondsBetween(st.downtime.startedAt, st.downtime.endedAt);
    }

    // Committed: from here on, failures are warnings, not a rollback.
    if (st.quiesced.length > 0 && !plan.keepSourceQuiesced) {
      enter('unquiesce');
      try {
        await acts.unquiesce({ migrationId, plan, records: st.quiesced });
        st.unquiesced = true;
      } catch (err) {
        if (wf.isCancellation(err)) throw err;
        st.unquiesceFailed = failureMessage(err);
        st.warnings.push(`the data is migrated, but restoring the source workloads failed: ${failureMessage(err)}; they are still scaled down`);
      }
    }
    enter('cleanup');
    try {
      st.cleanup = await acts.cleanup({ migrationId, plan, namespace });
      if (st.cleanup.remaining > 0) st.warnings.push(`cleanup left ${st.cleanup.remaining} transfer object(s) behind`);
    } catch (err) {
      if (wf.isCancellation(err)) throw err;
      st.warnings.push(`the data is migrated, but cleanup of the transfer objects failed: ${failureMessage(err)}`);
    }
  }

  /** Undoes what this namespace changed. Never throws; every step's outcome is recorded. */
  async function rollback(reason: string): Promise<void> {
    st.error = reason;
    st.rollback = { reason, startedAt: now(), steps: [] };
    enter('rollback');
    const steps = st.rollback.steps;
    const step = async (name: (typeof steps)[number]['step'], fn: () => Promise<unknown>) => {
      try {
        await fn();
        steps.push({ step: name, ok: true });
      } catch (err) {
        steps.push({ step: name, ok: false, message: failureMessage(err) });
      }
    };
    if ((st.quiesced.length > 0 || st.quiesceStarted) && !st.unquiesced) {
      // A quiesce that failed half-way returned no records: the activity then restores the
      // workloads from their ferry.dev/pre-quiesce annotations (the second copy of the prior state).
      await step('unquiesce', async () => {
        await acts.unquiesce({ migrationId, plan, records: st.quiesced, workloads: quiesceTargets });
        st.unquiesced = true;
        // The applications run again: the downtime ends here.
        if (st.downtime && st.downtime.endedAt === undefined) {
          st.downtime.endedAt = now();
          st.downtime.seconds = secondsBetween(st.downtime.startedAt, st.downtime.endedAt);
        }
      });
    }
    if (st.downtime && st.downtime.endedAt === undefined && !st.quiesceStarted && st.quiesced.length === 0) {
      // Cancelled before anything was scaled down: no application was down.
      st.downtime.endedAt = st.downtime.startedAt;
      st.downtime.seconds = 0;
    }
    if (st.touched) await step('cleanup', () => acts.cleanup({ migrationId, plan, namespace, ...(st.finalSynced ? {} : { clearCutoverMarks: true }) }));
    if (plan.deleteDestinationPVCsOnRollback && st.touched) {
      if (st.finalSynced) {
        steps.push({ step: 'deleteDestinationPVCs', ok: true, message: 'kept: the final sync had completed' });
      } else if (st.createdPVCs.length > 0) {
        await step('deleteDestinationPVCs', () => acts.deleteDestinationPVCs({ ...ctx, pvcs: st.createdPVCs }));
      } else if (st.createdNamespace === undefined) {
        // Only PVCs Ferry is known to have created are ever deleted.
        steps.push({ step: 'deleteDestinationPVCs', ok: true, message: 'none deleted: prepareDestination did not report which PVCs it created' });
      }
    }
    st.rollback.endedAt = now();
  }

  try {
    await main.run(migrate);
    st.status = 'succeeded';
    st.endedAt = now();
    enter('succeeded');
    await reporter.finish();
    return st;
  } catch (err) {
    if (err instanceof wf.ContinueAsNew) throw err;
    const cancelled = wf.isCancellation(err) && !abortedBy;
    const reason = abortedBy
      ? `aborted by the operator after PVC ${abortedBy.pvc} failed`
      : cancelled
        ? 'the migration was cancelled'
        : `failed in phase ${st.phase}: ${failureMessage(err)}`;
    wf.log.warn('rolling back namespace', { namespace: st.source, reason });
    await wf.CancellationScope.nonCancellable(() => rollback(reason));
    st.status = 'rolled-back';
    st.endedAt = now();
    enter('rolled-back');
    await reporter.finish();
    if (cancelled) throw err;
    const failedSteps = st.rollback!.steps.filter((s) => !s.ok);
    throw wf.ApplicationFailure.create({
      type: WorkflowFailureType.RolledBack,
      nonRetryable: true,
      message:
        `namespace ${st.source} rolled back: ${reason}` +
        (failedSteps.length > 0 ? `; rollback incomplete: ${failedSteps.map((s) => `${s.step}: ${s.message}`).join('; ')}` : ''),
      details: [st],
    });
  }
}
