/**
 * The syncs of a namespace workflow: one sync of one PVC (a pvcTransferWorkflow child), a PVC synced
 * until it succeeds or the operator skips it, one sync of every PVC (bounded by Slots), and the stage
 * passes that repeat it until cutover is due (or continue-as-new).
 */
import * as wf from '@temporalio/workflow';
import { pvcWorkflowId } from '../definitions';
import { describeFailure } from '../failures';
import { pvcTransferWorkflow } from '../pvc-transfer';
import { MAX_PVC_ERRORS, MAX_STAGE_HISTORY, projectedFinalSyncSeconds, type PVCState, type SyncFailure } from '../../core/state';
import { finalSyncConcurrency } from '../concurrency';
import type { namespaceWorkflow } from './workflow';
import { now, type NamespaceRun } from './run';
import { Slots } from './slots';
import { backgroundHooks, hasHooks, recordHookResult, runHooks } from './hooks';
import type { HookSpec } from '../../plan/schema';
import { nextScheduledStage } from '../../plan/schedule';
import { pvcSyncSummary } from '../summaries';
import { SEARCH_ATTRIBUTES } from '../search-attributes';

/** Seconds between stage passes while cutover is held back by a partial pass (at least). */
const PARTIAL_RETRY_SECONDS = 60;

/** One sync of one PVC; returns the failure when it failed (after the activity's retries). */
export async function syncOnce(run: NamespaceRun, p: PVCState, final: boolean): Promise<SyncFailure | undefined> {
  const { info, pvcInfo, ctx, st, tuning } = run;
  const pass = ++p.syncs;
  const workflowId = pvcWorkflowId(info.workflowId, p.name, pass);
  p.status = 'syncing';
  p.running = { workflowId, pass, final, startedAt: now() };
  try {
    run.showDetails();
    const r = await wf.executeChild(pvcTransferWorkflow, {
      workflowId,
      args: [{ ...ctx, pvc: pvcInfo.get(p.name)!, address: st.address!, final, pass, ...(!final && run.groupMembers?.[p.name] !== undefined ? { fromSnapshot: run.groupMembers[p.name] } : {}), ...(final && run.keepAgentsInFinal ? { keepAgent: true } : {}) }, tuning],
      // For the Temporal UI: which PVC, which pass; the migration's id to filter on.
      staticSummary: pvcSyncSummary(run.migrationId, st.source, p.name, pass, final),
      typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.FerryMigration, value: run.migrationId }],
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
    run.showDetails();
  }
}

/** Syncs one PVC until it succeeds or the operator skips it (abort cancels the main scope). `node`: the
 * slots of the source node the PVC is read on (plan maxSyncsPerNode), taken before the namespace's so
 * that a PVC waiting for its node does not hold a slot other nodes' PVCs could use. */
export async function syncUntilSettled(run: NamespaceRun, p: PVCState, final: boolean, slots: Slots, node?: Slots): Promise<void> {
  const { st, reporter, decisions } = run;
  for (;;) {
    // no await without a node limit: the syncs' conditions register exactly as before maxSyncsPerNode
    if (node) await node.acquire();
    await slots.acquire();
    let failure: SyncFailure | undefined;
    try {
      failure = await syncOnce(run, p, final);
    } finally {
      slots.release();
      node?.release();
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

/**
 * The per-node slots of `targets` (plan maxSyncsPerNode): PVC name → the Slots of the node it is in
 * use on (discovery's nodeName), one Slots per node; empty without the limit. PVCs in use on no node
 * have none. Slots are workflow memory only (conditions, no commands): histories are unchanged.
 */
function nodeSlotsFor(run: NamespaceRun, targets: readonly PVCState[]): Map<string, Slots> {
  const out = new Map<string, Slots>();
  const limit = run.plan.maxSyncsPerNode;
  if (limit === undefined) return out;
  const byNode = new Map<string, Slots>();
  for (const p of targets) {
    const node = run.pvcInfo.get(p.name)?.nodeName;
    if (node === undefined) continue;
    if (!byNode.has(node)) byNode.set(node, new Slots(limit));
    out.set(p.name, byNode.get(node)!);
  }
  return out;
}

/** One sync of every PVC not skipped: at most plan.concurrency at once, or finalSyncConcurrency(plan) for the final sync. */
export async function syncAll(run: NamespaceRun, final: boolean): Promise<void> {
  const { plan, st } = run;
  // The final sync runs more PVCs at once (plan finalConcurrency): each is only a delta by then.
  const slots = new Slots(final && wf.patched('final-concurrency') ? finalSyncConcurrency(plan) : plan.concurrency);
  const targets = st.pvcs.filter((p) => p.status !== 'skipped');
  const nodeSlots = nodeSlotsFor(run, targets);
  // allSettled, not all: on abort every running sync must have stopped before rollback starts.
  const results = await Promise.allSettled(targets.map((p) => syncUntilSettled(run, p, final, slots, nodeSlots.get(p.name))));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Stage passes (phase `stage`, then `ready-for-cutover` in manual mode) until cutover is due: at least
 * plan.stagePasses, plan.stageIntervalSeconds apart, and in manual mode until the operator's cutover; a
 * partial last pass holds cutover back (patch `d-partial-stage`). Continues as new after
 * tuning.stagePassesPerRun passes of this run or when the history grows long.
 */
export async function stagePasses(run: NamespaceRun): Promise<void> {
  const { plan, st, reporter, migrationId, tuning, input } = run;
  const manual = plan.cutover === 'manual';
  const minimumDone = () => st.stagePassesDone >= plan.stagePasses;
  const wouldCut = () => minimumDone() && (!manual || st.cutoverRequested);
  // A partial last pass holds cutover back unless the operator forced it.
  const heldBack = () => st.cutoverForcedAt === undefined && run.partialPVCs().length > 0;
  const cutNow = () => wouldCut() && !heldBack();
  let passesThisRun = 0;
  if (st.phase !== 'stage' && st.phase !== 'ready-for-cutover') run.enter('stage');
  for (;;) {
    if (manual && minimumDone() && st.phase === 'stage' && run.partialPVCs().length === 0) run.enter('ready-for-cutover');
    if (cutNow()) {
      if (st.cutoverBlocked) {
        delete st.cutoverBlocked;
        reporter.touch();
      }
      return;
    }
    let pause = plan.stageIntervalSeconds;
    if (run.gatePartial && wouldCut() && heldBack()) {
      // Cutover is due but would take the applications down for a final sync that fails: wait for
      // a clean pass (another stage pass after a pause, so the operator can fix the cause) or for
      // `ferry cutover --force`.
      const partial = run.partialPVCs();
      const reason =
        `cutover held back: the last stage pass was partial for ${partial.map((p) => p.name).join(', ')} — ${run.partialReason(partial)}. ` +
        `Fix the cause (another stage pass runs every ${Math.max(plan.stageIntervalSeconds, PARTIAL_RETRY_SECONDS)} s and cutover follows a clean one), or force it: ferry cutover ${migrationId} --namespace ${st.source} --force`;
      if (st.cutoverBlocked?.reason !== reason) {
        st.cutoverBlocked = { pvcs: partial.map((p) => p.name), reason, since: st.cutoverBlocked?.since ?? now() };
        wf.log.warn('cutover held back by a partial stage pass', { namespace: st.source, pvcs: st.cutoverBlocked.pvcs });
        reporter.touch();
      }
      pause = Math.max(plan.stageIntervalSeconds, PARTIAL_RETRY_SECONDS);
    }
    if (plan.stageSchedule !== undefined && st.stagePassesDone > 0 && !(run.gatePartial && wouldCut() && heldBack())) {
      // Plan stageSchedule: the next pass at the next time the cron expression names (a Temporal
      // timer; the operator's cutover ends the wait early). Absent: nothing changes (no patch needed).
      const next = nextScheduledStage(plan.stageSchedule, new Date(Date.now()));
      st.nextStageAt = next?.toISOString();
      reporter.touch();
      const ended = next ? await wf.condition(cutNow, Math.max(1000, next.getTime() - Date.now())) : (await wf.condition(cutNow), true);
      delete st.nextStageAt;
      if (ended) continue;
      pause = 0;
    }
    if (st.stagePassesDone > 0 && pause > 0) {
      // The pause between passes; in manual mode the operator's cutover ends it early.
      if (await wf.condition(cutNow, pause * 1000)) continue;
    }
    const passStarted = now();
    if (hasHooks(run, 'preStage')) await runHooks(run, 'preStage');
    // Plan groupSnapshot: every PVC of the pass restored from one VolumeGroupSnapshot, taken now.
    const group = plan.groupSnapshot === true && plan.sourceCopyMethod === 'snapshot';
    if (group) {
      const snap = { ...run.ctx, pass: st.stagePassesDone + 1, pvcs: st.pvcs.filter((p) => p.status !== 'skipped').map((p) => p.name) };
      // Background hooks (plan hooks[].background) are held over the cut, inside one activity.
      const held = backgroundHooks(run);
      if (held.length === 0) run.groupMembers = await run.acts.prepareGroupSnapshot(snap);
      else run.groupMembers = await heldGroupSnapshot(run, snap, held);
    }
    await syncAll(run, false);
    if (group) {
      run.groupMembers = undefined;
      await run.acts.releaseGroupSnapshot(run.ctx);
    }
    if (hasHooks(run, 'postStage')) await runHooks(run, 'postStage');
    st.stagePassesDone++;
    passesThisRun++;
    recordStagePass(run, passStarted);
    if (manual && plan.cutoverWhen && !st.cutoverRequested && !st.cutoverEvidence && minimumDone()) decideOnEvidence(run);
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

/**
 * Records the stage pass that just ended (started at `startedAt`) in st.stageHistory: its wall time, the
 * bytes and files its syncs sent (the delta since the previous pass) and the final sync it projects.
 */
function recordStagePass(run: NamespaceRun, startedAt: string): void {
  const { st, plan } = run;
  const endedAt = now();
  const ofPass = st.pvcs.filter((p) => p.status !== 'skipped' && p.lastSync && !p.lastSync.final && p.lastSync.finishedAt >= startedAt).map((p) => p.lastSync!);
  const projected = projectedFinalSyncSeconds(st.pvcs, finalSyncConcurrency(plan));
  const history = [
    ...(st.stageHistory ?? []),
    {
      pass: st.stagePassesDone,
      startedAt,
      endedAt,
      seconds: (Date.parse(endedAt) - Date.parse(startedAt)) / 1000,
      bytesSent: ofPass.reduce((n, r) => n + r.bytesSent, 0),
      filesTransferred: ofPass.reduce((n, r) => n + (r.filesTransferred ?? 0), 0),
      ...(projected !== undefined ? { projectedFinalSyncSeconds: projected } : {}),
    },
  ];
  st.stageHistory = history.slice(-MAX_STAGE_HISTORY);
}

/**
 * Plan `cutoverWhen` (cutover on evidence, with cutover: manual), after a stage pass once the minimum
 * passes are done: requests the cutover when the pass projects a final sync under the threshold (and
 * none of its PVCs was partial), or, after `maxStagePasses`, records that the operator decides. Either
 * is recorded once in st.cutoverEvidence with its reason.
 */
function decideOnEvidence(run: NamespaceRun): void {
  const { st, plan, migrationId } = run;
  const rule = plan.cutoverWhen!;
  const last = st.stageHistory?.[st.stageHistory.length - 1];
  const projected = last?.projectedFinalSyncSeconds;
  const threshold = rule.projectedDowntimeBelowSeconds;
  const shown = projected !== undefined ? `${projected.toFixed(1)} s` : 'unknown (no PVC synced)';
  const base = { pass: st.stagePassesDone, ...(projected !== undefined ? { projectedSeconds: projected } : {}), thresholdSeconds: threshold, at: now() };
  if (projected !== undefined && projected < threshold && run.partialPVCs().length === 0) {
    st.cutoverRequested = true;
    st.cutoverEvidence = { ...base, decision: 'cut-over', reason: `stage pass ${st.stagePassesDone} projects a final sync of ${shown}, under ${threshold} s: cutting over` };
    wf.log.info('cutover on evidence', { namespace: st.source, pass: st.stagePassesDone, projectedSeconds: projected, thresholdSeconds: threshold });
  } else if (st.stagePassesDone >= rule.maxStagePasses) {
    st.cutoverEvidence = {
      ...base,
      decision: 'operator',
      reason:
        `after ${st.stagePassesDone} stage passes the projected final sync is still ${shown} (not under ${threshold} s${run.partialPVCs().length > 0 ? ', or the last pass was partial' : ''}): ` +
        `stage passes go on; cut over when ready: ferry cutover ${migrationId} --namespace ${st.source}`,
    };
    wf.log.warn('cutover on evidence: the projection was not reached, the operator decides', { namespace: st.source, pass: st.stagePassesDone, projectedSeconds: projected, thresholdSeconds: threshold });
  }
}

/**
 * The group snapshot of a stage pass with the background hooks held over its cut; their results are
 * recorded (a failure with onError fail fails the namespace: the snapshot was not taken).
 */
async function heldGroupSnapshot(run: NamespaceRun, snap: { pass: number; pvcs: string[] } & NamespaceRun['ctx'], held: readonly HookSpec[]): Promise<Record<string, string>> {
  // Not retried (it runs the user's commands): a failure of the activity fails the pass.
  const r = await run.acts.prepareHeldGroupSnapshot({ ...snap, hooks: held.map((h) => h.name) });
  for (const h of held) {
    const result = r.hooks.find((x) => x.name === h.name);
    if (result) recordHookResult(run, h, result);
  }
  return r.members;
}
